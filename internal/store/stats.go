package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stages are the checks whose results the store sums, in pipeline order.
var Stages = []string{"iprev", "spf", "dkim", "dmarc", "arc"}

// Result classes a stage's result is summed under.
const (
	ClassPass  = "pass"
	ClassFail  = "fail"  // fail, softfail, permerror: the sender's fault
	ClassNone  = "none"  // not evaluated, or nothing published
	ClassOther = "other" // neutral, temperror, policy: no judgement
)

// stageClass is the SQL that puts a verdict's result for stage in one of
// the classes above. DKIM keeps every signature ("pass:a.example
// fail:b.example"): one passing signature makes the message pass (RFC
// 6376 §6.1: a verifier may accept any valid signature), else any failing
// one makes it fail.
func stageClass(stage string) string {
	if stage == "dkim" {
		return `CASE WHEN (' ' || dkim) LIKE '% pass:%' THEN 'pass'
			WHEN (' ' || dkim) LIKE '% fail:%' OR (' ' || dkim) LIKE '% permerror:%' THEN 'fail'
			WHEN dkim = '' OR dkim NOT LIKE '%:%' OR (' ' || dkim) LIKE '% none:%' THEN 'none'
			ELSE 'other' END`
	}
	return fmt.Sprintf(`CASE WHEN %[1]s = 'pass' THEN 'pass'
		WHEN %[1]s IN ('fail', 'softfail', 'permerror') THEN 'fail'
		WHEN %[1]s IN ('', 'none') THEN 'none'
		ELSE 'other' END`, stage)
}

// ClassCounts counts verdicts per result class.
type ClassCounts struct {
	Pass  int64 `json:"pass"`
	Fail  int64 `json:"fail"`
	None  int64 `json:"none"`
	Other int64 `json:"other"`
}

// Total is every verdict counted.
func (c ClassCounts) Total() int64 { return c.Pass + c.Fail + c.None + c.Other }

// Add counts one verdict of class.
func (c *ClassCounts) Add(class string, n int64) {
	switch class {
	case ClassPass:
		c.Pass += n
	case ClassFail:
		c.Fail += n
	case ClassNone:
		c.None += n
	default:
		c.Other += n
	}
}

// StageSeries is a stage's results in consecutive buckets of time.
type StageSeries struct {
	Stage   string        `json:"stage"`
	Buckets []ClassCounts `json:"buckets"`
	Total   ClassCounts   `json:"total"`
}

// StageRates sums each stage's results over [since, until) in buckets of
// width; the last bucket may be shorter.
func (s *Store) StageRates(ctx context.Context, since, until time.Time, width time.Duration) ([]StageSeries, error) {
	w := int64(width / time.Second)
	if w <= 0 || !since.Before(until) {
		return nil, fmt.Errorf("store: stage rates: empty range or bucket")
	}
	n := (until.Unix() - since.Unix() + w - 1) / w
	if n > 10000 {
		return nil, fmt.Errorf("store: stage rates: %d buckets is too many", n)
	}
	// One scan: each row is a bucket and a combination of classes, one
	// column per stage.
	classes, names := make([]string, len(Stages)), make([]string, len(Stages))
	for i, stage := range Stages {
		names[i] = "c" + strconv.Itoa(i)
		classes[i] = stageClass(stage) + " AS " + names[i]
	}
	group := "b, " + strings.Join(names, ", ")
	rows, err := s.db.QueryContext(ctx, `SELECT `+group+`, COUNT(*) FROM (
		SELECT (at - $1) / $2 AS b, `+strings.Join(classes, ", ")+` FROM verdicts WHERE at >= $1 AND at < $3) AS classed
		GROUP BY `+group, since.Unix(), w, until.Unix())
	if err != nil {
		return nil, fmt.Errorf("store: stage rates: %w", err)
	}
	defer rows.Close()
	out := make([]StageSeries, len(Stages))
	for i, stage := range Stages {
		out[i] = StageSeries{Stage: stage, Buckets: make([]ClassCounts, n)}
	}
	var bucket, count int64
	class := make([]string, len(Stages))
	dest := []any{&bucket}
	for i := range class {
		dest = append(dest, &class[i])
	}
	dest = append(dest, &count)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("store: stage rates: %w", err)
		}
		for i := range out {
			out[i].Buckets[bucket].Add(class[i], count)
			out[i].Total.Add(class[i], count)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: stage rates: %w", err)
	}
	return out, nil
}

// Sender is a sending domain or IP address with its traffic.
type Sender struct {
	Key       string `json:"key"`  // the From domain or the client IP
	Name      string `json:"name"` // for an IP, its verified host name if any
	Messages  int64  `json:"messages"`
	DMARCPass int64  `json:"dmarc_pass"`
	Refused   int64  `json:"refused"` // rejected, quarantined or deferred
}

// TopSenders lists the From domains (by "domain") or client IPs (by "ip")
// with the most messages since a time.
func (s *Store) TopSenders(ctx context.Context, by string, since time.Time, limit int) ([]Sender, error) {
	var key, name string
	switch by {
	case "domain":
		key, name = "from_domain", "''"
	case "ip":
		key, name = "client_ip", "MAX(client_name)"
	default:
		return nil, fmt.Errorf("store: top senders by %q", by)
	}
	if limit <= 0 || limit > 1000 {
		limit = 10
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT %[1]s, %[2]s, COUNT(*),
		SUM(CASE WHEN dmarc = 'pass' THEN 1 ELSE 0 END),
		SUM(CASE WHEN action IN ('reject', 'quarantine', 'tempfail') THEN 1 ELSE 0 END)
		FROM verdicts WHERE at >= $1 AND %[1]s <> '' GROUP BY %[1]s ORDER BY 3 DESC, 1 LIMIT %[3]d`, key, name, limit), since.Unix())
	if err != nil {
		return nil, fmt.Errorf("store: top senders: %w", err)
	}
	defer rows.Close()
	var out []Sender
	for rows.Next() {
		var x Sender
		if err := rows.Scan(&x.Key, &x.Name, &x.Messages, &x.DMARCPass, &x.Refused); err != nil {
			return nil, fmt.Errorf("store: top senders: %w", err)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// ActionCounts counts verdicts per action since a time.
func (s *Store) ActionCounts(ctx context.Context, since time.Time) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT action, COUNT(*) FROM verdicts WHERE at >= $1 GROUP BY action`, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("store: action counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			a string
			n int64
		)
		if err := rows.Scan(&a, &n); err != nil {
			return nil, fmt.Errorf("store: action counts: %w", err)
		}
		out[a] = n
	}
	return out, rows.Err()
}

// Verdict reads one verdict by ID.
func (s *Store) Verdict(ctx context.Context, id int64) (*Verdict, error) {
	vs, err := s.verdicts(ctx, []string{"id = $1"}, []any{id}, 1)
	if err != nil || len(vs) == 0 {
		return nil, err
	}
	return &vs[0], nil
}

// Reason is what decided the mail not accepted: a deciding stage and the
// action it led to, with how many verdicts and one reason as an example.
type Reason struct {
	Stage   string `json:"stage"`
	Action  string `json:"action"`
	Count   int64  `json:"count"`
	Example string `json:"example"` // the first reason line of one of them
}

// maxExample bounds a reason shown as an example.
const maxExample = 200

// TopReasons lists the deciding stages and actions of the verdicts in
// [since, until) that were not accepted, the most frequent first.
func (s *Store) TopReasons(ctx context.Context, since, until time.Time, limit int) ([]Reason, error) {
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT stage, action, COUNT(*), MAX(reasons) FROM verdicts
		WHERE at >= $1 AND at < $2 AND action NOT IN ('accept', 'internal')
		GROUP BY stage, action ORDER BY 3 DESC, 1, 2 LIMIT %d`, limit), since.Unix(), until.Unix())
	if err != nil {
		return nil, fmt.Errorf("store: top reasons: %w", err)
	}
	defer rows.Close()
	var out []Reason
	for rows.Next() {
		var r Reason
		if err := rows.Scan(&r.Stage, &r.Action, &r.Count, &r.Example); err != nil {
			return nil, fmt.Errorf("store: top reasons: %w", err)
		}
		r.Example, _, _ = strings.Cut(r.Example, "\n")
		if len(r.Example) > maxExample {
			r.Example = strings.ToValidUTF8(r.Example[:maxExample], "") + "…"
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RuleCount is one scoring rule's hits.
type RuleCount struct {
	Rule     string `json:"rule"`
	Messages int64  `json:"messages"` // verdicts it fired on
	Refused  int64  `json:"refused"`  // of those, rejected, quarantined or deferred
	Weight   int64  `json:"weight"`   // the sum of its weights
}

// maxRuleScan bounds the verdicts TopRules reads: the rules column is a
// list that SQL does not split the same way on SQLite and PostgreSQL, so
// it is read and counted here, newest first.
const maxRuleScan = 50000

// TopRules counts the scoring rules of the verdicts in [since, until),
// the most frequent first. truncated is true when more than the newest
// maxRuleScan verdicts with rules fell in the range: the counts are of
// those only.
func (s *Store) TopRules(ctx context.Context, since, until time.Time, limit int) (rules []RuleCount, truncated bool, err error) {
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT rules, action FROM verdicts
		WHERE at >= $1 AND at < $2 AND rules <> '' ORDER BY at DESC LIMIT %d`, maxRuleScan+1), since.Unix(), until.Unix())
	if err != nil {
		return nil, false, fmt.Errorf("store: top rules: %w", err)
	}
	defer rows.Close()
	byName := map[string]*RuleCount{}
	n := 0
	for rows.Next() {
		var list, action string
		if err := rows.Scan(&list, &action); err != nil {
			return nil, false, fmt.Errorf("store: top rules: %w", err)
		}
		if n++; n > maxRuleScan {
			truncated = true
			break
		}
		// "name=weight ...", as the X-Mailwall-Score header lists them.
		for _, f := range strings.Fields(list) {
			name, weight, _ := strings.Cut(f, "=")
			rc := byName[name]
			if rc == nil {
				if len(byName) >= 10000 {
					continue // a bound on names, against a store of junk
				}
				rc = &RuleCount{Rule: name}
				byName[name] = rc
			}
			rc.Messages++
			if action == "reject" || action == "quarantine" || action == "tempfail" {
				rc.Refused++
			}
			w, _ := strconv.ParseInt(weight, 10, 64)
			rc.Weight += w
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: top rules: %w", err)
	}
	for _, rc := range byName {
		rules = append(rules, *rc)
	}
	slices.SortFunc(rules, func(a, b RuleCount) int {
		if c := cmp.Compare(b.Messages, a.Messages); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	return rules[:min(len(rules), limit)], truncated, nil
}

// FailedDelivery is a report delivery given up, with its report's domain.
type FailedDelivery struct {
	Delivery
	PolicyDomain string    `json:"policy_domain"`
	Begin        time.Time `json:"begin"`
}

// DeliveryStates counts the deliveries of the reports made since a time
// by state, and lists the newest of them that failed (at most limit).
func (s *Store) DeliveryStates(ctx context.Context, since time.Time, limit int) (map[string]int64, []FailedDelivery, error) {
	if limit <= 0 || limit > 100 {
		limit = 5
	}
	rows, err := s.db.QueryContext(ctx, `SELECT d.state, COUNT(*) FROM report_deliveries d JOIN reports_out r ON r.id = d.report
		WHERE r.created_at >= $1 GROUP BY d.state`, since.Unix())
	if err != nil {
		return nil, nil, fmt.Errorf("store: delivery states: %w", err)
	}
	counts := map[string]int64{}
	for rows.Next() {
		var (
			state string
			n     int64
		)
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("store: delivery states: %w", err)
		}
		counts[state] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: delivery states: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, fmt.Sprintf(`SELECT d.id, d.report, d.uri, d.attempts, d.last_error, r.policy_domain, r.begin_at
		FROM report_deliveries d JOIN reports_out r ON r.id = d.report
		WHERE r.created_at >= $1 AND d.state = 'failed' ORDER BY d.id DESC LIMIT %d`, limit), since.Unix())
	if err != nil {
		return nil, nil, fmt.Errorf("store: failed deliveries: %w", err)
	}
	defer rows.Close()
	var failed []FailedDelivery
	for rows.Next() {
		var (
			f     FailedDelivery
			begin int64
		)
		if err := rows.Scan(&f.ID, &f.Report, &f.URI, &f.Attempts, &f.LastError, &f.PolicyDomain, &begin); err != nil {
			return nil, nil, fmt.Errorf("store: failed deliveries: %w", err)
		}
		f.State, f.Begin = Failed, time.Unix(begin, 0).UTC()
		failed = append(failed, f)
	}
	return counts, failed, rows.Err()
}

// ActionRates counts the verdicts of [since, until) in buckets of width
// by action: out[bucket][i] counts actions[i], and out[bucket][len(actions)]
// every other action.
func (s *Store) ActionRates(ctx context.Context, since, until time.Time, width time.Duration, actions []string) ([][]int64, error) {
	w := int64(width / time.Second)
	if w <= 0 || !since.Before(until) {
		return nil, fmt.Errorf("store: action rates: empty range or bucket")
	}
	n := (until.Unix() - since.Unix() + w - 1) / w
	if n > 10000 {
		return nil, fmt.Errorf("store: action rates: %d buckets is too many", n)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT (at - $1) / $2 AS b, action, COUNT(*) FROM verdicts WHERE at >= $1 AND at < $3 GROUP BY b, action`,
		since.Unix(), w, until.Unix())
	if err != nil {
		return nil, fmt.Errorf("store: action rates: %w", err)
	}
	defer rows.Close()
	out := make([][]int64, n)
	for i := range out {
		out[i] = make([]int64, len(actions)+1)
	}
	for rows.Next() {
		var (
			b, count int64
			action   string
		)
		if err := rows.Scan(&b, &action, &count); err != nil {
			return nil, fmt.Errorf("store: action rates: %w", err)
		}
		i := slices.Index(actions, action)
		if i < 0 {
			i = len(actions)
		}
		out[b][i] += count
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: action rates: %w", err)
	}
	return out, nil
}
