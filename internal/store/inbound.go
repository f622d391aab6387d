package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ReceivedReport is an aggregate report that arrived here, for one of our
// domains. Error is set when it could not be read; then Raw keeps it.
type ReceivedReport struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Source     string    `json:"source"` // "milter", "maildir:<path>", "file:<path>"
	Filename   string    `json:"filename"`
	OrgName    string    `json:"org_name"`
	Email      string    `json:"email"`
	ReportID   string    `json:"report_id"`
	Domain     string    `json:"domain"`
	Begin      time.Time `json:"begin"`
	End        time.Time `json:"end"`
	Policy     string    `json:"policy"` // e.g. "p=reject sp=none adkim=r aspf=r"
	Messages   int64     `json:"messages"`
	Error      string    `json:"error,omitempty"`
	// Authenticated: the message that carried the report passed DMARC,
	// so the report is believed and counted in the domain's picture.
	// Auth says how that was found, or why not.
	Authenticated bool   `json:"authenticated"`
	Auth          string `json:"auth"`
	// Reporter is the domain the report came from, as a rate limit
	// counts it: the message's From domain when authenticated.
	Reporter string           `json:"reporter"`
	Raw      []byte           `json:"-"`
	Records  []ReceivedRecord `json:"records,omitempty"`
}

// ReceivedRecord is one <record> of a received report.
type ReceivedRecord struct {
	SourceIP     string `json:"source_ip"`
	Count        int64  `json:"count"`
	Disposition  string `json:"disposition"`
	DKIMAligned  string `json:"dkim_aligned"`
	SPFAligned   string `json:"spf_aligned"`
	HeaderFrom   string `json:"header_from"`
	EnvelopeFrom string `json:"envelope_from"`
	DKIM         string `json:"dkim"` // "domain/selector=result ..."
	SPF          string `json:"spf"`  // "domain=result"
	Reasons      string `json:"reasons"`
}

// ErrDuplicate marks a report already stored (same bytes).
var ErrDuplicate = errors.New("report already stored")

// Counts of received reports are clamped when stored: a record's to
// MaxReceivedCount, a report's to MaxReceivedMessages (20,000 records
// of that, the most a report may have). Sums over them then stay far
// from int64's end, which SQLite answers with an error and PostgreSQL
// with a numeric that does not scan.
const (
	MaxReceivedCount    = 1 << 32
	MaxReceivedMessages = MaxReceivedCount * 20_000
)

// MaxKeptRaw bounds the report file kept raw when it could not be read.
const MaxKeptRaw = 1 << 20

func clamp(n, hi int64) int64 { return min(max(n, 0), hi) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SaveReceived stores a received report and its records; raw is the
// attachment as it came, which identifies duplicates.
func (s *Store) SaveReceived(ctx context.Context, r *ReceivedReport, raw []byte) error {
	sum := sha256.Sum256(raw)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	var keep []byte
	if r.Error != "" && r.Authenticated && len(raw) <= MaxKeptRaw {
		// A malformed report is kept for a person to look at; not an
		// unauthenticated one, which anyone may send by the hundred,
		// nor a large one.
		keep = raw
	}
	r.Messages = clamp(r.Messages, MaxReceivedMessages)
	err = tx.QueryRowContext(ctx, `INSERT INTO reports_in (received_at, source, sha256, filename, org_name, email, report_id, domain, begin_at, end_at, policy, messages, error, raw,
		authenticated, auth, reporter)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (sha256) DO NOTHING RETURNING id`,
		r.ReceivedAt.Unix(), r.Source, hex.EncodeToString(sum[:]), r.Filename, r.OrgName, r.Email, r.ReportID, strings.ToLower(r.Domain),
		r.Begin.Unix(), r.End.Unix(), r.Policy, r.Messages, r.Error, keep, boolInt(r.Authenticated), r.Auth, strings.ToLower(r.Reporter)).Scan(&r.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrDuplicate
	}
	if err != nil {
		return fmt.Errorf("store: received report: %w", err)
	}
	for _, rec := range r.Records {
		if _, err := tx.ExecContext(ctx, `INSERT INTO report_records_in (report, source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf, reasons)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			r.ID, rec.SourceIP, clamp(rec.Count, MaxReceivedCount), rec.Disposition, rec.DKIMAligned, rec.SPFAligned, strings.ToLower(rec.HeaderFrom), rec.EnvelopeFrom, rec.DKIM, rec.SPF, rec.Reasons); err != nil {
			return fmt.Errorf("store: received report: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: received report: %w", err)
	}
	return nil
}

// ReceivedReports lists received reports, newest period first, without
// records; domain "" lists all.
func (s *Store) ReceivedReports(ctx context.Context, domain string, limit int) ([]ReceivedReport, error) {
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	q := `SELECT id, received_at, source, filename, org_name, email, report_id, domain, begin_at, end_at, policy, messages, error, authenticated, auth, reporter FROM reports_in`
	var args []any
	if domain != "" {
		q += ` WHERE domain = $1`
		args = append(args, strings.ToLower(domain))
	}
	rows, err := s.db.QueryContext(ctx, q+fmt.Sprintf(` ORDER BY begin_at DESC, id DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("store: received reports: %w", err)
	}
	defer rows.Close()
	var out []ReceivedReport
	for rows.Next() {
		var (
			r        ReceivedReport
			at, b, e int64
			authed   int
		)
		if err := rows.Scan(&r.ID, &at, &r.Source, &r.Filename, &r.OrgName, &r.Email, &r.ReportID, &r.Domain, &b, &e, &r.Policy, &r.Messages, &r.Error,
			&authed, &r.Auth, &r.Reporter); err != nil {
			return nil, fmt.Errorf("store: received reports: %w", err)
		}
		r.ReceivedAt, r.Begin, r.End = time.Unix(at, 0).UTC(), time.Unix(b, 0).UTC(), time.Unix(e, 0).UTC()
		r.Authenticated = authed != 0
		out = append(out, r)
	}
	return out, rows.Err()
}

// Source is one sending IP in received reports for a domain.
type Source struct {
	SourceIP    string `json:"source_ip"`
	Messages    int64  `json:"messages"`
	DKIMAligned int64  `json:"dkim_aligned"` // messages with aligned DKIM pass
	SPFAligned  int64  `json:"spf_aligned"`
	Passed      int64  `json:"passed"` // DMARC pass: either aligned
	Reporters   int    `json:"reporters"`
}

// DomainPicture is what received reports say of one of our domains.
type DomainPicture struct {
	Domain   string   `json:"domain"`
	Reports  int      `json:"reports"`
	Messages int64    `json:"messages"`
	Sources  []Source `json:"sources"` // most messages first
	// Unauthenticated counts the readable reports left out: their
	// message did not pass DMARC, so anyone could have written them.
	Unauthenticated int `json:"unauthenticated"`
}

// Picture sums the authenticated received reports for domain since a
// time.
func (s *Store) Picture(ctx context.Context, domain string, since time.Time) (*DomainPicture, error) {
	p := &DomainPicture{Domain: strings.ToLower(domain)}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(messages), 0) FROM reports_in WHERE domain = $1 AND end_at >= $2 AND error = '' AND authenticated = 1`,
		p.Domain, since.Unix()).Scan(&p.Reports, &p.Messages); err != nil {
		return nil, fmt.Errorf("store: picture %s: %w", domain, err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reports_in WHERE domain = $1 AND end_at >= $2 AND error = '' AND authenticated = 0`,
		p.Domain, since.Unix()).Scan(&p.Unauthenticated); err != nil {
		return nil, fmt.Errorf("store: picture %s: %w", domain, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT r.source_ip, SUM(r.count),
		SUM(CASE WHEN r.dkim_aligned = 'pass' THEN r.count ELSE 0 END),
		SUM(CASE WHEN r.spf_aligned = 'pass' THEN r.count ELSE 0 END),
		SUM(CASE WHEN r.dkim_aligned = 'pass' OR r.spf_aligned = 'pass' THEN r.count ELSE 0 END),
		COUNT(DISTINCT i.org_name)
		FROM report_records_in r JOIN reports_in i ON i.id = r.report
		WHERE i.domain = $1 AND i.end_at >= $2 AND i.error = '' AND i.authenticated = 1
		GROUP BY r.source_ip ORDER BY 2 DESC, 1 LIMIT 500`, p.Domain, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("store: picture %s: %w", domain, err)
	}
	defer rows.Close()
	for rows.Next() {
		var src Source
		if err := rows.Scan(&src.SourceIP, &src.Messages, &src.DKIMAligned, &src.SPFAligned, &src.Passed, &src.Reporters); err != nil {
			return nil, fmt.Errorf("store: picture %s: %w", domain, err)
		}
		p.Sources = append(p.Sources, src)
	}
	return p, rows.Err()
}

// ReceivedFrom counts the reports stored from a reporter since a time,
// malformed and unauthenticated ones included: a rate limit's count.
func (s *Store) ReceivedFrom(ctx context.Context, reporter string, since time.Time) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reports_in WHERE reporter = $1 AND received_at >= $2`,
		strings.ToLower(reporter), since.Unix()).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: reports from %s: %w", reporter, err)
	}
	return n, nil
}

// ReportedDomains lists the domains received reports are about.
func (s *Store) ReportedDomains(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT domain FROM reports_in WHERE domain <> '' ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("store: reported domains: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
