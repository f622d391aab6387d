package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
// message; by a radix sort, not a map: 900,000 buckets of 1,000
// messages sum in some 30 ms where a map took 150), the batch's changes
// written as one row of the log, the keys learnt written at once.
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
	if mt.pg {
		if mt.lz4, err = s.canLZ4(ctx); err != nil {
			return nil, err
		}
	}
	classOf, err := mt.learnedClasses(ctx, keys)
	if err != nil {
		return nil, err
	}
	// One key per bucket of each message changed and the column and
	// sign of its change (sumKeys).
	var changes []uint64
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
			add   bool
		}{{prev, false}, {class, true}} {
			col := classIndex(c.class)
			if col < 0 {
				continue
			}
			kind := uint64(col) << 1
			if c.add {
				kind |= 1
				msgs[col]++
			} else {
				msgs[col]--
			}
			changes = slices.Grow(changes, len(it.Buckets))
			for _, b := range it.Buckets {
				changes = append(changes, uint64(b)<<2|kind)
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
	delta := sumKeys(changes)
	// The log's length is looked at every 16th change, and after a
	// batch of many: in between it can pass compactAt by at most 15
	// small batches (a statement saved for a message learnt alone).
	if err := mt.logDeltas(ctx, delta); err != nil {
		return nil, err
	}
	if ver%16 == 0 || len(delta) > compactAt/64 {
		if err := mt.compact(ctx, compactAt); err != nil {
			return nil, err
		}
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

// bucketSum is a bucket's net change, in a batch or a log.
type bucketSum struct {
	b uint32
	d bucketDelta
}

// sumKeys sums the changes keys hold per bucket, in bucket order, those
// that come to nothing left out. A key is a bucket shifted left by two,
// or'd with its column (classIndex) shifted left by one and 1 for +1 (0
// for -1). keys is sorted in place.
func sumKeys(keys []uint64) []bucketSum {
	radixSort(keys)
	var out []bucketSum
	for i := 0; i < len(keys); {
		b := keys[i] >> 2
		var d bucketDelta
		for ; i < len(keys) && keys[i]>>2 == b; i++ {
			if k := keys[i]; k&1 == 1 {
				d[k>>1&1]++
			} else {
				d[k>>1&1]--
			}
		}
		if d != (bucketDelta{}) {
			out = append(out, bucketSum{uint32(b), d})
		}
	}
	return out
}

// radixSort sorts keys, least significant digit first, in as few
// passes of at most 12 bits as the largest key needs (two for a model
// of 2^21 buckets): a batch's keys are in the hundreds of thousands,
// where comparison sorts and maps take five times as long.
func radixSort(keys []uint64) {
	if len(keys) < 1024 {
		slices.Sort(keys)
		return
	}
	var all uint64
	for _, k := range keys {
		all |= k
	}
	width := uint(bits.Len64(all))
	passes := (width + 11) / 12
	if passes == 0 {
		return
	}
	digit := (width + passes - 1) / passes
	mask := uint64(1)<<digit - 1
	count := make([]int, 1<<digit)
	src, dst := keys, make([]uint64, len(keys))
	for p := range passes {
		shift := p * digit
		clear(count)
		for _, k := range src {
			count[k>>shift&mask]++
		}
		at := 0
		for i, c := range count {
			count[i], at = at, at+c
		}
		for _, k := range src {
			d := k >> shift & mask
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	if passes%2 == 1 {
		copy(keys, src)
	}
}

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
	lz4   bool // PostgreSQL can compress the log's rows with LZ4 (logDeltas)
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
		q.WriteString(`SELECT msg_key, learned_as FROM model_learned WHERE name = $1 AND msg_key IN `)
		args = inList(&q, args[:1], keys[:n])
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
		q.WriteString(`DELETE FROM model_learned WHERE name = $1 AND msg_key IN `)
		args := inList(&q, []any{mt.name}, forgot[:n])
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
func (mt modelTx) writeDeltas(ctx context.Context, delta []bucketSum) error {
	var gain, mixed, missing []classify.BucketCount
	for _, s := range delta {
		switch b, d := s.b, s.d; {
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

// setFolded records that the model's buckets changed outside its log at
// the transaction's version (a fold, an import): a host whose copy is
// older reads the model whole.
func (mt modelTx) setFolded(ctx context.Context) error {
	return mt.exec(ctx, `INSERT INTO model_folds (name, folded) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET folded = excluded.folded`, mt.name, mt.ver)
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
	if err := mt.setFolded(ctx); err != nil {
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

// ModelCounts implements classify.CountStore: the buckets as
// model_buckets has them, with the changes the log holds added (never
// below 0), in one read transaction, so that a fold of the log running
// at the same time is seen whole or not at all.
func (s *Store) ModelCounts(ctx context.Context, name string, since int64, fn func(classify.BucketCount)) (classify.ModelState, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return classify.ModelState{}, fmt.Errorf("store: model %s: %w", name, err)
	}
	defer tx.Rollback()
	st, folded, err := modelState(ctx, tx, name)
	if err != nil || st.Version <= since {
		return st, err
	}
	if since <= 0 || folded > since {
		// Everything, or a fold since: every bucket (counts are
		// absolute, so those unchanged read again are harmless).
		return st, wholeModel(ctx, tx, name, fn)
	}
	// The log: the sum of its changes per bucket, and the buckets it
	// changed after since.
	pending := map[uint32]bucketDelta{}
	after := map[uint32]bool{}
	if err := readLog(ctx, tx, name, 0, func(version int64, b uint32, d bucketDelta) {
		p := pending[b]
		pending[b] = bucketDelta{p[0] + d[0], p[1] + d[1]}
		if version > since {
			after[b] = true
		}
	}); err != nil {
		return st, err
	}
	emit := func(b uint32, junk, ham int64) {
		d := pending[b]
		fn(classify.BucketCount{Bucket: b, Junk: max(junk+d[0], 0), Ham: max(ham+d[1], 0)})
	}
	done := map[uint32]bool{}
	// The buckets the log changed after since: the count they start
	// from, 500 a statement.
	var rest []uint32
	for b := range after {
		if !done[b] {
			rest = append(rest, b)
		}
	}
	slices.Sort(rest)
	for len(rest) > 0 {
		n := min(len(rest), keyChunk)
		var q strings.Builder
		q.WriteString(`SELECT bucket, junk, ham FROM model_buckets WHERE name = $1 AND bucket IN (`)
		for i, b := range rest[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(strconv.FormatUint(uint64(b), 10))
		}
		q.WriteByte(')')
		if err := scanBuckets(ctx, tx, name, q.String(), []any{name}, func(b uint32, junk, ham int64) {
			emit(b, junk, ham)
			done[b] = true
		}); err != nil {
			return st, err
		}
		rest = rest[n:]
	}
	for b := range after {
		if !done[b] {
			emit(b, 0, 0)
		}
	}
	return st, tx.Commit()
}

// wholeModel hands fn every bucket of the model: model_buckets read in
// bucket order along the primary key, merged with the log's changes
// summed per bucket in a sorted slice (no map: a log about to be folded
// holds a million changes).
func wholeModel(ctx context.Context, tx *sql.Tx, name string, fn func(classify.BucketCount)) error {
	// 12 octets a change: a log row's change, and the sum of a log's,
	// is at most the messages learnt, far inside 32 bits.
	type change struct {
		b    uint32
		j, h int32
	}
	sat := func(n int64) int32 { return int32(min(max(n, math.MinInt32), math.MaxInt32)) }
	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM model_deltas WHERE name = $1`, name).Scan(&total); err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	log := make([]change, 0, min(total, 4*compactAt))
	if err := readLog(ctx, tx, name, 0, func(_ int64, b uint32, d bucketDelta) { log = append(log, change{b, sat(d[0]), sat(d[1])}) }); err != nil {
		return err
	}
	slices.SortStableFunc(log, func(x, y change) int { return cmp.Compare(x.b, y.b) })
	sum := log[:0]
	for _, c := range log {
		if n := len(sum); n > 0 && sum[n-1].b == c.b {
			sum[n-1].j = sat(int64(sum[n-1].j) + int64(c.j))
			sum[n-1].h = sat(int64(sum[n-1].h) + int64(c.h))
			continue
		}
		sum = append(sum, c)
	}
	emit := func(b uint32, junk, ham int64) {
		fn(classify.BucketCount{Bucket: b, Junk: max(junk, 0), Ham: max(ham, 0)})
	}
	if err := scanBuckets(ctx, tx, name, `SELECT bucket, junk, ham FROM model_buckets WHERE name = $1 ORDER BY bucket`, []any{name},
		func(b uint32, junk, ham int64) {
			for len(sum) > 0 && sum[0].b < b {
				emit(sum[0].b, int64(sum[0].j), int64(sum[0].h))
				sum = sum[1:]
			}
			if len(sum) > 0 && sum[0].b == b {
				junk, ham = junk+int64(sum[0].j), ham+int64(sum[0].h)
				sum = sum[1:]
			}
			emit(b, junk, ham)
		}); err != nil {
		return err
	}
	for _, c := range sum {
		emit(c.b, int64(c.j), int64(c.h))
	}
	return tx.Commit()
}

// ModelDeltas implements classify.DeltaStore: the changes learnt after
// version since, in the order they were learnt. gap: they can no longer
// be told apart (the log was folded into model_buckets after since, or
// a model was imported): the caller reads the whole model again.
func (s *Store) ModelDeltas(ctx context.Context, name string, since int64, fn func(classify.BucketCount)) (st classify.ModelState, gap bool, err error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return st, false, fmt.Errorf("store: model %s: %w", name, err)
	}
	defer tx.Rollback()
	var folded int64
	if st, folded, err = modelState(ctx, tx, name); err != nil || st.Version <= since {
		return st, false, err
	}
	if folded > since {
		return st, true, tx.Commit()
	}
	err = readLog(ctx, tx, name, since, func(_ int64, b uint32, d bucketDelta) {
		fn(classify.BucketCount{Bucket: b, Junk: d[0], Ham: d[1]})
	})
	if err != nil {
		return st, false, err
	}
	return st, false, tx.Commit()
}

// CompactModel folds model name's log of changes into its buckets now
// (learning does when the log holds compactAt changes).
func (s *Store) CompactModel(ctx context.Context, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	defer tx.Rollback()
	var bits int
	if err := tx.QueryRowContext(ctx, `SELECT bits FROM model_meta WHERE name = $1`, name).Scan(&bits); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	ver, err := bumpModel(ctx, tx, name, bits)
	if err != nil {
		return err
	}
	mt := modelTx{tx: tx, pg: s.driver == "postgres", name: name, ver: ver, stmts: map[string]*sql.Stmt{}}
	if err := mt.compact(ctx, 0); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	return nil
}

// readTx begins a transaction that reads one state of the database: on
// PostgreSQL a repeatable-read one (a snapshot); SQLite's transactions
// see one state already.
func (s *Store) readTx(ctx context.Context) (*sql.Tx, error) {
	if s.driver == "postgres" {
		return s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	}
	return s.db.BeginTx(ctx, nil)
}

// modelState reads a model's row, and the version of its last fold
// (or import); the zero state for none.
func modelState(ctx context.Context, tx *sql.Tx, name string) (st classify.ModelState, folded int64, err error) {
	switch err := tx.QueryRowContext(ctx, `SELECT m.bits, m.version, m.junk, m.ham, COALESCE(f.folded, 0)
		FROM model_meta m LEFT JOIN model_folds f ON f.name = m.name WHERE m.name = $1`, name).Scan(&st.Bits, &st.Version, &st.Junk, &st.Ham, &folded); {
	case errors.Is(err, sql.ErrNoRows):
		return classify.ModelState{}, 0, nil
	case err != nil:
		return st, 0, fmt.Errorf("store: model %s: %w", name, err)
	}
	return st, folded, nil
}

// scanBuckets runs q and hands fn each bucket row.
func scanBuckets(ctx context.Context, tx *sql.Tx, name, q string, args []any, fn func(b uint32, junk, ham int64)) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var bucket, junk, ham int64
		if err := rows.Scan(&bucket, &junk, &ham); err != nil {
			return fmt.Errorf("store: model %s: %w", name, err)
		}
		fn(uint32(bucket), junk, ham)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	return nil
}

// compactAt is how many bucket changes a model's log holds before
// learning folds them into model_buckets (some 4,000 messages, 6 MB of
// log): a refresh reads only the changes after its version, the fold
// writes a bucket once for all the batches that changed it, and a whole
// read sums the log in memory, 12 octets a change
// (BenchmarkModelMemory1M reads a model of a million buckets with a log
// this long).
const compactAt = 1 << 20

// logDeltas writes a batch's net change per bucket (in bucket order)
// as one row of the model's log: the buckets in order, each as the
// varint of its distance from the one before and the zigzag varints of
// its junk and ham change.
func (mt modelTx) logDeltas(ctx context.Context, delta []bucketSum) error {
	buf, n := encodeDeltas(delta)
	if n == 0 {
		return nil
	}
	if mt.lz4 && len(buf) > 2000 {
		// PostgreSQL compresses a value of more than 2 kB (TOAST),
		// with pglz unless told otherwise: a batch of 1,000 of the
		// corpus's messages cost the server 40-80 ms of CPU with
		// pglz, 20-30 with LZ4, its other statements included (and
		// 2 MB of changes less compressible 450 ms and 50). The
		// setting is the transaction's.
		if err := mt.exec(ctx, `SET LOCAL default_toast_compression = lz4`); err != nil {
			return err
		}
	}
	return mt.exec(ctx, `INSERT INTO model_deltas (name, version, n, deltas) VALUES ($1, $2, $3, $4)`, mt.name, mt.ver, n, buf)
}

// encodeDeltas is a row of the log (logDeltas) for delta, in bucket
// order, and the number of changes it holds (those that come to nothing
// left out).
func encodeDeltas(delta []bucketSum) (buf []byte, n int) {
	buf = make([]byte, 0, 6*len(delta))
	prev := uint32(0)
	for _, s := range delta {
		if s.d == (bucketDelta{}) {
			continue
		}
		buf = binary.AppendUvarint(buf, uint64(s.b-prev))
		buf = binary.AppendVarint(buf, s.d[0])
		buf = binary.AppendVarint(buf, s.d[1])
		prev = s.b
		n++
	}
	return buf, n
}

// readLog hands fn the changes of the model's log after version since,
// in order.
func readLog(ctx context.Context, tx *sql.Tx, name string, since int64, fn func(version int64, b uint32, d bucketDelta)) error {
	rows, err := tx.QueryContext(ctx, `SELECT version, deltas FROM model_deltas WHERE name = $1 AND version > $2 ORDER BY version`, name, since)
	if err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var version int64
		var buf []byte
		if err := rows.Scan(&version, &buf); err != nil {
			return fmt.Errorf("store: model %s: %w", name, err)
		}
		if err := decodeDeltas(buf, func(b uint32, d bucketDelta) { fn(version, b, d) }); err != nil {
			return fmt.Errorf("store: model %s, version %d: %w", name, version, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: model %s: %w", name, err)
	}
	return nil
}

// decodeDeltas reads a row of the log written by logDeltas.
func decodeDeltas(buf []byte, fn func(b uint32, d bucketDelta)) error {
	c := logCursor{buf: buf}
	for {
		ok, err := c.next()
		if !ok {
			return err
		}
		fn(uint32(c.b), c.d)
	}
}

// logCursor reads a row of the log written by logDeltas, a change at a
// time: b and d are the last one read.
type logCursor struct {
	buf []byte
	b   uint64
	d   bucketDelta
}

// next reads the next change: false at the end of the row, or with the
// error of a row that logDeltas did not write.
func (c *logCursor) next() (bool, error) {
	if len(c.buf) == 0 {
		return false, nil
	}
	gap, n := binary.Uvarint(c.buf)
	if n <= 0 {
		return false, errors.New("bad bucket in the log")
	}
	c.buf = c.buf[n:]
	junk, n := binary.Varint(c.buf)
	if n <= 0 {
		return false, errors.New("bad junk count in the log")
	}
	c.buf = c.buf[n:]
	ham, n := binary.Varint(c.buf)
	if n <= 0 {
		return false, errors.New("bad ham count in the log")
	}
	c.buf = c.buf[n:]
	if c.b += gap; c.b > math.MaxUint32 {
		return false, errors.New("bucket out of range in the log")
	}
	c.d = bucketDelta{junk, ham}
	return true, nil
}

// sumLog sums the changes of the log's rows per bucket, in bucket
// order, those that come to nothing left out: each row is in bucket
// order already, so the rows are merged (a heap of one cursor a row),
// in time proportional to the changes, with no map and no sort.
func sumLog(rows [][]byte) ([]bucketSum, error) {
	h := make([]*logCursor, 0, len(rows))
	longest := 0
	for _, r := range rows {
		c := &logCursor{buf: r}
		ok, err := c.next()
		if err != nil {
			return nil, err
		}
		if ok {
			h = append(h, c)
			longest = max(longest, len(r)/3)
		}
	}
	// less: the cursor at i is before the one at j.
	less := func(i, j int) bool { return h[i].b < h[j].b }
	down := func(i int) {
		for {
			l, m := 2*i+1, i
			if l < len(h) && less(l, m) {
				m = l
			}
			if r := l + 1; r < len(h) && less(r, m) {
				m = r
			}
			if m == i {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	out := make([]bucketSum, 0, longest)
	for len(h) > 0 {
		c := h[0]
		if n := len(out); n > 0 && uint64(out[n-1].b) == c.b {
			out[n-1].d[0] += c.d[0]
			out[n-1].d[1] += c.d[1]
		} else {
			out = append(out, bucketSum{uint32(c.b), c.d})
		}
		ok, err := c.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(0)
	}
	return slices.DeleteFunc(out, func(s bucketSum) bool { return s.d == (bucketDelta{}) }), nil
}

// compact folds the model's log into model_buckets when it holds at
// least limit changes (0: whenever it holds any), and records the fold
// at the transaction's version (model_folds), so that a host whose copy
// is older, its log gone, reads the whole model (ModelDeltas's gap).
// The transaction holds the model's row (bumpModel), as every learner
// does: a fold (this host's or another's) and learning run one after
// the other.
func (mt modelTx) compact(ctx context.Context, limit int64) error {
	var pending int64
	if err := mt.tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM model_deltas WHERE name = $1`, mt.name).Scan(&pending); err != nil {
		return fmt.Errorf("store: model %s: %w", mt.name, err)
	}
	if pending == 0 || pending < limit {
		return nil
	}
	var logRows [][]byte
	rows, err := mt.tx.QueryContext(ctx, `SELECT deltas FROM model_deltas WHERE name = $1 ORDER BY version`, mt.name)
	if err != nil {
		return fmt.Errorf("store: model %s: %w", mt.name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var buf []byte
		if err := rows.Scan(&buf); err != nil {
			return fmt.Errorf("store: model %s: %w", mt.name, err)
		}
		logRows = append(logRows, buf)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: model %s: %w", mt.name, err)
	}
	rows.Close()
	sum, err := sumLog(logRows)
	if err != nil {
		return fmt.Errorf("store: model %s: %w", mt.name, err)
	}
	if err := mt.writeDeltas(ctx, sum); err != nil {
		return err
	}
	if err := mt.setFolded(ctx); err != nil {
		return err
	}
	return mt.exec(ctx, `DELETE FROM model_deltas WHERE name = $1 AND version <= $2`, mt.name, mt.ver)
}

// canLZ4 says whether the PostgreSQL server compresses with LZ4 (14 and
// later, when built with it), asked once a Store.
func (s *Store) canLZ4(ctx context.Context) (bool, error) {
	switch s.models.lz4.Load() {
	case 1:
		return true, nil
	case 2:
		return false, nil
	}
	var can bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_settings
		WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))`).Scan(&can); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	s.models.lz4.Store(map[bool]int32{true: 1, false: 2}[can])
	return can, nil
}

// modelsHere is what a Store keeps of the models besides the database.
type modelsHere struct {
	lz4 atomic.Int32 // PostgreSQL compresses with LZ4: 0 not asked yet, 1 yes, 2 no
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

// inList writes "($2,$3,...)" for keys, numbered after the args already
// bound, to q, and returns args with keys appended.
func inList(q *strings.Builder, args []any, keys []string) []any {
	q.WriteByte('(')
	for i, k := range keys {
		if i > 0 {
			q.WriteByte(',')
		}
		args = append(args, k)
		fmt.Fprintf(q, "$%d", len(args))
	}
	q.WriteByte(')')
	return args
}
