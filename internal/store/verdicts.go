package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"iter"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mailwall/internal/dmarc"
)

// Verdict is what the store keeps of one decision: the envelope, each
// stage's result and the action, never the content. Source says where it
// was decided: "milter" (a message), "policy" (the policy server's answer
// to one recipient), "rcpt" (the milter's, greylisting or blocklisting
// at RCPT in its place), "helo" or "connect" (the milter refused the
// client before any message).
type Verdict struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Node       string    `json:"node"` // the MX host that decided
	Source     string    `json:"source"`
	QueueID    string    `json:"queue_id"`
	ClientIP   string    `json:"client_ip"`
	ClientName string    `json:"client_name"` // the client's PTR name as Postfix verified it
	Helo       string    `json:"helo"`
	MailFrom   string    `json:"mail_from"`
	FromDomain string    `json:"from_domain"`
	Rcpts      []string  `json:"rcpts"`
	Action     string    `json:"action"`
	Stage      string    `json:"stage"`
	Verdict    string    `json:"verdict"`
	IPRev      string    `json:"iprev"`
	SPF        string    `json:"spf"`
	DKIM       string    `json:"dkim"` // "pass:example.com fail:other.example"
	DMARC      string    `json:"dmarc"`
	ARC        string    `json:"arc"`
	Score      int       `json:"score"`
	Rules      []string  `json:"rules"`
	Reasons    []string  `json:"reasons"`
	HeaderFrom string    `json:"header_from"` // the From address
	MessageID  string    `json:"message_id"`  // without angle brackets
	// Subject is the decoded Subject, or "sha256:HEX" of it under
	// store.subject: hash (SubjectHash).
	Subject string `json:"subject"`
	Size    int64  `json:"size"`  // octets, as Postfix passed them to the milter
	Reply   string `json:"reply"` // the SMTP reply the client got, "" when accepted
	// Details say why: each stage's result and reason, every hit with
	// its weight and explanation, the headers added.
	Details Details `json:"details"`
	// Feedback is what a person said of the verdict ("spam", "ham");
	// read here, written by the dashboard's actions.
	Feedback string `json:"feedback"`
	// Features are the classifier's hashed features (never text), for
	// learning from a click; nil when the classifier did not run.
	Features []byte `json:"-"`
	// DMARC is the evaluation as aggregate reports count it; nil when
	// DMARC was not evaluated (no From domain, internal mail).
	DMARCRow *DMARCRow `json:"-"`
}

// Details are a verdict's explanations, kept as JSON.
type Details struct {
	Stages  []StageResult `json:"stages,omitempty"`
	Hits    []Hit         `json:"hits,omitempty"`
	Headers []Header      `json:"headers,omitempty"` // added to the message
	// Facts are further things known of the decision, in order
	// ("protocol_state": "RCPT", "list": "block").
	Facts []Fact `json:"facts,omitempty"`
}

// StageResult is one stage's result and why (iprev: fail, "no PTR").
type StageResult struct {
	Stage  string `json:"stage"`
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
}

// Hit is one rule that fired, with its weight and explanation.
type Hit struct {
	Rule   string `json:"rule"`
	Weight int    `json:"weight"`
	Detail string `json:"detail,omitempty"`
}

// Header is a header field added to the message.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Fact is a named value of a decision.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DMARCRow is one DMARC evaluation kept for aggregate reports, with the
// reporting addresses and interval of the record that applied.
type DMARCRow struct {
	Row dmarc.Row
	RUA []dmarc.URI
	RI  int // the record's ri= (RFC 7489), -1 when absent
}

// InsertVerdicts writes verdicts and their DMARC rows in one transaction
// and sets each verdict's ID.
func (s *Store) InsertVerdicts(ctx context.Context, vs []Verdict) error {
	return s.insertVerdicts(ctx, vs, false)
}

// insertVerdicts is InsertVerdicts; isBounded says vs are bounded
// already (the Recorder's are, by Record), and are not bounded again.
func (s *Store) insertVerdicts(ctx context.Context, vs []Verdict, isBounded bool) error {
	// Each row's values are made ready before the write begins: on
	// SQLite a greylist write waits for this transaction (lockWrites).
	var chunks [][]any
	for chunk := range insertChunks(vs) {
		chunks = append(chunks, verdictArgs(chunk, isBounded))
	}
	tx, release, err := s.beginWrite(ctx, "")
	if err != nil {
		return err
	}
	defer release()
	// Many rows a statement: per row, SQLite's own work is a fraction of
	// what a statement costs to bind, step and reset through database/sql,
	// and PostgreSQL saves a round trip per row.
	done := 0
	for _, args := range chunks {
		n := len(args) / verdictColumns
		if err := s.insertVerdictRows(ctx, tx, vs[done:done+n], args); err != nil {
			return err
		}
		done += n
	}
	// The DMARC rows' values, a row after another: a chunk of them is a
	// slice of one list, not a list made for each statement.
	var (
		dmarcArgs []any
		policies  dmarcPolicies
	)
	for i := range vs {
		if vs[i].DMARCRow != nil {
			if dmarcArgs == nil {
				dmarcArgs = make([]any, 0, dmarcRowColumns*(len(vs)-i))
			}
			dmarcArgs = appendDMARCRowArgs(dmarcArgs, &vs[i], &policies)
		}
	}
	for rows := len(dmarcArgs) / dmarcRowColumns; rows > 0; {
		n := min(rowsPerInsert, 1<<(bits.Len(uint(rows))-1)) // as insertChunks
		if err := s.insertDMARCRows(ctx, tx, n, dmarcArgs[:n*dmarcRowColumns]); err != nil {
			return err
		}
		dmarcArgs, rows = dmarcArgs[n*dmarcRowColumns:], rows-n
	}
	return s.commitWithSeen(ctx, tx)
}

// rowsPerInsert bounds the rows of one INSERT: 64 verdicts are 1,792
// parameters, well under SQLite's 32,766 and PostgreSQL's 65,535.
const rowsPerInsert = 64

// insertChunks splits rows into chunks of a power of two, largest first,
// none over rowsPerInsert: seven statement shapes a table, each prepared
// once, where parsing a statement for each batch size cost SQLite about
// half a millisecond for 40 rows. n rows take n/64 statements and one
// per set bit of the rest: at most six more than equal chunks would.
func insertChunks[T any](rows []T) iter.Seq[[]T] {
	return func(yield func([]T) bool) {
		for len(rows) > 0 {
			n := min(rowsPerInsert, 1<<(bits.Len(uint(len(rows)))-1))
			if !yield(rows[:n:n]) {
				return
			}
			rows = rows[n:]
		}
	}
}

// insertStmt is the INSERT of rows rows into table, prepared once, on
// SQLite; nil on PostgreSQL, where pgx keeps its own statement cache and
// preparing here would cost a round trip.
func (s *Store) insertStmt(ctx context.Context, table string, rows int, query func() string) (*sql.Stmt, error) {
	if s.driver == "postgres" {
		return nil, nil
	}
	k := insertKey{table, rows}
	s.inserts.mu.Lock()
	defer s.inserts.mu.Unlock()
	if st := s.inserts.stmts[k]; st != nil {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query())
	if err != nil {
		return nil, err
	}
	if s.inserts.stmts == nil {
		s.inserts.stmts = map[insertKey]*sql.Stmt{}
	}
	s.inserts.stmts[k] = st
	return st, nil
}

const verdictColumns = 28

// verdictArgs are the values of vs's rows, bounded (unless isBounded:
// they are already), as insertVerdictRows takes them.
func verdictArgs(vs []Verdict, isBounded bool) []any {
	args := make([]any, 0, len(vs)*verdictColumns)
	for i := range vs {
		v := &vs[i]
		if !isBounded {
			b := bounded(v)
			v = &b
		}
		domain := strings.ToLower(v.FromDomain)
		rules := strings.Join(v.Rules, " ")
		details := v.Details.encode(&detailsRow{mailFrom: v.MailFrom, domain: domain, ip: v.ClientIP,
			verdict: v.Verdict, action: v.Action, stage: v.Stage, iprev: v.IPRev, spf: v.SPF, arc: v.ARC, dmarc: v.DMARC,
			score: v.Score, rules: v.Rules, rulesText: rules})
		var features any
		if v.Features != nil {
			features = v.Features
		}
		// A value as the row before's is its interface value again:
		// one allocation fewer each (most of a batch's node, source,
		// action and results are one value).
		var prev []any
		if i > 0 {
			prev = args[len(args)-verdictColumns:]
		}
		args = append(args, same(prev, 0, v.At.Unix()), same(prev, 1, v.Node), same(prev, 2, v.QueueID), same(prev, 3, v.ClientIP),
			same(prev, 4, v.ClientName), same(prev, 5, v.Helo), same(prev, 6, v.MailFrom), same(prev, 7, domain), same(prev, 8, strings.Join(v.Rcpts, " ")),
			same(prev, 9, v.Action), same(prev, 10, v.Stage), same(prev, 11, v.Verdict), same(prev, 12, v.IPRev), same(prev, 13, v.SPF),
			same(prev, 14, v.DKIM), same(prev, 15, v.DMARC), same(prev, 16, v.ARC), same(prev, 17, v.Score), same(prev, 18, rules),
			same(prev, 19, strings.Join(v.Reasons, "\n")), same(prev, 20, v.Source), same(prev, 21, v.HeaderFrom), same(prev, 22, v.MessageID),
			same(prev, 23, v.Subject), same(prev, 24, v.Size), same(prev, 25, v.Reply), details, features)
	}
	return args
}

// same is x as an interface value: prev[col] when that holds x (prev
// the row before's values, nil for a first row).
func same[T comparable](prev []any, col int, x T) any {
	if prev != nil {
		if p, ok := prev[col].(T); ok && p == x {
			return prev[col]
		}
	}
	return x
}

// insertVerdictRows inserts vs, whose values are args (verdictArgs), with
// one statement and sets their IDs.
func (s *Store) insertVerdictRows(ctx context.Context, tx *sql.Tx, vs []Verdict, args []any) error {
	q := func() string {
		q := `INSERT ` + s.orFail() + `INTO verdicts (at, node, queue_id, client_ip, client_name, helo, mail_from, from_domain, rcpts,
		action, stage, verdict, iprev, spf, dkim, dmarc, arc, score, rules, reasons,
		source, header_from, message_id, subject, size, reply, details, features) VALUES ` + s.placeholders(len(vs), verdictColumns)
		if s.driver == "postgres" {
			q += ` RETURNING id`
		}
		return q
	}
	st, err := s.insertStmt(ctx, "verdicts", len(vs), q)
	if st != nil {
		// SQLite: the ids are the last row's and those before it.
		// AUTOINCREMENT gives each row of one statement the next id
		// after the largest there has been, and the statement is the
		// only writer (one transaction writes at a time), so the rows
		// have consecutive ids in the order of VALUES. RETURNING made
		// SQLite keep the ids in a temporary table and database/sql
		// read them back one row at a time: a tenth of the statement.
		res, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("store: verdicts: %w", err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("store: verdicts: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(vs)) {
			return fmt.Errorf("store: verdicts: %d rows written of %d (%v)", n, len(vs), err)
		}
		for i := range vs {
			vs[i].ID = last - int64(len(vs)-1-i)
		}
		return nil
	}
	var rows *sql.Rows
	if err == nil {
		rows, err = tx.QueryContext(ctx, q(), args...)
	}
	if err != nil {
		return fmt.Errorf("store: verdicts: %w", err)
	}
	defer rows.Close()
	ids := make([]int64, 0, len(vs))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("store: verdicts: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: verdicts: %w", err)
	}
	if len(ids) != len(vs) {
		return fmt.Errorf("store: verdicts: %d ids for %d rows", len(ids), len(vs))
	}
	// PostgreSQL does not promise RETURNING's order, but its identity
	// sequence numbers the rows of VALUES as it inserts them, in order:
	// sorted, the ids follow the rows even when another MX host inserts
	// meanwhile (and its ids may then come between).
	slices.Sort(ids)
	for i := range vs {
		vs[i].ID = ids[i]
	}
	return nil
}

// orFail is "OR FAIL " on SQLite, for a multi-row INSERT in a
// transaction: on a failed constraint the statement stops where it is,
// where the default (ABORT) undoes its earlier rows, which SQLite can
// only do by copying every page the statement changes to a statement
// journal first, a temporary file past 64 KiB: a sixth of a batch's
// cost. Nothing is lost: any error rolls the whole transaction back.
// PostgreSQL has no such clause (nor the cost).
func (s *Store) orFail() string {
	if s.driver == "sqlite" {
		return "OR FAIL "
	}
	return ""
}

// insertDMARCRows inserts rows rows, whose values are args (each row's
// appendDMARCRowArgs), with one statement.
func (s *Store) insertDMARCRows(ctx context.Context, tx *sql.Tx, rows int, args []any) error {
	q := func() string {
		return `INSERT ` + s.orFail() + `INTO dmarc_rows (at, verdict_id, policy_domain, source_ip, record, published, rua, ri) VALUES ` + s.placeholders(rows, dmarcRowColumns)
	}
	st, err := s.insertStmt(ctx, "dmarc_rows", rows, q)
	if st != nil {
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	} else if err == nil {
		_, err = tx.ExecContext(ctx, q(), args...)
	}
	if err != nil {
		return fmt.Errorf("store: dmarc rows: %w", err)
	}
	return nil
}

const dmarcRowColumns = 8

// dmarcPolicies are, for one batch of verdicts, the values of the
// policy each policy domain's last DMARC row had (nil: none yet), which
// the next row of that domain takes as they are when its policy is the
// same: mail from one domain comes in runs, and its published policy,
// reporting addresses and interval were written out again for each row.
type dmarcPolicies map[string]*dmarcPolicyArgs

type dmarcPolicyArgs struct {
	published dmarc.PublishedPolicy
	rua       []dmarc.URI
	ri        int
	// The values bound: the policy domain in lower case, the published
	// policy as JSON, the addresses and the interval.
	domain, publishedJSON, ruaText, riArg any
	// The domain's last row (its Published left out, as the record
	// does) and its values source_ip and record: a run of mail from one
	// sender has one row again and again.
	last               *dmarc.Row
	lastIP, lastRecord any
}

// sameRecord is whether a and b have one record: equal but for their
// Published, a nil list only as a nil one (the record leaves it out).
func sameRecord(a, b *dmarc.Row) bool {
	return a.SourceIP == b.SourceIP && a.HeaderFrom == b.HeaderFrom && a.EnvelopeFrom == b.EnvelopeFrom && a.EnvelopeTo == b.EnvelopeTo &&
		a.PolicyDomain == b.PolicyDomain && a.Disposition == b.Disposition && a.DKIMAligned == b.DKIMAligned && a.SPFAligned == b.SPFAligned &&
		(a.DKIM == nil) == (b.DKIM == nil) && slices.Equal(a.DKIM, b.DKIM) && a.SPFDomain == b.SPFDomain && a.SPFScope == b.SPFScope &&
		a.SPFResult == b.SPFResult && (a.Reasons == nil) == (b.Reasons == nil) && slices.Equal(a.Reasons, b.Reasons)
}

// of is the values of d's policy, as they were for the domain's last
// row when d's is the same.
func (p *dmarcPolicies) of(d *DMARCRow) *dmarcPolicyArgs {
	if c := (*p)[d.Row.PolicyDomain]; c != nil && c.published == d.Row.Published && c.ri == d.RI && slices.Equal(c.rua, d.RUA) {
		return c
	}
	c := newDMARCPolicyArgs(d)
	if *p == nil {
		*p = dmarcPolicies{}
	}
	(*p)[d.Row.PolicyDomain] = c
	return c
}

func newDMARCPolicyArgs(d *DMARCRow) *dmarcPolicyArgs {
	var rua strings.Builder
	for i, u := range d.RUA {
		if i > 0 {
			rua.WriteByte(',')
		}
		rua.WriteString(u.String())
	}
	return &dmarcPolicyArgs{published: d.Row.Published, rua: d.RUA, ri: d.RI,
		domain: strings.ToLower(d.Row.PolicyDomain), publishedJSON: string(appendPublishedJSON(make([]byte, 0, 160), &d.Row.Published)),
		ruaText: rua.String(), riArg: d.RI}
}

// appendDMARCRowArgs appends v's DMARC row as insertDMARCRows takes it,
// with the policy's values from policies.
func appendDMARCRowArgs(args []any, v *Verdict, policies *dmarcPolicies) []any {
	d := v.DMARCRow
	p := policies.of(d)
	var vid any
	if v.ID != 0 {
		vid = v.ID
	}
	var prev []any // the row before's values, as verdictArgs's
	if n := len(args); n >= dmarcRowColumns {
		prev = args[n-dmarcRowColumns:]
	}
	at := same(prev, 0, v.At.Unix())
	if p.last != nil && sameRecord(p.last, &d.Row) {
		return append(args, at, vid, p.domain, p.lastIP, p.lastRecord, p.publishedJSON, p.ruaText, p.riArg)
	}
	// The address as a column (String) and in the record (MarshalText,
	// which writes the zero Addr as "", where String writes "invalid IP").
	ip := d.Row.SourceIP.String()
	ipJSON := ip
	if !d.Row.SourceIP.IsValid() {
		ipJSON = ""
	}
	var record any = string(appendRowJSON(make([]byte, 0, 384), &d.Row, ipJSON))
	var ipArg any = ip
	p.last, p.lastIP, p.lastRecord = &d.Row, ipArg, record
	return append(args, at, vid, p.domain, ipArg, record, p.publishedJSON, p.ruaText, p.riArg)
}

// placeholders is "($1, $2), ($3, $4)" for rows=2, cols=2, or with "?"
// for each on SQLite: it keeps numbered parameters in a list it searches
// for each one, which made a 2,000-parameter statement cost milliseconds.
func (s *Store) placeholders(rows, cols int) string {
	var b strings.Builder
	b.Grow(rows * cols * 6)
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			if s.driver == "postgres" {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(n))
				n++
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// VerdictFilter selects verdicts; zero fields match everything. Keys
// given together must all match.
type VerdictFilter struct {
	Since, Until time.Time
	Action       string
	Source       string // milter, policy, rcpt, helo, connect
	Domain       string // From domain, or the MAIL FROM's
	ClientIP     string
	// Client is an IP address (matched exactly) or a client name: the
	// name itself or any name under it ("example.test" finds
	// "mx1.example.test").
	Client    string
	QueueID   string // exact
	MessageID string // exact, with or without angle brackets
	// MailFrom is the envelope sender: an address (exact but for case,
	// as the store keeps addresses in lower case) or, without "@", a
	// domain.
	MailFrom   string
	Rcpt       string // a recipient: a substring of any, without regard to case
	HeaderFrom string // the From address: a substring, without regard to case
	// Subject: a substring, without regard to case; a Subject kept only
	// as its hash is found by the whole Subject.
	Subject  string
	Rule     string // a rule that fired, by name
	Search   string // a substring of the reasons or rules
	Limit    int    // default 100, at most 1000
	BeforeID int64  // paging: only verdicts older than this one
}

// maxFilterValue bounds a search value: a longer one is cut, and matches
// what it matches.
const maxFilterValue = 512

// Verdicts lists verdicts, newest first. Every value is a parameter;
// the exact keys (queue ID, Message-ID, client IP, envelope sender) and
// the time range use the indexes, the substring keys scan what the others
// leave, at most Limit rows returned.
func (s *Store) Verdicts(ctx context.Context, f VerdictFilter) ([]Verdict, error) {
	where, args, limit := s.verdictWhere(f)
	return s.verdicts(ctx, where, args, limit)
}

// verdictWhere is f as the conditions of a query, their parameters and
// the row limit.
func (s *Store) verdictWhere(f VerdictFilter) (where []string, args []any, limit int) {
	// add appends cond, its "?" numbered as the parameters of vals.
	add := func(cond string, vals ...any) {
		var b strings.Builder
		for i, part := range strings.Split(cond, "?") {
			if i > 0 {
				args = append(args, vals[min(i-1, len(vals)-1)])
				fmt.Fprintf(&b, "$%d", len(args))
			}
			b.WriteString(part)
		}
		where = append(where, b.String())
	}
	val := func(v string) string { return cut(strings.TrimSpace(v), maxFilterValue) }
	if !f.Since.IsZero() {
		// The second condition adds nothing to the first but a range of
		// ids, which a substring search then scans newest first instead
		// of the whole table: every verdict at or after Since has an id
		// at least the least of theirs, read from verdicts_at. SQLite
		// is told to: left alone, it reads the table in id order up to
		// the first verdict since then (on a million rows, the last
		// 1% of them: 0.5 ms against 93 ms).
		indexed := ""
		if s.driver == "sqlite" {
			indexed = " INDEXED BY verdicts_at"
		}
		add("at >= ? AND id >= (SELECT COALESCE(MIN(id), 0) FROM verdicts"+indexed+" WHERE at >= ?)", f.Since.Unix())
	}
	if !f.Until.IsZero() {
		add("at < ?", f.Until.Unix())
	}
	if f.Action != "" {
		add("action = ?", val(f.Action))
	}
	if f.Source != "" {
		add("source = ?", val(f.Source))
	}
	if d := strings.ToLower(val(f.Domain)); d != "" {
		add("(from_domain = ? OR mail_from LIKE ? ESCAPE '\\')", d, "%@"+likeEscape(d))
	}
	if ip := val(f.ClientIP); ip != "" {
		add("client_ip = ?", normalIP(ip))
	}
	if c := val(f.Client); c != "" {
		if _, err := netip.ParseAddr(c); err == nil {
			add("client_ip = ?", normalIP(c))
		} else {
			c = strings.ToLower(strings.TrimSuffix(c, "."))
			add("(client_name = ? OR client_name LIKE ? ESCAPE '\\')", c, "%."+likeEscape(c))
		}
	}
	if q := val(f.QueueID); q != "" {
		add("queue_id = ?", q)
	}
	if m := strings.Trim(val(f.MessageID), "<>"); m != "" {
		add("message_id = ?", m)
	}
	if m := strings.Trim(val(f.MailFrom), "<>"); m != "" {
		if strings.Contains(m, "@") {
			add("mail_from = ?", strings.ToLower(m))
		} else {
			add("mail_from LIKE ? ESCAPE '\\'", "%@"+likeEscape(strings.ToLower(m)))
		}
	}
	for _, c := range []struct{ col, v string }{{"rcpts", f.Rcpt}, {"header_from", f.HeaderFrom}} {
		if v := strings.Trim(val(c.v), "<>"); v != "" {
			add("LOWER("+c.col+") LIKE ? ESCAPE '\\'", "%"+likeEscape(strings.ToLower(v))+"%")
		}
	}
	if sub := val(f.Subject); sub != "" {
		add("(LOWER(subject) LIKE ? ESCAPE '\\' OR subject = ?)", "%"+likeEscape(strings.ToLower(sub))+"%", SubjectHash(sub))
	}
	if r := val(f.Rule); r != "" {
		// rules is "name=weight name=weight".
		add("(' ' || rules) LIKE ? ESCAPE '\\'", "% "+likeEscape(r)+"=%")
	}
	if q := val(f.Search); q != "" {
		add("(reasons LIKE ? ESCAPE '\\' OR rules LIKE ? ESCAPE '\\')", "%"+likeEscape(q)+"%")
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	limit = min(f.Limit, 1000)
	if limit <= 0 {
		limit = 100
	}
	return where, args, limit
}

// likeEscape makes s match itself in a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// normalIP writes an address as the store does (netip's form: "::ffff:"
// prefixes dropped, IPv6 compressed), so that any spelling finds it.
func normalIP(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

// Related are the other decisions about the same mail: those with v's
// queue ID, and those about the same client within window either side
// that have v's envelope sender or none (a HELO refusal, the policy
// server's answer before MAIL FROM), oldest first, at most limit. This
// joins a policy-server refusal or a HELO refusal to the message that
// came later, and back.
func (s *Store) Related(ctx context.Context, v *Verdict, window time.Duration, limit int) ([]Verdict, error) {
	var (
		where []string
		args  []any
	)
	if v.QueueID != "" {
		args = append(args, v.QueueID)
		where = append(where, fmt.Sprintf("queue_id = $%d", len(args)))
	}
	if v.ClientIP != "" {
		args = append(args, v.ClientIP, v.At.Add(-window).Unix(), v.At.Add(window).Unix(), v.MailFrom)
		n := len(args)
		where = append(where, fmt.Sprintf("(client_ip = $%d AND at >= $%d AND at <= $%d AND (mail_from = $%d OR mail_from = ''))", n-3, n-2, n-1, n))
	}
	if len(where) == 0 {
		return nil, nil
	}
	args = append(args, v.ID)
	cond := []string{"(" + strings.Join(where, " OR ") + ")", fmt.Sprintf("id <> $%d", len(args))}
	rel, err := s.verdicts(ctx, cond, args, max(limit, 1))
	slices.Reverse(rel)
	return rel, err
}

const verdictSelect = `SELECT id, at, node, queue_id, client_ip, client_name, helo, mail_from, from_domain, rcpts, action, stage, verdict,
		iprev, spf, dkim, dmarc, arc, score, rules, reasons, source, header_from, message_id, subject, size, reply, details, feedback FROM verdicts`

// verdictQuery is the SELECT of verdicts under where, newest first.
func verdictQuery(where []string, limit int) string {
	q := verdictSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit)
}

func (s *Store) verdicts(ctx context.Context, where []string, args []any, limit int) ([]Verdict, error) {
	rows, err := s.db.QueryContext(ctx, verdictQuery(where, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("store: verdicts: %w", err)
	}
	defer rows.Close()
	var out []Verdict
	for rows.Next() {
		var (
			v                              Verdict
			at                             int64
			rcpts, rules, reasons, details string
		)
		if err := rows.Scan(&v.ID, &at, &v.Node, &v.QueueID, &v.ClientIP, &v.ClientName, &v.Helo, &v.MailFrom, &v.FromDomain, &rcpts,
			&v.Action, &v.Stage, &v.Verdict, &v.IPRev, &v.SPF, &v.DKIM, &v.DMARC, &v.ARC, &v.Score, &rules, &reasons,
			&v.Source, &v.HeaderFrom, &v.MessageID, &v.Subject, &v.Size, &v.Reply, &details, &v.Feedback); err != nil {
			return nil, fmt.Errorf("store: verdicts: %w", err)
		}
		v.At = time.Unix(at, 0).UTC()
		v.Rcpts, v.Rules = strings.Fields(rcpts), strings.Fields(rules)
		if reasons != "" {
			v.Reasons = strings.Split(reasons, "\n")
		}
		if details != "" {
			// A row this version cannot read still lists: its details
			// are left out, the rest is shown.
			v.Details = decodeDetails(details, &detailsRow{mailFrom: v.MailFrom, domain: v.FromDomain, ip: v.ClientIP,
				verdict: v.Verdict, action: v.Action, stage: v.Stage, iprev: v.IPRev, spf: v.SPF, arc: v.ARC, dmarc: v.DMARC,
				score: v.Score, rules: v.Rules, rulesText: rules})
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SubjectHash is what store.subject: hash keeps of a Subject: the
// SHA-256 of its words joined by single spaces, "sha256:" and hex.
func SubjectHash(subject string) string {
	sum := sha256.Sum256([]byte(strings.Join(strings.Fields(subject), " ")))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Bounds on what one verdict keeps: the SMTP client chooses most of it
// (HELO, addresses, Message-ID, Subject, header From), so each field is
// cut to a length that holds any legitimate value (RFC 5321 §4.5.3.1:
// paths of 256 octets, domains of 255) and lists to a count. A verdict
// stays under about 100 KB whatever the client sends.
const (
	maxShort    = 255  // IP, queue ID, names, results, stage
	maxAddress  = 320  // an address: 64 + "@" + 255
	maxText     = 1024 // Message-ID, Subject, reply, a reason, a detail
	maxRcpts    = 100  // as Postfix's smtpd_recipient_limit default
	maxReasons  = 64
	maxRules    = 100
	maxStages   = 32
	maxHeaders  = 16
	maxHeaderV  = 2048
	maxFacts    = 16
	maxFeatures = 64 << 10
)

// bounded is v with every field within the bounds above, control
// characters made spaces (a newline would split the stored reasons).
func bounded(v *Verdict) Verdict {
	b := *v
	short := func(s string) string { return clean(s, maxShort) }
	b.Node, b.Source, b.QueueID, b.ClientIP, b.ClientName, b.Helo = short(b.Node), short(b.Source), short(b.QueueID), short(b.ClientIP), short(b.ClientName), short(b.Helo)
	b.FromDomain, b.Action, b.Stage, b.Verdict, b.IPRev, b.SPF = short(b.FromDomain), short(b.Action), short(b.Stage), short(b.Verdict), short(b.IPRev), short(b.SPF)
	b.DMARC, b.ARC, b.DKIM = short(b.DMARC), short(b.ARC), clean(b.DKIM, maxText)
	// Addresses lower-cased, as the policy server reads them: one
	// spelling to search and to join by.
	b.MailFrom, b.HeaderFrom = strings.ToLower(clean(b.MailFrom, maxAddress)), strings.ToLower(clean(b.HeaderFrom, maxAddress))
	b.MessageID, b.Subject, b.Reply = clean(b.MessageID, maxText), clean(b.Subject, maxText), clean(b.Reply, maxText)
	b.Rcpts = cleanList(b.Rcpts, maxRcpts, maxAddress, true)
	b.Rules = cleanList(b.Rules, maxRules, maxShort, true)
	b.Reasons = cleanList(b.Reasons, maxReasons, maxText, false)
	if len(b.Features) > maxFeatures {
		b.Features = nil
	}
	d := &b.Details
	d.Stages = boundEach(d.Stages, maxStages, func(st StageResult) StageResult {
		return StageResult{Stage: short(st.Stage), Result: short(st.Result), Reason: clean(st.Reason, maxText)}
	})
	d.Hits = boundEach(d.Hits, maxRules, func(h Hit) Hit {
		return Hit{Rule: short(h.Rule), Weight: h.Weight, Detail: clean(h.Detail, maxText)}
	})
	d.Headers = boundEach(d.Headers, maxHeaders, func(h Header) Header {
		// A folded value keeps its line breaks out: one line shown.
		return Header{Name: short(h.Name), Value: clean(h.Value, maxHeaderV)}
	})
	d.Facts = boundEach(d.Facts, maxFacts, func(f Fact) Fact {
		return Fact{Name: short(f.Name), Value: clean(f.Value, maxText)}
	})
	return b
}

// boundEach is l's first n items, each made f of it: l itself (cut)
// when f changes none, as for most verdicts, else a copy. What the
// recorder queues so shares the caller's lists, which every caller
// makes for the verdict and leaves alone after (four to seven
// allocations a verdict fewer).
func boundEach[T comparable](l []T, n int, f func(T) T) []T {
	l = l[:min(len(l), n)]
	for i, x := range l {
		if y := f(x); y != x {
			out := slices.Clone(l)
			out[i] = y
			for j := i + 1; j < len(out); j++ {
				out[j] = f(out[j])
			}
			return out
		}
	}
	return l
}

// cleanList bounds a list's length and each item; noSpace also turns
// spaces into "_", for lists stored space separated.
func cleanList(l []string, n, each int, noSpace bool) []string {
	return boundEach(l, n, func(s string) string {
		s = clean(s, each)
		if noSpace && strings.IndexByte(s, ' ') >= 0 {
			s = strings.ReplaceAll(s, " ", "_")
		}
		return s
	})
}

// clean cuts s to n octets on a character boundary, with "…" when cut,
// control characters and invalid UTF-8 made spaces or U+FFFD.
func clean(s string, n int) string {
	// Most values are printable ASCII: one look at each octet, eight at
	// a time (printableASCII).
	ascii := printableASCII(s)
	if !ascii && strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }) {
		s = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, strings.ToValidUTF8(s, "\uFFFD"))
	}
	return cut(s, n)
}

// printableASCII is whether every octet of s is from 0x20 to 0x7e.
// Eight octets are looked at at once: a word has one under 0x20 when
// (w - 0x20 each) & ^w has a high bit set, one over 0x7e when (w + 1
// each) | w has; a borrow or carry only runs on from an octet that is
// one itself, so a high bit set means the word holds one.
func printableASCII(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if ((w-0x20*ones)&^w|(w+ones)|w)&highs != 0 {
			return false
		}
	}
	return printableSlow(s[i:])
}

// printableSlow is printableASCII an octet at a time.
func printableSlow(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// cut cuts s to at most n octets on a character boundary, ending in "…"
// when it cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	end := n - len("…")
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + "…"
}
