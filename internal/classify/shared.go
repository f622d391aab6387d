package classify

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BucketCount is one bucket of a model kept as counts: how many junk and
// ham messages had a feature hashed into it.
type BucketCount struct {
	Bucket    uint32
	Junk, Ham int64
}

// Learning is one message to learn: Buckets are where its features
// fall (a bucket listed twice counts twice); Key identifies the message
// so that it is not learnt twice ("": not recorded); Class is "junk" or
// "ham", "" to forget what was learnt of Key, "!junk" or "!ham" to forget
// it only if it was learnt so. A Key learnt before as the other class is
// unlearnt first (a user who changed their mind); as the same class,
// nothing changes.
type Learning struct {
	Key, Class string
	Buckets    []uint32
}

// Learnt is what a Learning did: Prev is its Key's class before ("":
// none), Changed whether the model changed.
type Learnt struct {
	Prev    string
	Changed bool
}

// ModelState is what a CountStore holds of a model besides its buckets.
type ModelState struct {
	Bits      int   // the table has 2^Bits buckets; 0: no such model
	Version   int64 // raised by every change; buckets carry the version that last changed them
	Junk, Ham int64 // messages learnt
}

// CountStore keeps Bayes models as counts per bucket in a database that
// several MX hosts share (internal/store implements it). Learning adds to
// the counts of one message's buckets in one transaction, so hosts that
// learn at once add up instead of overwriting each other's snapshot, and
// a reader fetches only the buckets changed since the version it holds.
type CountStore interface {
	// LearnCounts teaches model name (2^bits buckets) a batch of
	// messages in one transaction and says what it did to each.
	LearnCounts(ctx context.Context, name string, bits int, items []Learning) ([]Learnt, error)
	// AddCounts adds a whole model's counts (a starter model) to name.
	AddCounts(ctx context.Context, name string, bits int, junk, ham int64, buckets []BucketCount) error
	// ModelCounts hands fn every bucket of name changed after version
	// since (0: every bucket in use) and returns the model's state.
	ModelCounts(ctx context.Context, name string, since int64, fn func(BucketCount)) (ModelState, error)
}

// DeltaStore is a CountStore that keeps learning as a log of changes
// (internal/store): a host's refresh reads the changes after the
// version it holds, not the buckets they changed.
type DeltaStore interface {
	CountStore
	// ModelDeltas hands fn the changes to model name after version
	// since, in the order they were learnt, as signed counts, and the
	// model's state; gap true when they can no longer be told (folded
	// away, or a model imported since): read the whole model again.
	ModelDeltas(ctx context.Context, name string, since int64, fn func(BucketCount)) (st ModelState, gap bool, err error)
}

// SiteModel is the store's name of the model every recipient shares.
const SiteModel = "site"

// RecipientModel is the store's name of one recipient's own model.
func RecipientModel(addr string) string { return "rcpt:" + strings.ToLower(addr) }

// Shared is a Bayes model that lives in a CountStore: a Classifier
// classifies from a copy in memory (never a query per message), and
// Refresh brings in what any host learnt since, bucket by bucket.
type Shared struct {
	St   CountStore
	Name string
	C    *Classifier
	// Every is how old the copy may grow before Due says so.
	Every time.Duration

	bayes      *Bayes // C's model; its counts change under C.mu
	mu         sync.Mutex
	version    int64
	last       atomic.Int64 // Unix nanoseconds of the last refresh
	refreshing atomic.Bool
}

// OpenShared reads model name from st, all of it; a model never learnt
// is an empty one of DefaultBits buckets, which says 0.5 of everything
// until both classes have been learnt.
func OpenShared(ctx context.Context, st CountStore, name string, every time.Duration) (*Shared, error) {
	s := &Shared{St: st, Name: name, Every: every}
	m, version, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	s.bayes, s.version = m, version
	s.C = NewClassifier(m, nil)
	return s, nil
}

// load reads the whole model from the store into a new table, each
// bucket straight into its place: a million buckets cost the table's
// 16 MB, not as much again gathered first. A model never learnt is an
// empty table of DefaultBits (version 0).
func (s *Shared) load(ctx context.Context) (*Bayes, int64, error) {
	meta, err := s.St.ModelCounts(ctx, s.Name, math.MaxInt64, func(BucketCount) {})
	if err != nil {
		return nil, 0, fmt.Errorf("classify: model %s: %w", s.Name, err)
	}
	s.last.Store(time.Now().UnixNano())
	if meta.Bits == 0 {
		return NewBayes(DefaultBits), 0, nil
	}
	if meta.Bits < minBits || meta.Bits > maxBits {
		return nil, 0, fmt.Errorf("classify: model %s: 2^%d buckets in the store", s.Name, meta.Bits)
	}
	m := NewBayes(meta.Bits)
	st, err := s.St.ModelCounts(ctx, s.Name, 0, func(b BucketCount) {
		if uint64(b.Bucket) < uint64(len(m.table)) {
			m.table[b.Bucket] = bayesBucket{clampCount(b.Junk), clampCount(b.Ham)}
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("classify: model %s: %w", s.Name, err)
	}
	if st.Bits != meta.Bits {
		return nil, 0, fmt.Errorf("classify: model %s: 2^%d buckets in the store, then 2^%d", s.Name, meta.Bits, st.Bits)
	}
	m.nJunk, m.nHam = uint64(max(st.Junk, 0)), uint64(max(st.Ham, 0))
	return m, st.Version, nil
}

// reload reads the whole model into a table of its own and swaps it in
// at once; s.mu is held. A store with nothing learnt changes nothing
// unless emptyToo.
func (s *Shared) reload(ctx context.Context, emptyToo bool) error {
	m, version, err := s.load(ctx)
	if err != nil || version == 0 && !emptyToo {
		return err
	}
	s.C.mu.Lock()
	s.bayes, s.C.model = m, m
	s.C.mu.Unlock()
	s.version = version
	return nil
}

// Refresh reads the buckets changed in the store since the last refresh
// and swaps their counts in.
func (s *Shared) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version == 0 {
		// Nothing read yet: the whole model, into a table of its own
		// swapped in at once.
		return s.reload(ctx, false)
	}
	if ds, ok := s.St.(DeltaStore); ok {
		return s.refreshDeltas(ctx, ds)
	}
	var changed []BucketCount
	st, err := s.St.ModelCounts(ctx, s.Name, s.version, func(b BucketCount) { changed = append(changed, b) })
	if err != nil {
		return fmt.Errorf("classify: model %s: %w", s.Name, err)
	}
	s.last.Store(time.Now().UnixNano())
	if st.Bits == 0 {
		return nil // nothing learnt yet
	}
	m := s.bayes
	if st.Bits != int(m.bits) {
		return fmt.Errorf("classify: model %s: 2^%d buckets in the store, 2^%d here", s.Name, st.Bits, m.bits)
	}
	s.C.mu.Lock()
	for _, b := range changed {
		if uint64(b.Bucket) < uint64(len(m.table)) {
			m.table[b.Bucket] = bayesBucket{clampCount(b.Junk), clampCount(b.Ham)}
		}
	}
	m.nJunk, m.nHam = uint64(max(st.Junk, 0)), uint64(max(st.Ham, 0))
	s.C.mu.Unlock()
	s.version = st.Version
	return nil
}

// refreshDeltas applies the changes learnt since the copy's version,
// in order, each count kept within 0 and 2^32-1; when the store can no
// longer tell them, the whole model is read again into a new table.
func (s *Shared) refreshDeltas(ctx context.Context, ds DeltaStore) error {
	var deltas []BucketCount
	st, gap, err := ds.ModelDeltas(ctx, s.Name, s.version, func(b BucketCount) { deltas = append(deltas, b) })
	if err != nil {
		return fmt.Errorf("classify: model %s: %w", s.Name, err)
	}
	s.last.Store(time.Now().UnixNano())
	if gap {
		return s.reload(ctx, true)
	}
	if st.Version <= s.version {
		return nil
	}
	m := s.bayes
	if st.Bits != int(m.bits) {
		return fmt.Errorf("classify: model %s: 2^%d buckets in the store, 2^%d here", s.Name, st.Bits, m.bits)
	}
	s.C.mu.Lock()
	for _, d := range deltas {
		if uint64(d.Bucket) < uint64(len(m.table)) {
			b := &m.table[d.Bucket]
			b.junk, b.ham = clampCount(int64(b.junk)+d.Junk), clampCount(int64(b.ham)+d.Ham)
		}
	}
	m.nJunk, m.nHam = uint64(max(st.Junk, 0)), uint64(max(st.Ham, 0))
	s.C.mu.Unlock()
	s.version = st.Version
	return nil
}

func clampCount(n int64) uint32 { return uint32(min(max(n, 0), math.MaxUint32)) }

// Due reports whether the copy is older than Every and no refresh runs;
// it then counts as running, and the caller must call Refresh.
func (s *Shared) Due(now time.Time) bool {
	if s.Every <= 0 || now.UnixNano()-s.last.Load() < int64(s.Every) {
		return false
	}
	return s.refreshing.CompareAndSwap(false, true)
}

// RefreshInBackground refreshes in a goroutine of its own, when Due:
// what a message's classification calls, so that it never waits on the
// store. An error leaves the copy as it was and is handed to onErr (may
// be nil).
func (s *Shared) RefreshInBackground(now time.Time, onErr func(error)) {
	if !s.Due(now) {
		return
	}
	go func() {
		defer s.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Refresh(ctx); err != nil && onErr != nil {
			onErr(err)
		}
	}()
}

// Learner teaches a model in a CountStore, one message at a time.
type Learner struct {
	St   CountStore
	Name string // SiteModel, or RecipientModel(addr)
	Bits int    // 0: the store's model's, or DefaultBits for a new one

	x     *Extractor
	batch []Learning
}

// LearnOutcome is what Learn did.
type LearnOutcome struct {
	Key     string // the message's identity in the store
	Prev    string // the class it had been learnt as ("" none)
	Changed bool   // false: already learnt so (or nothing to forget)
}

// Learn teaches msg, whose raw form is raw, as class: "spam" or "phish"
// (junk), "ham", or "" to forget it ("!spam", "!ham": only if it was
// learnt so), at once. The message is known by MessageKey.
func (l *Learner) Learn(ctx context.Context, raw []byte, msg *Message, class string) (LearnOutcome, error) {
	if err := l.Add(ctx, raw, msg, class); err != nil {
		return LearnOutcome{}, err
	}
	out, err := l.Flush(ctx)
	if err != nil {
		return LearnOutcome{}, err
	}
	return out[0], nil
}

// Add queues msg to be learnt as class (as Learn) at the next Flush:
// a batch is one transaction, its messages' counts summed per bucket.
func (l *Learner) Add(ctx context.Context, raw []byte, msg *Message, class string) error {
	c := ""
	switch class {
	case "spam", "phish", "junk":
		c = "junk"
	case "ham":
		c = "ham"
	case "", "!junk", "!ham":
		c = class
	case "!spam", "!phish":
		c = "!junk"
	default:
		return fmt.Errorf("classify: class %q (spam, ham)", class)
	}
	if l.x == nil {
		l.x = NewExtractor()
	}
	if l.Bits == 0 {
		// The store's size when it has the model (a starter model may
		// have been imported at another size), DefaultBits when not.
		st, err := l.St.ModelCounts(ctx, l.Name, math.MaxInt64, func(BucketCount) {})
		if err != nil {
			return fmt.Errorf("classify: learn into %s: %w", l.Name, err)
		}
		l.Bits = cmp.Or(st.Bits, DefaultBits)
	}
	v := l.x.Extract(msg)
	buckets := make([]uint32, len(v.Hashes))
	for i, h := range v.Hashes {
		buckets[i] = uint32(h >> (64 - l.Bits))
	}
	l.batch = append(l.batch, Learning{Key: MessageKey(msg, raw), Class: c, Buckets: buckets})
	return nil
}

// Pending is how many messages wait for Flush.
func (l *Learner) Pending() int { return len(l.batch) }

// Flush learns the queued messages in one transaction and says what it
// did to each, in the order they were added.
func (l *Learner) Flush(ctx context.Context) ([]LearnOutcome, error) {
	batch := l.batch
	l.batch = nil
	if len(batch) == 0 {
		return nil, nil
	}
	res, err := l.St.LearnCounts(ctx, l.Name, l.Bits, batch)
	if err != nil {
		return nil, fmt.Errorf("classify: learn into %s: %w", l.Name, err)
	}
	out := make([]LearnOutcome, len(batch))
	for i, r := range res {
		out[i] = LearnOutcome{Key: batch[i].Key, Prev: r.Prev, Changed: r.Changed}
	}
	return out, nil
}

// Import adds the counts of a Bayes model (a starter model file) to
// model name in st.
func Import(ctx context.Context, st CountStore, name string, m Model) error {
	b, ok := m.(*Bayes)
	if !ok {
		return fmt.Errorf("classify: only a bayes model can seed the store, not %s", m.Kind())
	}
	b.densify()
	var rows []BucketCount
	for i, c := range b.table {
		if c.junk != 0 || c.ham != 0 {
			rows = append(rows, BucketCount{Bucket: uint32(i), Junk: int64(c.junk), Ham: int64(c.ham)})
		}
	}
	return st.AddCounts(ctx, name, int(b.bits), int64(b.nJunk), int64(b.nHam), rows)
}
