package phish

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// suffixCache remembers suffixParts for the domains messages name most
// (the From domain, the recipient's, DKIM's and SPF's, the links'
// hosts): each is a walk of the public suffix list, about a microsecond,
// and a message asks for a few. It is bounded (suffixSlots entries, each
// a domain of at most maxCachedDomain octets, copied) and lock-free: a
// slot holds the last domain hashed to it.
type suffixCache struct {
	seed  maphash.Seed
	slots [suffixSlots]atomic.Pointer[suffixEntry]
}

// suffixSlots is the number of domains remembered at most.
const suffixSlots = 512

// maxCachedDomain is the longest domain remembered: a name's limit
// (RFC 1035 §2.3.4); longer ones, never a real host, are looked up each
// time.
const maxCachedDomain = 255

type suffixEntry struct{ domain, org, without string }

func newSuffixCache() *suffixCache { return &suffixCache{seed: maphash.MakeSeed()} }

// parts is suffixParts(domain), remembered; a nil cache remembers
// nothing.
func (c *suffixCache) parts(domain string) (org, without string) {
	if c == nil || len(domain) > maxCachedDomain {
		return suffixParts(domain)
	}
	slot := &c.slots[maphash.String(c.seed, domain)%suffixSlots]
	if e := slot.Load(); e != nil && e.domain == domain {
		return e.org, e.without
	}
	// A copy: domain may be a piece of a large string (a message's
	// text), which the cache must not keep alive. org and without are
	// pieces of the copy.
	d := strings.Clone(domain)
	org, without = suffixParts(d)
	slot.Store(&suffixEntry{d, org, without})
	return org, without
}
