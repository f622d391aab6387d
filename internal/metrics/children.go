package metrics

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// children caches a two-label counter vector's counters by their label
// values. Message counts ten or so a message, and the vector hashes and
// checks the values and takes its lock for each (1.2 us a message with
// everything on, BenchmarkMessage). The cache is a map never changed
// once published: a lookup is a load and the map's, with no lock, whose
// reader count every connection's goroutine wrote (a cache line the
// cores passed between them, BenchmarkMessageParallel). A new label
// pair copies the map; it holds no more than the vector does: one entry
// per label pair ever counted.
type children struct {
	vec *prometheus.CounterVec
	mu  sync.Mutex // held to publish a new map
	m   atomic.Pointer[map[[2]string]prometheus.Counter]
}

func newChildren(vec *prometheus.CounterVec) *children {
	c := &children{vec: vec}
	m := map[[2]string]prometheus.Counter{}
	c.m.Store(&m)
	return c
}

// with is vec.WithLabelValues(a, b).
func (c *children) with(a, b string) prometheus.Counter {
	k := [2]string{a, b}
	if ctr, ok := (*c.m.Load())[k]; ok {
		return ctr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if ctr, ok := old[k]; ok { // published while this one waited
		return ctr
	}
	ctr := c.vec.WithLabelValues(a, b)
	m := maps.Clone(old)
	m[k] = ctr
	c.m.Store(&m)
	return ctr
}
