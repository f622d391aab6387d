package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// KnownCorrespondents implements reputation.Store: those of addrs
// (lower case) our users wrote to.
func (s *Store) KnownCorrespondents(ctx context.Context, addrs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(addrs) > 0 {
		n := min(len(addrs), repChunk)
		var q strings.Builder
		args := make([]any, n)
		q.WriteString(`SELECT address FROM correspondents WHERE address IN (`)
		for i, a := range addrs[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "$%d", i+1)
			args[i] = a
		}
		q.WriteByte(')')
		rows, err := s.db.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("store: correspondents: %w", err)
		}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: correspondents: %w", err)
			}
			out[a] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: correspondents: %w", err)
		}
		addrs = addrs[n:]
	}
	return out, nil
}

// AddCorrespondents implements reputation.Store: one transaction for
// the batch, addresses in order (two hosts writing the same ones lock
// them in the same order).
func (s *Store) AddCorrespondents(ctx context.Context, addrs map[string]int64, at time.Time) error {
	if len(addrs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: correspondents: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO correspondents (address, first_seen, last_seen, messages) VALUES ($1, $2, $2, $3)
		ON CONFLICT (address) DO UPDATE SET last_seen = excluded.last_seen, messages = correspondents.messages + excluded.messages`)
	if err != nil {
		return fmt.Errorf("store: correspondents: %w", err)
	}
	defer st.Close()
	for _, a := range slices.Sorted(maps.Keys(addrs)) {
		if _, err := st.ExecContext(ctx, a, at.Unix(), addrs[a]); err != nil {
			return fmt.Errorf("store: correspondents: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: correspondents: %w", err)
	}
	return nil
}

// PurgeCorrespondents deletes the addresses not written to since
// before.
func (s *Store) PurgeCorrespondents(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM correspondents WHERE last_seen < $1`, before.Unix())
	if err != nil {
		return 0, fmt.Errorf("store: correspondents: %w", err)
	}
	return res.RowsAffected()
}

// TakeLearnQuota implements reputation.Store: it counts one message of
// class from domain on day, unless the count has reached max. The
// conditional upsert decides in one statement, so hosts sharing the
// database share the quota.
func (s *Store) TakeLearnQuota(ctx context.Context, day int64, domain, class string, max int) (bool, error) {
	if max <= 0 {
		return false, nil
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO learn_quota (day, domain, class, count) VALUES ($1, $2, $3, 1)
		ON CONFLICT (day, domain, class) DO UPDATE SET count = learn_quota.count + 1 WHERE learn_quota.count < $4`,
		day, domain, class, max)
	if err != nil {
		return false, fmt.Errorf("store: learn quota: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: learn quota: %w", err)
	}
	// Old days go: the quota is a day's.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM learn_quota WHERE day < $1`, day-1); err != nil {
		return n == 1, fmt.Errorf("store: learn quota: %w", err)
	}
	return n == 1, nil
}
