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
	triplets map[Triplet]memTriplet
	clients  map[string]memClient
}

type memTriplet struct{ first, last, passed int64 }
type memClient struct{ passes, last int64 }

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{triplets: map[Triplet]memTriplet{}, clients: map[string]memClient{}}
}

// SeenTriplet implements Store.
func (m *MemStore) SeenTriplet(_ context.Context, t Triplet, now time.Time, tm Timing) (Seen, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := now.Unix()
	old, ok := m.triplets[t]
	next := memTriplet{first: n, last: n}
	if ok && old.passed != 0 && n >= old.last && n-old.last < secs(TouchEvery) {
		return seenOf(old.first, old.passed), nil // passed, in use: not written
	}
	if ok && n-old.last <= secs(tm.MaxAge) {
		next = old
		next.last = n
		if old.passed == 0 {
			switch age := n - old.first; {
			case age > secs(tm.RetryWindow):
				next.first = n
			case age >= secs(tm.Delay):
				next.passed = n
			}
		}
	}
	m.triplets[t] = next
	return seenOf(next.first, next.passed), nil
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
		if n-t.last > secs(maxAge) || t.passed == 0 && n-t.last > secs(retryWindow) {
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
