package classify

import (
	"strings"

	"mailwall/internal/phish"
)

// suffixMemo remembers the last registered domains and public suffixes
// an Extractor looked up (phish.RegisteredSuffix: a walk of the public
// suffix list, and an attempt to read the name as an IP address whose
// error allocates): a message names one domain in several places (From,
// Message-ID, links), and the messages to a site its own (the
// recipients). A domain is kept as a copy, not as part of a message's
// text.
type suffixMemo struct {
	e    [8]struct{ domain, org, suffix string }
	next int
}

// lookup is phish.RegisteredSuffix(domain).
func (m *suffixMemo) lookup(domain string) (org, suffix string) {
	if domain == "" {
		return phish.RegisteredSuffix(domain)
	}
	for i := range m.e {
		if e := &m.e[i]; e.domain == domain {
			return e.org, e.suffix
		}
	}
	org, suffix = phish.RegisteredSuffix(domain)
	key := strings.Clone(domain)
	e := &m.e[m.next]
	m.next = (m.next + 1) % len(m.e)
	e.domain, e.org, e.suffix = key, tailOf(key, org), tailOf(key, suffix)
	return org, suffix
}

// tailOf is s, as the end of key when key ends in it.
func tailOf(key, s string) string {
	if strings.HasSuffix(key, s) {
		return key[len(key)-len(s):]
	}
	return strings.Clone(s)
}

// registered is registered(domain), through x's memo.
func (x *Extractor) registered(domain string) string {
	org, _ := x.suffixes.lookup(domain)
	return org
}

// domainOf is an address's registered domain.
func (x *Extractor) domainOf(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return x.registered(d)
}
