package phish

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// memo remembers a pure function of a domain or a short text across
// messages: the public suffix list's answer for the domains messages
// name most (the From domain, the recipient's, DKIM's and SPF's, the
// links' hosts), each a walk of the list, or the brands a host or a
// display name imitates. It is bounded (memoSlots entries, each key of
// at most maxMemoKey octets, copied) and lock-free: a slot holds the last
// key hashed to it. Values must not be changed once made.
type memo[V any] struct {
	seed  maphash.Seed
	slots [memoSlots]atomic.Pointer[memoEntry[V]]
}

// memoSlots is the number of keys a memo remembers at most.
const memoSlots = 512

// maxMemoKey is the longest key remembered: a name's limit (RFC 1035
// §2.3.4); longer ones, never a real host, are computed each time.
const maxMemoKey = 255

type memoEntry[V any] struct {
	key string
	v   V
}

func newMemo[V any]() *memo[V] { return &memo[V]{seed: maphash.MakeSeed()} }

// get is f(key), remembered; a nil memo remembers nothing.
func (m *memo[V]) get(key string, f func(string) V) V {
	if m == nil || len(key) > maxMemoKey {
		return f(key)
	}
	slot := &m.slots[maphash.String(m.seed, key)%memoSlots]
	if e := slot.Load(); e != nil && e.key == key {
		return e.v
	}
	// A copy: key may be a piece of a large string (a message's text),
	// which the memo must not keep alive; f's value may hold pieces of
	// the copy.
	k := strings.Clone(key)
	v := f(k)
	slot.Store(&memoEntry[V]{k, v})
	return v
}

// suffixPair is suffixParts' answer.
type suffixPair struct{ org, without string }

func suffixPairOf(domain string) suffixPair {
	org, without := suffixParts(domain)
	return suffixPair{org, without}
}
