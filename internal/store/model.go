package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/classify"
)

// The store keeps the classifier's Bayes models as counts per bucket, so
// that several MX hosts on one PostgreSQL database learn into one model
// and read each other's learning (classify.Shared).
var _ classify.CountStore = (*Store)(nil)

// maxLearned bounds the messages a model remembers having learnt (the
// guard against learning one twice); past it the oldest are forgotten.
const maxLearned = 200_000

// modelChunk bounds the rows of one multi-row statement: a message has
// at most classify.MaxFeatures buckets.
const modelChunk = 512

// bumpModelSQL creates the model's row or raises its version, and locks
// it for the transaction: on PostgreSQL concurrent learners of one model
// queue here, so versions follow commit order and a reader that has seen
// version v has seen every bucket written up to v.
const bumpModelSQL = `INSERT INTO model_meta (name, bits, version, junk, ham) VALUES ($1, $2, 1, 0, 0)
	ON CONFLICT (name) DO UPDATE SET version = model_meta.version + 1
	RETURNING bits, version`

// column is the counts column of a class; only these two names are ever
// written into SQL.
func column(class string) (string, error) {
	switch class {
	case "junk":
		return "junk", nil
	case "ham":
		return "ham", nil
	}
	return "", fmt.Errorf("store: model class %q (junk, ham)", class)
}

// LearnCounts implements classify.CountStore: one transaction for the
// batch, the counts of its messages summed per bucket first (common
// words are written once a batch, not once a message), one statement
// per 512 buckets.
func (s *Store) LearnCounts(ctx context.Context, name string, bits int, items []classify.Learning) ([]classify.Learnt, error) {
	out := make([]classify.Learnt, len(items))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: model %s: %w", name, err)
	}
	defer tx.Rollback()
	ver, err := bumpModel(ctx, tx, name, bits)
	if err != nil {
		return nil, err
	}
	// net change per bucket of each column; messages per column.
	delta := map[string]map[uint32]int64{"junk": {}, "ham": {}}
	msgs := map[string]int64{}
	inBatch := map[string]string{} // keys met in this batch, their class now
	changedAny := false
	now := time.Now().UnixNano()
	for i, it := range items {
		only, forget := strings.CutPrefix(it.Class, "!")
		class := it.Class
		if forget {
			class = ""
		}
		if class != "" {
			if _, err := column(class); err != nil {
				return nil, err
			}
		}
		prev, seen := inBatch[it.Key]
		if it.Key != "" && !seen {
			switch err := tx.QueryRowContext(ctx, `SELECT learned_as FROM model_learned WHERE name = $1 AND msg_key = $2`, name, it.Key).Scan(&prev); {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return nil, fmt.Errorf("store: model %s: %w", name, err)
			}
		}
		out[i].Prev = prev
		if prev == class || (class == "" && it.Key == "") || (forget && prev != only) {
			continue // learnt so already, or nothing known to forget
		}
		out[i].Changed, changedAny = true, true
		for c, sign := range map[string]int64{prev: -1, class: 1} {
			if c == "" {
				continue
			}
			msgs[c] += sign
			for _, b := range it.Buckets {
				delta[c][b] += sign
			}
		}
		if it.Key != "" {
			inBatch[it.Key] = class
			q, args := `DELETE FROM model_learned WHERE name = $1 AND msg_key = $2`, []any{name, it.Key}
			if class != "" {
				q, args = `INSERT INTO model_learned (name, msg_key, learned_as, learned_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (name, msg_key) DO UPDATE SET learned_as = excluded.learned_as, learned_at = excluded.learned_at`,
					[]any{name, it.Key, class, now}
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return nil, fmt.Errorf("store: model %s: %w", name, err)
			}
		}
	}
	if !changedAny {
		return out, nil
	}
	var rows []classify.BucketCount
	for _, b := range slices.Sorted(maps.Keys(delta["junk"])) {
		if d := delta["junk"][b]; d > 0 {
			rows = append(rows, classify.BucketCount{Bucket: b, Junk: d, Ham: max(delta["ham"][b], 0)})
		}
	}
	for _, b := range slices.Sorted(maps.Keys(delta["ham"])) {
		if d := delta["ham"][b]; d > 0 && delta["junk"][b] <= 0 {
			rows = append(rows, classify.BucketCount{Bucket: b, Ham: d})
		}
	}
	if err := addCounts(ctx, tx, name, ver, rows); err != nil {
		return nil, err
	}
	for _, c := range []string{"junk", "ham"} {
		sub := map[uint32]int64{}
		for b, d := range delta[c] {
			if d < 0 {
				sub[b] = -d
			}
		}
		if err := subCounts(ctx, tx, name, ver, c, sub); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE model_meta SET junk = CASE WHEN junk + $2 < 0 THEN 0 ELSE junk + $2 END,
		ham = CASE WHEN ham + $3 < 0 THEN 0 ELSE ham + $3 END WHERE name = $1`, name, msgs["junk"], msgs["ham"]); err != nil {
		return nil, fmt.Errorf("store: model %s: %w", name, err)
	}
	// The bound on remembered messages is kept every 256th change: the
	// query walks the index past maxLearned rows.
	if ver%256 == 0 || len(items) > 256 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM model_learned WHERE name = $1 AND learned_at <
			(SELECT learned_at FROM model_learned WHERE name = $1 ORDER BY learned_at DESC LIMIT 1 OFFSET $2)`, name, maxLearned); err != nil {
			return nil, fmt.Errorf("store: model %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: model %s: %w", name, err)
	}
	return out, nil
}

// AddCounts implements classify.CountStore.
func (s *Store) AddCounts(ctx context.Context, name string, bits int, junk, ham int64, buckets []classify.BucketCount) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	defer tx.Rollback()
	ver, err := bumpModel(ctx, tx, name, bits)
	if err != nil {
		return err
	}
	if err := addCounts(ctx, tx, name, ver, buckets); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE model_meta SET junk = junk + $2, ham = ham + $3 WHERE name = $1`, name, junk, ham); err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	return nil
}

// ModelCounts implements classify.CountStore. The model's row is read
// before its buckets: a bucket written after it is read again next time
// (counts are absolute, so twice is harmless), none is missed.
func (s *Store) ModelCounts(ctx context.Context, name string, since int64, fn func(classify.BucketCount)) (classify.ModelState, error) {
	var st classify.ModelState
	switch err := s.db.QueryRowContext(ctx, `SELECT bits, version, junk, ham FROM model_meta WHERE name = $1`, name).Scan(&st.Bits, &st.Version, &st.Junk, &st.Ham); {
	case errors.Is(err, sql.ErrNoRows):
		return classify.ModelState{}, nil
	case err != nil:
		return st, fmt.Errorf("store: model %s: %w", name, err)
	}
	if st.Version <= since {
		return st, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT bucket, junk, ham FROM model_buckets WHERE name = $1 AND version > $2`, name, since)
	if err != nil {
		return st, fmt.Errorf("store: model %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var b classify.BucketCount
		var bucket int64
		if err := rows.Scan(&bucket, &b.Junk, &b.Ham); err != nil {
			return st, fmt.Errorf("store: model %s: %w", name, err)
		}
		b.Bucket = uint32(bucket)
		fn(b)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("store: model %s: %w", name, err)
	}
	return st, nil
}

func bumpModel(ctx context.Context, tx *sql.Tx, name string, bits int) (int64, error) {
	var have int
	var ver int64
	if err := tx.QueryRowContext(ctx, bumpModelSQL, name, bits).Scan(&have, &ver); err != nil {
		return 0, fmt.Errorf("store: model %s: %w", name, err)
	}
	if have != bits {
		return 0, fmt.Errorf("store: model %s has 2^%d buckets, not 2^%d", name, have, bits)
	}
	return ver, nil
}

// addCounts adds rows' counts to their buckets. The numbers are written
// into the statement (they are integers formatted here), so that 512
// buckets take one statement and two parameters.
func addCounts(ctx context.Context, tx *sql.Tx, name string, ver int64, rows []classify.BucketCount) error {
	var q strings.Builder
	for len(rows) > 0 {
		n := min(len(rows), modelChunk)
		q.Reset()
		q.WriteString(`INSERT INTO model_buckets (name, bucket, junk, ham, version) VALUES `)
		for i, r := range rows[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "($1,%d,%d,%d,$2)", r.Bucket, max(r.Junk, 0), max(r.Ham, 0))
		}
		q.WriteString(` ON CONFLICT (name, bucket) DO UPDATE SET junk = model_buckets.junk + excluded.junk,
			ham = model_buckets.ham + excluded.ham, version = excluded.version`)
		if _, err := tx.ExecContext(ctx, q.String(), name, ver); err != nil {
			return fmt.Errorf("store: model %s: %w", name, err)
		}
		rows = rows[n:]
	}
	return nil
}

// subCounts takes counts back from class's column, never below 0, one
// statement per distinct count (nearly always one: 1).
func subCounts(ctx context.Context, tx *sql.Tx, name string, ver int64, class string, counts map[uint32]int64) error {
	col, err := column(class)
	if err != nil {
		return err
	}
	byN := map[int64][]uint32{}
	for b, n := range counts {
		byN[n] = append(byN[n], b)
	}
	var q strings.Builder
	for n, list := range byN {
		slices.Sort(list)
		for len(list) > 0 {
			k := min(len(list), modelChunk)
			q.Reset()
			fmt.Fprintf(&q, `UPDATE model_buckets SET %s = CASE WHEN %s > %d THEN %s - %d ELSE 0 END, version = $2 WHERE name = $1 AND bucket IN (`, col, col, n, col, n)
			for i, b := range list[:k] {
				if i > 0 {
					q.WriteByte(',')
				}
				q.WriteString(strconv.FormatUint(uint64(b), 10))
			}
			q.WriteByte(')')
			if _, err := tx.ExecContext(ctx, q.String(), name, ver); err != nil {
				return fmt.Errorf("store: model %s: %w", name, err)
			}
			list = list[k:]
		}
	}
	return nil
}
