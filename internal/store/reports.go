package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mailwall/internal/dmarc"
)

// PendingDomain is a DMARC Policy Domain with rows not yet in a report.
type PendingDomain struct {
	Domain string
	Oldest time.Time // the oldest unreported row
	RI     int       // ri= of the newest row's record, -1 when absent
}

// UnreportedDomains lists the policy domains with rows waiting for a
// report.
func (s *Store) UnreportedDomains(ctx context.Context) ([]PendingDomain, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.policy_domain, p.oldest,
		(SELECT r.ri FROM dmarc_rows r WHERE r.policy_domain = p.policy_domain ORDER BY r.at DESC, r.id DESC LIMIT 1)
		FROM (SELECT policy_domain, MIN(at) AS oldest FROM dmarc_rows WHERE report_id IS NULL GROUP BY policy_domain) p
		ORDER BY p.policy_domain`)
	if err != nil {
		return nil, fmt.Errorf("store: unreported domains: %w", err)
	}
	defer rows.Close()
	var out []PendingDomain
	for rows.Next() {
		var (
			d      PendingDomain
			oldest int64
		)
		if err := rows.Scan(&d.Domain, &oldest, &d.RI); err != nil {
			return nil, fmt.Errorf("store: unreported domains: %w", err)
		}
		d.Oldest = time.Unix(oldest, 0).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// RowGroup is a set of equal DMARC rows: one <record> of a report.
type RowGroup struct {
	Row   dmarc.Row // Published is left empty
	Count int64
}

// Period is what a report for one domain and period is made of.
type Period struct {
	// The newest row's policy and addresses: RFC 9990 §3.1 says to note
	// the final configuration observed in the period.
	Published dmarc.PublishedPolicy
	RUA       []dmarc.URI
	Groups    []RowGroup // largest first
}

// PeriodRows groups the unreported rows of domain in [begin, end).
func (s *Store) PeriodRows(ctx context.Context, domain string, begin, end time.Time) (*Period, error) {
	var p Period
	var published, rua string
	err := s.db.QueryRowContext(ctx, `SELECT published, rua FROM dmarc_rows WHERE policy_domain = $1 AND at >= $2 AND at < $3 AND report_id IS NULL
		ORDER BY at DESC, id DESC LIMIT 1`, domain, begin.Unix(), end.Unix()).Scan(&published, &rua)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", domain, err)
	}
	if err := json.Unmarshal([]byte(published), &p.Published); err != nil {
		return nil, fmt.Errorf("store: %s: published policy: %w", domain, err)
	}
	p.RUA, _ = dmarc.ParseURIs(rua)
	rows, err := s.db.QueryContext(ctx, `SELECT record, COUNT(*) AS n FROM dmarc_rows
		WHERE policy_domain = $1 AND at >= $2 AND at < $3 AND report_id IS NULL GROUP BY record ORDER BY n DESC, record`, domain, begin.Unix(), end.Unix())
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", domain, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			rec string
			g   RowGroup
		)
		if err := rows.Scan(&rec, &g.Count); err != nil {
			return nil, fmt.Errorf("store: %s: %w", domain, err)
		}
		if err := json.Unmarshal([]byte(rec), &g.Row); err != nil {
			return nil, fmt.Errorf("store: %s: row: %w", domain, err)
		}
		p.Groups = append(p.Groups, g)
	}
	return &p, rows.Err()
}

// ReportOut is an aggregate report made here.
type ReportOut struct {
	ID           int64      `json:"id"`
	PolicyDomain string     `json:"policy_domain"`
	Begin        time.Time  `json:"begin"`
	End          time.Time  `json:"end"`
	ReportID     string     `json:"report_id"`
	Filename     string     `json:"filename"`
	Created      time.Time  `json:"created"`
	Records      int        `json:"records"`
	Messages     int64      `json:"messages"`
	XMLSize      int64      `json:"xml_size"`
	GZ           []byte     `json:"-"` // the gzipped XML, as sent
	Deliveries   []Delivery `json:"deliveries"`
}

// Delivery is one report to one destination.
type Delivery struct {
	ID        int64     `json:"id"`
	Report    int64     `json:"report"`
	URI       string    `json:"uri"`
	MaxSize   int64     `json:"max_size,omitempty"`
	State     string    `json:"state"` // pending, sending, sent, failed, dropped
	Attempts  int       `json:"attempts"`
	NextTry   time.Time `json:"next_try"`
	LastError string    `json:"last_error,omitempty"`
	SentAt    time.Time `json:"sent_at"`
	MessageID string    `json:"message_id,omitempty"`
}

// Delivery states.
const (
	Pending = "pending"
	Sending = "sending"
	Sent    = "sent"
	Failed  = "failed"
	Dropped = "dropped"
)

// SaveReport stores a report for [r.Begin, r.End), marks the period's
// unreported rows of the domain as in it and queues one delivery per
// address, all in one transaction: a crash leaves either all or nothing.
// When a report for that domain and period exists already (another node
// made it) the rows are attached to it and created is false.
func (s *Store) SaveReport(ctx context.Context, r *ReportOut, rua []dmarc.URI) (created bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `INSERT INTO reports_out (policy_domain, begin_at, end_at, report_id, filename, created_at, records, messages, xml_size, gz)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (policy_domain, begin_at) DO NOTHING RETURNING id`,
		r.PolicyDomain, r.Begin.Unix(), r.End.Unix(), r.ReportID, r.Filename, r.Created.Unix(), r.Records, r.Messages, r.XMLSize, r.GZ).Scan(&r.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := tx.QueryRowContext(ctx, `SELECT id FROM reports_out WHERE policy_domain = $1 AND begin_at = $2`, r.PolicyDomain, r.Begin.Unix()).Scan(&r.ID); err != nil {
			return false, fmt.Errorf("store: report %s: %w", r.ReportID, err)
		}
	case err != nil:
		return false, fmt.Errorf("store: report %s: %w", r.ReportID, err)
	default:
		created = true
	}
	if _, err := tx.ExecContext(ctx, `UPDATE dmarc_rows SET report_id = $1 WHERE policy_domain = $2 AND at >= $3 AND at < $4 AND report_id IS NULL`,
		r.ID, r.PolicyDomain, r.Begin.Unix(), r.End.Unix()); err != nil {
		return false, fmt.Errorf("store: report %s: %w", r.ReportID, err)
	}
	if created {
		for _, u := range rua {
			if _, err := tx.ExecContext(ctx, `INSERT INTO report_deliveries (report, uri, max_size, state, attempts, next_try, last_error, sent_at, message_id)
				VALUES ($1, $2, $3, 'pending', 0, $4, '', 0, '') ON CONFLICT (report, uri) DO NOTHING`, r.ID, u.URI, u.MaxSize, r.Created.Unix()); err != nil {
				return false, fmt.Errorf("store: report %s: %w", r.ReportID, err)
			}
		}
	}
	return created, tx.Commit()
}

// SetAside marks the unreported rows of domain in [begin, end) as owing
// no report (the record asked for none): they are not looked at again.
func (s *Store) SetAside(ctx context.Context, domain string, begin, end time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE dmarc_rows SET report_id = 0 WHERE policy_domain = $1 AND at >= $2 AND at < $3 AND report_id IS NULL`,
		domain, begin.Unix(), end.Unix())
	if err != nil {
		return fmt.Errorf("store: %s: %w", domain, err)
	}
	return nil
}

// ReportFilter selects reports; zero fields match all.
type ReportFilter struct {
	Domain string
	Limit  int // default 100
}

const reportColumns = `id, policy_domain, begin_at, end_at, report_id, filename, created_at, records, messages, xml_size`

// scanReport reads reportColumns into r, and any further columns into
// extra.
func scanReport(sc interface{ Scan(...any) error }, r *ReportOut, extra ...any) error {
	var b, e, c int64
	if err := sc.Scan(append([]any{&r.ID, &r.PolicyDomain, &b, &e, &r.ReportID, &r.Filename, &c, &r.Records, &r.Messages, &r.XMLSize}, extra...)...); err != nil {
		return err
	}
	r.Begin, r.End, r.Created = time.Unix(b, 0).UTC(), time.Unix(e, 0).UTC(), time.Unix(c, 0).UTC()
	return nil
}

// Reports lists reports made here, newest first, with their deliveries.
func (s *Store) Reports(ctx context.Context, f ReportFilter) ([]ReportOut, error) {
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	q := `SELECT ` + reportColumns + ` FROM reports_out`
	var args []any
	if f.Domain != "" {
		q += ` WHERE policy_domain = $1`
		args = append(args, strings.ToLower(f.Domain))
	}
	rows, err := s.db.QueryContext(ctx, q+fmt.Sprintf(` ORDER BY begin_at DESC, id DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("store: reports: %w", err)
	}
	var out []ReportOut
	for rows.Next() {
		var r ReportOut
		if err := scanReport(rows, &r); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: reports: %w", err)
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reports: %w", err)
	}
	for i := range out {
		if out[i].Deliveries, err = s.deliveries(ctx, `WHERE report = $1`, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Report returns one report with its bytes and deliveries, by number or
// by Report-ID.
func (s *Store) Report(ctx context.Context, id int64, reportID string) (*ReportOut, error) {
	var r ReportOut
	row := s.db.QueryRowContext(ctx, `SELECT `+reportColumns+`, gz FROM reports_out WHERE id = $1 OR report_id = $2`, id, reportID)
	err := scanReport(row, &r, &r.GZ)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: no report %d %q", id, reportID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: report: %w", err)
	}
	r.Deliveries, err = s.deliveries(ctx, `WHERE report = $1`, r.ID)
	return &r, err
}

func (s *Store) deliveries(ctx context.Context, where string, args ...any) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, report, uri, max_size, state, attempts, next_try, last_error, sent_at, message_id
		FROM report_deliveries `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d            Delivery
			next, sentAt int64
		)
		if err := rows.Scan(&d.ID, &d.Report, &d.URI, &d.MaxSize, &d.State, &d.Attempts, &next, &d.LastError, &sentAt, &d.MessageID); err != nil {
			return nil, fmt.Errorf("store: deliveries: %w", err)
		}
		d.NextTry = time.Unix(next, 0).UTC()
		if sentAt > 0 {
			d.SentAt = time.Unix(sentAt, 0).UTC()
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DueDeliveries lists pending deliveries whose next try has come (all
// pending ones when now is zero).
func (s *Store) DueDeliveries(ctx context.Context, now time.Time) ([]Delivery, error) {
	if now.IsZero() {
		return s.deliveries(ctx, `WHERE state = 'pending'`)
	}
	return s.deliveries(ctx, `WHERE state = 'pending' AND next_try <= $1`, now.Unix())
}

// ClaimDelivery moves a pending delivery to sending and counts the
// attempt; false when it is no longer pending.
func (s *Store) ClaimDelivery(ctx context.Context, id int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE report_deliveries SET state = 'sending', attempts = attempts + 1 WHERE id = $1 AND state = 'pending'`, id)
	if err != nil {
		return false, fmt.Errorf("store: claim delivery %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishDelivery records the outcome of an attempt.
func (s *Store) FinishDelivery(ctx context.Context, d Delivery) error {
	var sentAt int64
	if !d.SentAt.IsZero() {
		sentAt = d.SentAt.Unix()
	}
	_, err := s.db.ExecContext(ctx, `UPDATE report_deliveries SET state = $1, next_try = $2, last_error = $3, sent_at = $4, message_id = $5 WHERE id = $6`,
		d.State, d.NextTry.Unix(), d.LastError, sentAt, d.MessageID, d.ID)
	if err != nil {
		return fmt.Errorf("store: delivery %d: %w", d.ID, err)
	}
	return nil
}

// RecoverDeliveries puts back to pending the deliveries left "sending"
// by a sender that died. Call it only while holding the send lock: then
// no live sender owns them.
func (s *Store) RecoverDeliveries(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE report_deliveries SET state = 'pending' WHERE state = 'sending'`)
	if err != nil {
		return 0, fmt.Errorf("store: recover deliveries: %w", err)
	}
	return res.RowsAffected()
}

// TryLock takes the named lock shared by every process using this store
// without waiting: a PostgreSQL advisory lock (held by one connection,
// so across MX hosts) or, for SQLite, an flock beside the database file.
// Both are released by the operating system or the server when the
// holder dies. ok is false when another holds it.
func (s *Store) TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	if s.driver == "postgres" {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
		}
		h := fnv.New64a()
		h.Write([]byte("mailwall:" + name))
		key := int64(h.Sum64() >> 1)
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
			conn.Close()
			if err != nil {
				return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
			}
			return nil, false, nil
		}
		return func() {
			conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
			conn.Close()
		}, true, nil
	}
	f, err := os.OpenFile(s.path+"."+name+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("store: lock %s: %w", name, err)
	}
	return func() { f.Close() }, true, nil
}
