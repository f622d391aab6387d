package store

import (
	"context"
	"fmt"
	"time"
)

// Retention says how long records are kept; zero keeps them for ever.
type Retention struct {
	Verdicts time.Duration // verdicts and the DMARC rows already reported
	Reports  time.Duration // reports sent and received
}

// Purged counts what Purge deleted.
type Purged struct {
	Verdicts, DMARCRows, ReportsOut, ReportsIn int64
}

// Purge deletes what is older than the retention allows. A DMARC row not
// yet in a report is kept until the reports' retention ends, so a long
// reporting outage does not lose the data owed to domain owners.
func (s *Store) Purge(ctx context.Context, now time.Time, r Retention) (Purged, error) {
	var p Purged
	exec := func(n *int64, q string, args ...any) error {
		res, err := s.db.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("store: purge: %w", err)
		}
		*n, _ = res.RowsAffected()
		return nil
	}
	if r.Verdicts > 0 {
		cut := now.Add(-r.Verdicts).Unix()
		if err := exec(&p.Verdicts, `DELETE FROM verdicts WHERE at < $1`, cut); err != nil {
			return p, err
		}
		if err := exec(&p.DMARCRows, `DELETE FROM dmarc_rows WHERE at < $1 AND report_id IS NOT NULL`, cut); err != nil {
			return p, err
		}
	}
	if r.Reports > 0 {
		cut := now.Add(-r.Reports).Unix()
		var n int64
		if err := exec(&n, `DELETE FROM dmarc_rows WHERE at < $1`, cut); err != nil {
			return p, err
		}
		p.DMARCRows += n
		if err := exec(&p.ReportsOut, `DELETE FROM reports_out WHERE created_at < $1 AND NOT EXISTS
			(SELECT 1 FROM report_deliveries d WHERE d.report = reports_out.id AND d.state IN ('pending', 'sending'))`, cut); err != nil {
			return p, err
		}
		if err := exec(&p.ReportsIn, `DELETE FROM reports_in WHERE received_at < $1`, cut); err != nil {
			return p, err
		}
	}
	return p, nil
}
