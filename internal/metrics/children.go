package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// children caches a two-label counter vector's counters by their label
// values. Message counts ten or so a message, and the vector hashes and
// checks the values and takes its lock for each (1.2 us a message with
// everything on, BenchmarkMessage); a map lookup under a read lock is a
// fraction of that. It holds no more than the vector does: one entry
// per label pair ever counted.
type children struct {
	vec *prometheus.CounterVec
	mu  sync.RWMutex
	m   map[[2]string]prometheus.Counter
}

func newChildren(vec *prometheus.CounterVec) *children {
	return &children{vec: vec, m: map[[2]string]prometheus.Counter{}}
}

// with is vec.WithLabelValues(a, b).
func (c *children) with(a, b string) prometheus.Counter {
	k := [2]string{a, b}
	c.mu.RLock()
	ctr, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return ctr
	}
	ctr = c.vec.WithLabelValues(a, b)
	c.mu.Lock()
	c.m[k] = ctr
	c.mu.Unlock()
	return ctr
}
