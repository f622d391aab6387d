package greylist

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// passCacheSize bounds each of the pass cache's two generations: at most
// twice this many triplets and clients are remembered (some 50 bytes
// each: keys are hashed, however long the addresses a client sent),
// however many a flood of senders makes.
const passCacheSize = 1 << 16

// cacheKey is a passed triplet (kind 't'), an auto-allowed client (kind
// 'c') or a client short of being auto-allowed (kind 'n'), by a SHA-256
// of its parts cut to 128 bits (no two keys a sender could make meet).
type cacheKey struct {
	kind byte
	sum  [16]byte
}

// keyOf is the key of kind for parts, each length-prefixed so that no
// two lists of parts hash alike.
func keyOf(kind byte, parts ...string) cacheKey {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	k := cacheKey{kind: kind}
	copy(k.sum[:], h.Sum(nil))
	return k
}

// passCache remembers, in this process, what the store would answer
// without a write: a triplet that passed (the store leaves it untouched
// for TouchEvery), a client auto-allowed (its count is not counted again
// for countEvery) and a client two or more passes short of it (one pass
// at most is counted in an hour). A request it answers costs no
// statement, or one fewer: with greylisting on, a sender's steady mail
// costs what it costs with greylisting off. Each entry stands until a
// Unix second; past it the store is asked again, and its answer cached
// again. Nothing is cached that another host could undo sooner: a pass
// is only forgotten after MaxAge (days) without mail, a client's count
// does not go up faster than one an hour.
//
// Two generations bound it: when the current one is full it becomes
// the previous one, and the previous one is dropped; a hit in the
// previous one moves to the current.
type passCache struct {
	mu        sync.Mutex
	cur, prev map[cacheKey]int64
	max       int
}

func newPassCache(max int) *passCache {
	return &passCache{cur: make(map[cacheKey]int64), max: max}
}

// get reports whether k stands at now (Unix seconds).
func (c *passCache) get(k cacheKey, now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.cur[k]
	if !ok {
		if until, ok = c.prev[k]; !ok {
			return false
		}
		delete(c.prev, k)
		c.putLocked(k, until)
	}
	if now >= until {
		delete(c.cur, k)
		return false
	}
	return true
}

// put makes k stand until the Unix second until.
func (c *passCache) put(k cacheKey, until int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, until)
}

func (c *passCache) putLocked(k cacheKey, until int64) {
	if _, ok := c.cur[k]; !ok && len(c.cur) >= c.max {
		c.prev, c.cur = c.cur, make(map[cacheKey]int64, len(c.cur))
	}
	c.cur[k] = until
}

// len is how many entries are kept, both generations.
func (c *passCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
