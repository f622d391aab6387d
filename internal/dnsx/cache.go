package dnsx

import (
	"container/list"
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache is a Resolver that remembers the answers of another one for their
// TTL, negative answers included (RFC 2308), up to a bounded number of
// entries (least recently used first out). Concurrent misses for the same
// question share one upstream query. Failures are not cached, so a DNS
// outage ends as soon as the server answers again.
type Cache struct {
	upstream Resolver
	opts     CacheOptions

	mu      sync.Mutex
	entries map[cacheKey]*list.Element
	lru     list.List // front: most recently used; values are *cacheEntry
	flight  singleflight.Group

	hits, misses, evictions atomic.Uint64
}

// CacheOptions bounds the cache. Zero values take the defaults noted.
type CacheOptions struct {
	MaxEntries  int           // default 10000
	MaxTTL      time.Duration // cap on positive TTLs; default 1h
	MaxNegative time.Duration // cap on negative TTLs; default 5m
	// Now is the clock; tests set it. Default time.Now.
	Now func() time.Time
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	key     cacheKey
	answer  *Answer
	expires time.Time
}

// CacheStats are the cache's counters since it was made.
type CacheStats struct {
	Entries                 int
	Hits, Misses, Evictions uint64
}

// NewCache wraps upstream.
func NewCache(upstream Resolver, opts CacheOptions) *Cache {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = time.Hour
	}
	if opts.MaxNegative <= 0 {
		opts.MaxNegative = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache{upstream: upstream, opts: opts, entries: make(map[cacheKey]*list.Element)}
}

// Query answers from the cache when it holds a live answer, else asks
// upstream and stores what it says.
func (c *Cache) Query(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	key := cacheKey{Fqdn(name), qtype}
	if a := c.get(key); a != nil {
		c.hits.Add(1)
		return a, nil
	}
	c.misses.Add(1)
	flightKey := key.name + "/" + strconv.Itoa(int(qtype))
	v, err, _ := c.flight.Do(flightKey, func() (any, error) {
		a, err := c.upstream.Query(ctx, key.name, qtype)
		if err != nil {
			return nil, err
		}
		c.put(key, a)
		return a, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Answer), nil
}

func (c *Cache) get(key cacheKey) *Answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !c.opts.Now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return nil
	}
	c.lru.MoveToFront(el)
	return e.answer
}

func (c *Cache) put(key cacheKey, a *Answer) {
	ttl := time.Duration(a.TTL) * time.Second
	limit := c.opts.MaxTTL
	if a.Empty() {
		limit = c.opts.MaxNegative
	}
	ttl = min(ttl, limit)
	if ttl <= 0 {
		return // TTL 0, or a negative answer without SOA (RFC 2308 §5)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &cacheEntry{key: key, answer: a, expires: c.opts.Now().Add(ttl)}
	if el, ok := c.entries[key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[key] = c.lru.PushFront(e)
	for len(c.entries) > c.opts.MaxEntries {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.entries, last.Value.(*cacheEntry).key)
		c.evictions.Add(1)
	}
}

// Peek returns the cached answer for name and qtype with the time it has
// left, without asking upstream and without counting a hit: what the cache
// currently believes.
func (c *Cache) Peek(name string, qtype uint16) (*Answer, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[cacheKey{Fqdn(name), qtype}]
	if !ok {
		return nil, 0, false
	}
	e := el.Value.(*cacheEntry)
	left := e.expires.Sub(c.opts.Now())
	if left <= 0 {
		return nil, 0, false
	}
	return e.answer, left, true
}

// Flush empties the cache.
func (c *Cache) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.lru.Init()
}

// FlushName drops every cached answer for name, of any type, and returns
// how many were dropped.
func (c *Cache) FlushName(name string) int {
	fq := Fqdn(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, el := range c.entries {
		if k.name == fq {
			c.lru.Remove(el)
			delete(c.entries, k)
			n++
		}
	}
	return n
}

// Stats returns the counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	return CacheStats{Entries: n, Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
}

// CacheEntry is one live answer in the cache, for the dashboard.
type CacheEntry struct {
	Name    string
	Type    uint16
	Rcode   int
	Records []string // presentation format, RFC 1035 §5.1
	Left    time.Duration
	// Security is the answer's DNSSEC status (dnssec.go).
	Security Security
	// SecurityReason is why an answer is not secure (Answer.SecurityReason):
	// the delegation without DS, the opt-out, the untrusted AD bit.
	SecurityReason string
}

// Entries lists up to limit live answers whose name contains substr,
// most recently used first.
func (c *Cache) Entries(substr string, limit int) []CacheEntry {
	substr = strings.ToLower(substr)
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []CacheEntry
	for el := c.lru.Front(); el != nil && len(out) < limit; el = el.Next() {
		e := el.Value.(*cacheEntry)
		left := e.expires.Sub(now)
		if left <= 0 || !strings.Contains(e.key.name, substr) {
			continue
		}
		ce := CacheEntry{Name: e.key.name, Type: e.key.qtype, Rcode: e.answer.Rcode, Left: left, Security: e.answer.Security,
			SecurityReason: e.answer.SecurityReason}
		for _, rr := range e.answer.Records {
			ce.Records = append(ce.Records, rr.String())
		}
		out = append(out, ce)
	}
	return out
}
