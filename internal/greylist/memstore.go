package greylist

import (
	"context"
	"sync"
	"time"
)

// MemStore is a Store in memory, with the rules internal/store applies in
// SQL, at a second's resolution like it: for tests, and the reference
// the SQL stores are tested against.
type MemStore struct {
	mu       sync.Mutex
	triplets map[Triplet]Row
	clients  map[string]memClient
}

type memClient struct{ passes, last int64 }

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{triplets: map[Triplet]Row{}, clients: map[string]memClient{}}
}

// NextRow applies postgrey's rules (Store.SeenTriplet) to a triplet's
// row for a request at n (Unix seconds): the row after it, and whether
// a store writes it (a passed triplet seen within TouchEvery is left as
// it is). It is the rules MemStore keeps and the SQL stores are tested
// against, and what a Greylister decides from a row it read
// (BatchStore.PeekTripletClient) before writing it later.
func NextRow(old Row, n int64, tm Timing) (next Row, write bool) {
	if old.Found && old.Passed != 0 && n >= old.Last && n-old.Last < secs(TouchEvery) {
		return old, false // passed, in use: not written
	}
	next = Row{Found: true, First: n, Last: n}
	if old.Found && n-old.Last <= secs(tm.MaxAge) {
		next = old
		next.Last = n
		if old.Passed == 0 {
			switch age := n - old.First; {
			case age > secs(tm.RetryWindow):
				next.First = n
			case age >= secs(tm.Delay):
				next.Passed = n
			}
		}
	}
	return next, true
}

// SeenTriplet implements Store.
func (m *MemStore) SeenTriplet(_ context.Context, t Triplet, now time.Time, tm Timing) (Seen, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, write := NextRow(m.triplets[t], now.Unix(), tm)
	if write {
		m.triplets[t] = next
	}
	return seenOf(next.First, next.Passed), nil
}

// PeekTripletClient implements BatchStore.
func (m *MemStore) PeekTripletClient(ctx context.Context, t Triplet, client string, now time.Time, maxAge time.Duration) (Row, int, time.Time, error) {
	m.mu.Lock()
	row := m.triplets[t]
	m.mu.Unlock()
	if client == "" {
		return row, 0, time.Time{}, nil
	}
	n, last, err := m.ClientPasses(ctx, client, now, maxAge)
	return row, n, last, err
}

// SeenTriplets implements BatchStore.
func (m *MemStore) SeenTriplets(ctx context.Context, reqs []TripletAt, tm Timing) error {
	done := make(map[Triplet]bool, len(reqs))
	for _, r := range reqs {
		if done[r.Triplet] {
			continue
		}
		done[r.Triplet] = true
		if _, err := m.SeenTriplet(ctx, r.Triplet, time.Unix(r.At, 0), tm); err != nil {
			return err
		}
	}
	return nil
}

// ClientPasses implements Store.
func (m *MemStore) ClientPasses(_ context.Context, client string, now time.Time, maxAge time.Duration) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[client]
	if !ok || now.Unix()-c.last > secs(maxAge) {
		return 0, time.Time{}, nil
	}
	return int(c.passes), time.Unix(c.last, 0), nil
}

// CountClientPass implements Store.
func (m *MemStore) CountClientPass(_ context.Context, client string, now time.Time, maxAge time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := now.Unix()
	c, ok := m.clients[client]
	switch {
	case !ok || n-c.last > secs(maxAge):
		c = memClient{passes: 1, last: n}
	case n-c.last >= secs(countEvery):
		c = memClient{passes: c.passes + 1, last: n}
	}
	m.clients[client] = c
	return nil
}

// Purge drops what the store's retention drops: triplets unseen for
// maxAge, unpassed ones unseen for retryWindow, clients unseen for maxAge.
func (m *MemStore) Purge(now time.Time, retryWindow, maxAge time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := now.Unix()
	for k, t := range m.triplets {
		if n-t.Last > secs(maxAge) || t.Passed == 0 && n-t.Last > secs(retryWindow) {
			delete(m.triplets, k)
		}
	}
	for k, c := range m.clients {
		if n-c.last > secs(maxAge) {
			delete(m.clients, k)
		}
	}
}

// Len is the number of triplets and clients kept.
func (m *MemStore) Len() (triplets, clients int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.triplets), len(m.clients)
}

func secs(d time.Duration) int64 { return int64(d / time.Second) }

func seenOf(first, passed int64) Seen {
	s := Seen{First: time.Unix(first, 0)}
	if passed != 0 {
		s.Passed = time.Unix(passed, 0)
	}
	return s
}

// SeenOf builds a Seen from Unix seconds (passed 0: not yet), for stores.
func SeenOf(first, passed int64) Seen { return seenOf(first, passed) }
