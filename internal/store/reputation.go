package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"mailwall/internal/reputation"
)

// The store keeps the reputation of authenticated identities
// (internal/reputation): one row per kind and identity, its ham and
// spam evidence as of updated_at. Several MX hosts on one PostgreSQL
// database add to the same rows.
var _ reputation.Store = (*Store)(nil)

// repChunk bounds the identities of one statement.
const repChunk = 200

// ReputationCounts implements reputation.Store: the rows of keys, as
// stored (the caller decays them to now).
func (s *Store) ReputationCounts(ctx context.Context, keys []reputation.Key) (map[reputation.Key]reputation.Counts, error) {
	out := make(map[reputation.Key]reputation.Counts, len(keys))
	for len(keys) > 0 {
		n := min(len(keys), repChunk)
		var q strings.Builder
		args := make([]any, 0, 2*n)
		q.WriteString(`SELECT kind, identity, ham, spam, first_seen, updated_at FROM reputation WHERE (kind, identity) IN (`)
		for i, k := range keys[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "($%d,$%d)", 2*i+1, 2*i+2)
			args = append(args, string(k.Kind), k.Identity)
		}
		q.WriteByte(')')
		if err := s.scanReputation(ctx, q.String(), args, func(e reputation.Entry) { out[e.Key] = e.Counts }); err != nil {
			return nil, err
		}
		keys = keys[n:]
	}
	return out, nil
}

func (s *Store) scanReputation(ctx context.Context, q string, args []any, fn func(reputation.Entry)) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: reputation: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e reputation.Entry
		var kind string
		var first, updated int64
		if err := rows.Scan(&kind, &e.Identity, &e.Ham, &e.Spam, &first, &updated); err != nil {
			return fmt.Errorf("store: reputation: %w", err)
		}
		e.Kind = reputation.Kind(kind)
		e.FirstSeen, e.Updated = time.Unix(first, 0), time.Unix(updated, 0)
		fn(e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: reputation: %w", err)
	}
	return nil
}

// addReputationSQL decays a row to the delta's time (never forwards:
// a host whose clock is behind adds without decaying) and adds the
// delta, never below 0; $6 is the half-life in seconds.
const addReputationSQL = `INSERT INTO reputation (kind, identity, ham, spam, first_seen, updated_at)
	VALUES ($1, $2, {{greatest}}(CAST($3 AS DOUBLE PRECISION), 0), {{greatest}}(CAST($4 AS DOUBLE PRECISION), 0), $5, $5)
	ON CONFLICT (kind, identity) DO UPDATE SET
	ham = {{greatest}}(reputation.ham * power(0.5, {{greatest}}(excluded.updated_at - reputation.updated_at, 0) / CAST($6 AS DOUBLE PRECISION)) + CAST($3 AS DOUBLE PRECISION), 0),
	spam = {{greatest}}(reputation.spam * power(0.5, {{greatest}}(excluded.updated_at - reputation.updated_at, 0) / CAST($6 AS DOUBLE PRECISION)) + CAST($4 AS DOUBLE PRECISION), 0),
	updated_at = {{greatest}}(reputation.updated_at, excluded.updated_at)`

// AddReputation implements reputation.Store: one transaction for the
// batch, its rows in key order, so that two hosts writing the same rows
// at once wait for each other instead of deadlocking.
func (s *Store) AddReputation(ctx context.Context, deltas []reputation.Delta, halfLife time.Duration) error {
	if len(deltas) == 0 {
		return nil
	}
	deltas = slices.Clone(deltas)
	slices.SortFunc(deltas, func(a, b reputation.Delta) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Identity, b.Identity))
	})
	q := strings.ReplaceAll(addReputationSQL, "{{greatest}}", map[bool]string{true: "GREATEST", false: "max"}[s.driver == "postgres"])
	hl := max(halfLife.Seconds(), 1)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: reputation: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return fmt.Errorf("store: reputation: %w", err)
	}
	defer st.Close()
	for _, d := range deltas {
		at := d.At.Unix()
		if _, err := st.ExecContext(ctx, string(d.Kind), d.Identity, d.Ham, d.Spam, at, hl); err != nil {
			return fmt.Errorf("store: reputation %s: %w", d.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: reputation: %w", err)
	}
	return nil
}

// TopReputation implements reputation.Store: the n identities of kind
// ("" every kind) with the most evidence as stored.
func (s *Store) TopReputation(ctx context.Context, kind reputation.Kind, n int) ([]reputation.Entry, error) {
	q := `SELECT kind, identity, ham, spam, first_seen, updated_at FROM reputation`
	args := []any{n}
	if kind != "" {
		q += ` WHERE kind = $2`
		args = append(args, string(kind))
	}
	q += ` ORDER BY ham + spam DESC, kind, identity LIMIT $1`
	var out []reputation.Entry
	err := s.scanReputation(ctx, q, args, func(e reputation.Entry) { out = append(out, e) })
	return out, err
}

// FindReputation returns the rows of identity of every kind.
func (s *Store) FindReputation(ctx context.Context, identity string) ([]reputation.Entry, error) {
	var out []reputation.Entry
	err := s.scanReputation(ctx, `SELECT kind, identity, ham, spam, first_seen, updated_at FROM reputation WHERE identity = $1 ORDER BY kind`,
		[]any{strings.ToLower(identity)}, func(e reputation.Entry) { out = append(out, e) })
	return out, err
}

// PurgeReputation deletes the rows not updated since before: with a
// half-life of 30 days, a row untouched for a year holds a 4,000th of
// its evidence.
func (s *Store) PurgeReputation(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM reputation WHERE updated_at < $1`, before.Unix())
	if err != nil {
		return 0, fmt.Errorf("store: reputation: %w", err)
	}
	return res.RowsAffected()
}
