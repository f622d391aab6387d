package store

import (
	"context"
	"fmt"
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
