package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"iter"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/dmarc"
)

// Verdict is what the store keeps of one message: the envelope, each
// stage's result and the action, never the content.
type Verdict struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Node       string    `json:"node"` // the MX host that decided
	QueueID    string    `json:"queue_id"`
	ClientIP   string    `json:"client_ip"`
	ClientName string    `json:"client_name"`
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
	// DMARC is the evaluation as aggregate reports count it; nil when
	// DMARC was not evaluated (no From domain, internal mail).
	DMARCRow *DMARCRow `json:"-"`
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
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	// Many rows a statement: per row, SQLite's own work is a fraction of
	// what a statement costs to bind, step and reset through database/sql,
	// and PostgreSQL saves a round trip per row.
	for chunk := range insertChunks(vs) {
		if err := s.insertVerdictRows(ctx, tx, chunk); err != nil {
			return err
		}
	}
	var dmarcRows [][]any
	for i := range vs {
		if vs[i].DMARCRow == nil {
			continue
		}
		args, err := dmarcRowArgs(&vs[i])
		if err != nil {
			return err
		}
		dmarcRows = append(dmarcRows, args)
	}
	for chunk := range insertChunks(dmarcRows) {
		if err := s.insertDMARCRows(ctx, tx, chunk); err != nil {
			return err
		}
	}
	return s.commitWithSeen(ctx, tx)
}

// rowsPerInsert bounds the rows of one INSERT: 64 verdicts are 1,280
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

const verdictColumns = 20

// insertVerdictRows inserts vs with one statement and sets their IDs.
func (s *Store) insertVerdictRows(ctx context.Context, tx *sql.Tx, vs []Verdict) error {
	args := make([]any, 0, len(vs)*verdictColumns)
	for i := range vs {
		v := &vs[i]
		args = append(args, v.At.Unix(), v.Node, v.QueueID, v.ClientIP, v.ClientName, v.Helo, v.MailFrom, strings.ToLower(v.FromDomain), strings.Join(v.Rcpts, " "),
			v.Action, v.Stage, v.Verdict, v.IPRev, v.SPF, v.DKIM, v.DMARC, v.ARC, v.Score, strings.Join(v.Rules, " "), strings.Join(v.Reasons, "\n"))
	}
	q := func() string {
		return `INSERT INTO verdicts (at, node, queue_id, client_ip, client_name, helo, mail_from, from_domain, rcpts,
		action, stage, verdict, iprev, spf, dkim, dmarc, arc, score, rules, reasons) VALUES ` + s.placeholders(len(vs), verdictColumns) + ` RETURNING id`
	}
	st, err := s.insertStmt(ctx, "verdicts", len(vs), q)
	var rows *sql.Rows
	if st != nil {
		rows, err = tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	} else if err == nil {
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
	// Neither SQLite nor PostgreSQL promises RETURNING's order, but both
	// number the rows of VALUES as they insert them, in order (SQLite's
	// AUTOINCREMENT, PostgreSQL's identity sequence): sorted, the ids
	// follow the rows even when another MX host inserts meanwhile.
	slices.Sort(ids)
	for i := range vs {
		vs[i].ID = ids[i]
	}
	return nil
}

// insertDMARCRows inserts rows, each dmarcRowArgs, with one statement.
func (s *Store) insertDMARCRows(ctx context.Context, tx *sql.Tx, rows [][]any) error {
	q := func() string {
		return `INSERT INTO dmarc_rows (at, verdict_id, policy_domain, source_ip, record, published, rua, ri) VALUES ` + s.placeholders(len(rows), dmarcRowColumns)
	}
	st, err := s.insertStmt(ctx, "dmarc_rows", len(rows), q)
	if st != nil {
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx, slices.Concat(rows...)...)
	} else if err == nil {
		_, err = tx.ExecContext(ctx, q(), slices.Concat(rows...)...)
	}
	if err != nil {
		return fmt.Errorf("store: dmarc rows: %w", err)
	}
	return nil
}

const dmarcRowColumns = 8

// dmarcRowArgs are a verdict's DMARC row as insertDMARCRows takes it.
func dmarcRowArgs(v *Verdict) ([]any, error) {
	d := v.DMARCRow
	row := d.Row
	published, err := json.Marshal(row.Published)
	if err != nil {
		return nil, fmt.Errorf("store: dmarc row: %w", err)
	}
	row.Published = dmarc.PublishedPolicy{}
	record, err := json.Marshal(row)
	if err != nil {
		return nil, fmt.Errorf("store: dmarc row: %w", err)
	}
	var rua []string
	for _, u := range d.RUA {
		rua = append(rua, u.String())
	}
	var vid any
	if v.ID != 0 {
		vid = v.ID
	}
	return []any{v.At.Unix(), vid, strings.ToLower(d.Row.PolicyDomain), d.Row.SourceIP.String(), string(record), string(published), strings.Join(rua, ","), d.RI}, nil
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

// VerdictFilter selects verdicts; zero fields match everything.
type VerdictFilter struct {
	Since, Until time.Time
	Action       string
	Domain       string // From domain, or the MAIL FROM's
	ClientIP     string
	Search       string // a substring of the reasons or rules
	Limit        int    // default 100, at most 1000
	BeforeID     int64  // paging: only verdicts older than this one
}

// Verdicts lists verdicts, newest first.
func (s *Store) Verdicts(ctx context.Context, f VerdictFilter) ([]Verdict, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if !f.Since.IsZero() {
		add("at >= ?", f.Since.Unix())
	}
	if !f.Until.IsZero() {
		add("at < ?", f.Until.Unix())
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Domain != "" {
		d := strings.ToLower(f.Domain)
		add("(from_domain = ? OR mail_from LIKE '%@' || ?)", d)
	}
	if f.ClientIP != "" {
		add("client_ip = ?", f.ClientIP)
	}
	if f.Search != "" {
		add("(reasons LIKE '%' || ? || '%' OR rules LIKE '%' || ? || '%')", f.Search)
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	limit := min(f.Limit, 1000)
	if limit <= 0 {
		limit = 100
	}
	return s.verdicts(ctx, where, args, limit)
}

func (s *Store) verdicts(ctx context.Context, where []string, args []any, limit int) ([]Verdict, error) {
	q := `SELECT id, at, node, queue_id, client_ip, client_name, helo, mail_from, from_domain, rcpts, action, stage, verdict,
		iprev, spf, dkim, dmarc, arc, score, rules, reasons FROM verdicts`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: verdicts: %w", err)
	}
	defer rows.Close()
	var out []Verdict
	for rows.Next() {
		var (
			v                     Verdict
			at                    int64
			rcpts, rules, reasons string
		)
		if err := rows.Scan(&v.ID, &at, &v.Node, &v.QueueID, &v.ClientIP, &v.ClientName, &v.Helo, &v.MailFrom, &v.FromDomain, &rcpts,
			&v.Action, &v.Stage, &v.Verdict, &v.IPRev, &v.SPF, &v.DKIM, &v.DMARC, &v.ARC, &v.Score, &rules, &reasons); err != nil {
			return nil, fmt.Errorf("store: verdicts: %w", err)
		}
		v.At = time.Unix(at, 0).UTC()
		v.Rcpts, v.Rules = strings.Fields(rcpts), strings.Fields(rules)
		if reasons != "" {
			v.Reasons = strings.Split(reasons, "\n")
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
