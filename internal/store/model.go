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

// keyChunk bounds the message keys of one statement (two parameters
// each, well under SQLite's and PostgreSQL's limits).
const keyChunk = 500

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
// batch, whatever the batch's size, in a handful of statements: the
// batch's keys looked up at once, the counts of its messages summed per
// bucket first (common words are written once a batch, not once a
// message), the buckets written by one statement of arrays on
// PostgreSQL and by statements of 512 rows prepared once on SQLite, the
// keys learnt written at once.
func (s *Store) LearnCounts(ctx context.Context, name string, bits int, items []classify.Learning) ([]classify.Learnt, error) {
	out := make([]classify.Learnt, len(items))
	var keys []string
	for _, it := range items {
		if c := strings.TrimPrefix(it.Class, "!"); c != "" {
			if _, err := column(c); err != nil {
				return nil, err
			}
		}
		if it.Key != "" {
			keys = append(keys, it.Key)
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: model %s: %w", name, err)
	}
	defer conn.Close()
	if s.driver == "sqlite" {
		// A batch's buckets are spread over the whole table: a page
		// cache of 32 MB (the default is 2) keeps them for the
		// transaction, and is given back after it.
		if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -32768`); err != nil {
			return nil, fmt.Errorf("store: model %s: %w", name, err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA cache_size = -2000`)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: model %s: %w", name, err)
	}
	defer tx.Rollback()
	ver, err := bumpModel(ctx, tx, name, bits)
	if err != nil {
		return nil, err
	}
	// class of each key now: as the store has it, then as the batch
	// leaves it.
	mt := modelTx{tx: tx, pg: s.driver == "postgres", name: name, ver: ver, stmts: map[string]*sql.Stmt{}}
	classOf, err := mt.learnedClasses(ctx, keys)
	if err != nil {
		return nil, err
	}
	delta := map[uint32]bucketDelta{}
	var msgs bucketDelta // messages per class
	var written []string // keys whose class changed, in order
	wrote := map[string]bool{}
	for i, it := range items {
		only, forget := strings.CutPrefix(it.Class, "!")
		class := it.Class
		if forget {
			class = ""
		}
		prev := ""
		if it.Key != "" {
			prev = classOf[it.Key]
		}
		out[i].Prev = prev
		if prev == class || (class == "" && it.Key == "") || (forget && prev != only) {
			continue // learnt so already, or nothing known to forget
		}
		out[i].Changed = true
		for _, c := range [2]struct {
			class string
			sign  int64
		}{{prev, -1}, {class, 1}} {
			col := classIndex(c.class)
			if col < 0 {
				continue
			}
			msgs[col] += c.sign
			for _, b := range it.Buckets {
				d := delta[b]
				d[col] += c.sign
				delta[b] = d
			}
		}
		if it.Key != "" {
			classOf[it.Key] = class
			if !wrote[it.Key] {
				wrote[it.Key] = true
				written = append(written, it.Key)
			}
		}
	}
	if !slices.ContainsFunc(out, func(l classify.Learnt) bool { return l.Changed }) {
		return out, nil
	}
	if err := mt.writeLearned(ctx, written, classOf, time.Now().UnixNano()); err != nil {
		return nil, err
	}
	if err := mt.writeDeltas(ctx, delta); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE model_meta SET junk = CASE WHEN junk + $2 < 0 THEN 0 ELSE junk + $2 END,
		ham = CASE WHEN ham + $3 < 0 THEN 0 ELSE ham + $3 END WHERE name = $1`, name, msgs[0], msgs[1]); err != nil {
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

// bucketDelta is a change of a bucket's counts: junk, ham.
type bucketDelta [2]int64

// classIndex is a class's place in a bucketDelta, -1 for none.
func classIndex(class string) int {
	switch class {
	case "junk":
		return 0
	case "ham":
		return 1
	}
	return -1
}

// modelTx is a transaction writing to one model at one version. On
// PostgreSQL a statement takes its rows as arrays (unnest), however
// many: one statement, planned once, where SQLite takes them written
// into the statement, 512 at a time.
type modelTx struct {
	tx    *sql.Tx
	pg    bool
	name  string
	ver   int64
	stmts map[string]*sql.Stmt // SQLite's statements of the transaction, by text
}

func (mt modelTx) exec(ctx context.Context, q string, args ...any) error {
	if _, err := mt.tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store: model %s: %w", mt.name, err)
	}
	return nil
}

// learnedClasses reads the classes keys were learnt as.
func (mt modelTx) learnedClasses(ctx context.Context, keys []string) (map[string]string, error) {
	got := make(map[string]string, len(keys))
	read := func(q string, args ...any) error {
		rows, err := mt.tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("store: model %s: %w", mt.name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var k, c string
			if err := rows.Scan(&k, &c); err != nil {
				return fmt.Errorf("store: model %s: %w", mt.name, err)
			}
			got[k] = c
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: model %s: %w", mt.name, err)
		}
		return nil
	}
	if mt.pg {
		if len(keys) == 0 {
			return got, nil
		}
		return got, read(`SELECT msg_key, learned_as FROM model_learned WHERE name = $1 AND msg_key = ANY($2::text[])`, mt.name, keys)
	}
	var q strings.Builder
	args := []any{mt.name}
	for len(keys) > 0 {
		n := min(len(keys), keyChunk)
		q.Reset()
		q.WriteString(`SELECT msg_key, learned_as FROM model_learned WHERE name = $1 AND msg_key IN (`)
		args = args[:1]
		for i, k := range keys[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			args = append(args, k)
			fmt.Fprintf(&q, "$%d", len(args))
		}
		q.WriteByte(')')
		if err := read(q.String(), args...); err != nil {
			return nil, err
		}
		keys = keys[n:]
	}
	return got, nil
}

// writeLearned records the class each of keys ends the batch with
// (forgetting those that end with none).
func (mt modelTx) writeLearned(ctx context.Context, keys []string, classOf map[string]string, now int64) error {
	var learnt, classes, forgot []string
	for _, k := range keys {
		if c := classOf[k]; c == "" {
			forgot = append(forgot, k)
		} else {
			learnt, classes = append(learnt, k), append(classes, c)
		}
	}
	const upsert = ` ON CONFLICT (name, msg_key) DO UPDATE SET learned_as = excluded.learned_as, learned_at = excluded.learned_at`
	if mt.pg {
		if len(learnt) > 0 {
			if err := mt.exec(ctx, `INSERT INTO model_learned (name, msg_key, learned_as, learned_at)
				SELECT $1, k, c, $2 FROM unnest($3::text[], $4::text[]) AS d(k, c)`+upsert, mt.name, now, learnt, classes); err != nil {
				return err
			}
		}
		if len(forgot) > 0 {
			return mt.exec(ctx, `DELETE FROM model_learned WHERE name = $1 AND msg_key = ANY($2::text[])`, mt.name, forgot)
		}
		return nil
	}
	var q strings.Builder
	for len(learnt) > 0 {
		n := min(len(learnt), keyChunk)
		q.Reset()
		q.WriteString(`INSERT INTO model_learned (name, msg_key, learned_as, learned_at) VALUES `)
		args := []any{mt.name, now}
		for i, k := range learnt[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			args = append(args, k, classes[i])
			fmt.Fprintf(&q, "($1,$%d,$%d,$2)", len(args)-1, len(args))
		}
		q.WriteString(upsert)
		if err := mt.exec(ctx, q.String(), args...); err != nil {
			return err
		}
		learnt, classes = learnt[n:], classes[n:]
	}
	for len(forgot) > 0 {
		n := min(len(forgot), keyChunk)
		q.Reset()
		q.WriteString(`DELETE FROM model_learned WHERE name = $1 AND msg_key IN (`)
		args := []any{mt.name}
		for i, k := range forgot[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			args = append(args, k)
			fmt.Fprintf(&q, "$%d", len(args))
		}
		q.WriteByte(')')
		if err := mt.exec(ctx, q.String(), args...); err != nil {
			return err
		}
		forgot = forgot[n:]
	}
	return nil
}

// writeDeltas applies a batch's net change per bucket, no count going
// below 0. Buckets that only gain are added by an upsert; those that
// lose in a column are changed by an UPDATE ... FROM, and those of them
// missing from the table then inserted with what they gain (the
// model's row lock keeps another learner from inserting in between).
func (mt modelTx) writeDeltas(ctx context.Context, delta map[uint32]bucketDelta) error {
	var gain, mixed, missing []classify.BucketCount
	for _, b := range slices.Sorted(maps.Keys(delta)) {
		switch d := delta[b]; {
		case d == bucketDelta{}:
		case d[0] >= 0 && d[1] >= 0:
			gain = append(gain, classify.BucketCount{Bucket: b, Junk: d[0], Ham: d[1]})
		default:
			mixed = append(mixed, classify.BucketCount{Bucket: b, Junk: d[0], Ham: d[1]})
			if d[0] > 0 || d[1] > 0 {
				missing = append(missing, classify.BucketCount{Bucket: b, Junk: max(d[0], 0), Ham: max(d[1], 0)})
			}
		}
	}
	if err := mt.addCounts(ctx, gain); err != nil {
		return err
	}
	if len(mixed) > 0 && mt.pg {
		b, j, h := columns(mixed)
		if err := mt.exec(ctx, `UPDATE model_buckets SET junk = GREATEST(model_buckets.junk + d.j, 0),
			ham = GREATEST(model_buckets.ham + d.h, 0), version = $2
			FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS d(b, j, h)
			WHERE model_buckets.name = $1 AND model_buckets.bucket = d.b`, mt.name, mt.ver, b, j, h); err != nil {
			return err
		}
	}
	if !mt.pg {
		if err := mt.rows(ctx, mixed, `UPDATE model_buckets SET
			junk = CASE WHEN model_buckets.junk + d.column2 < 0 THEN 0 ELSE model_buckets.junk + d.column2 END,
			ham = CASE WHEN model_buckets.ham + d.column3 < 0 THEN 0 ELSE model_buckets.ham + d.column3 END,
			version = ? FROM (VALUES `, "(?,?,?)", `) AS d WHERE model_buckets.name = ? AND model_buckets.bucket = d.column1`,
			[]any{mt.ver}, false, []any{mt.name}); err != nil {
			return err
		}
	}
	return mt.insertCounts(ctx, missing, ` ON CONFLICT (name, bucket) DO NOTHING`)
}

// columns are rows' buckets and counts as arrays, for unnest.
func columns(rows []classify.BucketCount) (b, j, h []int64) {
	b, j, h = make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		b[i], j[i], h[i] = int64(r.Bucket), r.Junk, r.Ham
	}
	return b, j, h
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
	mt := modelTx{tx: tx, pg: s.driver == "postgres", name: name, ver: ver, stmts: map[string]*sql.Stmt{}}
	if err := mt.addCounts(ctx, buckets); err != nil {
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
	// A whole model (since 0, a host's first read) is read along the
	// primary key; the version index is for the few buckets a refresh
	// wants (through it, a million buckets took SQLite 30 s).
	q, args := `SELECT bucket, junk, ham FROM model_buckets WHERE name = $1 AND version > $2`, []any{name, since}
	if since <= 0 {
		q, args = `SELECT bucket, junk, ham FROM model_buckets WHERE name = $1`, args[:1]
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
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

// addCounts adds rows' counts to their buckets.
func (mt modelTx) addCounts(ctx context.Context, rows []classify.BucketCount) error {
	return mt.insertCounts(ctx, rows, ` ON CONFLICT (name, bucket) DO UPDATE SET junk = model_buckets.junk + excluded.junk,
			ham = model_buckets.ham + excluded.ham, version = excluded.version`)
}

// insertCounts inserts rows (counts below 0 as 0), onConflict saying
// what becomes of a bucket already there. On SQLite the numbers are
// written into the statement (they are integers formatted here), so
// that 512 buckets take one statement and two parameters.
func (mt modelTx) insertCounts(ctx context.Context, rows []classify.BucketCount, onConflict string) error {
	if len(rows) == 0 {
		return nil
	}
	if mt.pg {
		b, j, h := columns(rows)
		return mt.exec(ctx, `INSERT INTO model_buckets (name, bucket, junk, ham, version)
			SELECT $1, b, GREATEST(j, 0), GREATEST(h, 0), $2 FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS d(b, j, h)`+onConflict,
			mt.name, mt.ver, b, j, h)
	}
	for i := range rows {
		rows[i].Junk, rows[i].Ham = max(rows[i].Junk, 0), max(rows[i].Ham, 0)
	}
	return mt.rows(ctx, rows, `INSERT INTO model_buckets (name, bucket, junk, ham, version) VALUES `, "(?,?,?,?,?)", onConflict, nil, true, nil)
}

// rowChunks are the numbers of rows SQLite's statements take: a batch's
// rows go 512 at a time, the rest in 64s, 8s and ones, so that a
// transaction parses at most four statements of a kind, each once.
var rowChunks = []int{modelChunk, 64, 8, 1}

// rows runs head, then row for each row, then tail, on SQLite, as few
// statements as rowChunks allow, each prepared once a transaction. The
// parameters are ?s (SQLite binds $N ones by name, at a cost that grows
// with their number): pre's, then each row's bucket, junk and ham (with
// the model's name before them and its version after when whole), then
// post's.
func (mt modelTx) rows(ctx context.Context, rows []classify.BucketCount, head, row, tail string, pre []any, whole bool, post []any) error {
	per := 3
	if whole {
		per = 5
	}
	args := make([]any, 0, len(pre)+per*modelChunk+len(post))
	for _, n := range rowChunks {
		for len(rows) >= n {
			key := head + strconv.Itoa(n)
			st, ok := mt.stmts[key]
			if !ok {
				var q strings.Builder
				q.WriteString(head)
				for i := range n {
					if i > 0 {
						q.WriteByte(',')
					}
					q.WriteString(row)
				}
				q.WriteString(tail)
				var err error
				if st, err = mt.tx.PrepareContext(ctx, q.String()); err != nil {
					return fmt.Errorf("store: model %s: %w", mt.name, err)
				}
				mt.stmts[key] = st
			}
			args = append(args[:0], pre...)
			for _, r := range rows[:n] {
				if whole {
					args = append(args, mt.name, int64(r.Bucket), r.Junk, r.Ham, mt.ver)
				} else {
					args = append(args, int64(r.Bucket), r.Junk, r.Ham)
				}
			}
			args = append(args, post...)
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("store: model %s: %w", mt.name, err)
			}
			rows = rows[n:]
		}
	}
	return nil
}
