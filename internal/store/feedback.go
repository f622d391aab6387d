package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// VerdictFeedback is what the dashboard's "spam" and "not spam" buttons
// need of a verdict: the classifier's hashed features kept with it (nil
// when the classifier did not run) and the feedback given so far.
type VerdictFeedback struct {
	Features []byte
	Feedback string
}

// VerdictFeedback reads a verdict's features and feedback; nil when
// there is no such verdict.
func (s *Store) VerdictFeedback(ctx context.Context, id int64) (*VerdictFeedback, error) {
	var f VerdictFeedback
	switch err := s.db.QueryRowContext(ctx, `SELECT features, feedback FROM verdicts WHERE id = $1`, id).Scan(&f.Features, &f.Feedback); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("store: verdict %d feedback: %w", id, err)
	}
	return &f, nil
}

// SetVerdictFeedback records what a person said of a verdict ("spam",
// "ham", "" for nothing); false when there is no such verdict.
func (s *Store) SetVerdictFeedback(ctx context.Context, id int64, feedback string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE verdicts SET feedback = $1 WHERE id = $2`, feedback, id)
	if err != nil {
		return false, fmt.Errorf("store: verdict %d feedback: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FailedDeliveries lists the report deliveries given up (state failed)
// with their reports' domain and start, newest report first, at most
// limit (default 100).
func (s *Store) FailedDeliveries(ctx context.Context, limit int) ([]FailedDelivery, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT d.id, d.report, d.uri, d.attempts, d.last_error, r.policy_domain, r.begin_at
		FROM report_deliveries d JOIN reports_out r ON r.id = d.report WHERE d.state = 'failed' ORDER BY d.report DESC, d.id DESC LIMIT %d`, limit))
	if err != nil {
		return nil, fmt.Errorf("store: failed deliveries: %w", err)
	}
	defer rows.Close()
	var out []FailedDelivery
	for rows.Next() {
		f := FailedDelivery{Delivery: Delivery{State: Failed}}
		var begin int64
		if err := rows.Scan(&f.ID, &f.Report, &f.URI, &f.Attempts, &f.LastError, &f.PolicyDomain, &begin); err != nil {
			return nil, fmt.Errorf("store: failed deliveries: %w", err)
		}
		f.Begin = time.Unix(begin, 0).UTC()
		out = append(out, f)
	}
	return out, rows.Err()
}

// RetryDelivery puts a failed delivery back in the queue, due at now
// with a fresh count of attempts, for the report sender's next run;
// false when it is not (or no longer) failed. Dropped deliveries stay
// dropped: they were refused by the destination's own rules (no
// consent, over its size limit), which a retry does not change.
func (s *Store) RetryDelivery(ctx context.Context, id int64, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE report_deliveries SET state = 'pending', attempts = 0, next_try = $1, last_error = ''
		WHERE id = $2 AND state = 'failed'`, now.Unix(), id)
	if err != nil {
		return false, fmt.Errorf("store: retry delivery %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
