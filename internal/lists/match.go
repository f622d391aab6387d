package lists

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Set is a snapshot of both lists compiled for matching. The zero Set
// and a nil *Set match nothing.
type Set struct {
	// nets are the IP entries by prefix, and bits the prefix lengths in
	// use (IPv4 and IPv6 apart): a lookup is one map access per length,
	// whatever the number of entries.
	nets         map[netip.Prefix][]Entry
	bits4, bits6 []int
	addrs        map[string][]Entry
	domains      map[string][]Entry
	rcpts        map[string][]Entry
	n            int
}

// Compile builds a Set from entries (already normalized, as the store
// keeps them; an entry that does not normalize is skipped).
func Compile(entries []Entry) *Set {
	s := &Set{nets: map[netip.Prefix][]Entry{}, addrs: map[string][]Entry{}, domains: map[string][]Entry{}, rcpts: map[string][]Entry{}}
	for _, e := range entries {
		v, err := Normalize(e.Kind, e.Value)
		if err != nil || (e.List != Allow && e.List != Block) {
			continue
		}
		e.Value = v
		s.n++
		switch e.Kind {
		case IP:
			p := netip.MustParsePrefix(v)
			if len(s.nets[p]) == 0 {
				if p.Addr().Is4() {
					s.bits4 = addBits(s.bits4, p.Bits())
				} else {
					s.bits6 = addBits(s.bits6, p.Bits())
				}
			}
			s.nets[p] = append(s.nets[p], e)
		case Sender:
			s.addrs[v] = append(s.addrs[v], e)
		case Domain:
			s.domains[v] = append(s.domains[v], e)
		case Rcpt:
			s.rcpts[v] = append(s.rcpts[v], e)
		}
	}
	return s
}

// Len is the number of entries in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Query is what is known about a message when the lists are asked. The
// policy server knows the client, MAIL FROM and SPF at RCPT; the milter
// knows everything at end of message.
type Query struct {
	IP netip.Addr
	// MailFrom is the envelope sender ("" for a bounce); MailFromAuth
	// says SPF passed for its domain.
	MailFrom     string
	MailFromAuth bool
	// From are the header From addresses; FromDomain the author domain
	// DMARC evaluated and FromAuth whether it is authenticated (DMARC
	// pass, or an aligned DKIM or SPF pass without a DMARC record).
	From       []string
	FromDomain string
	FromAuth   bool
	// Rcpts are the recipients: an allow by recipient applies when every
	// one of them is on the list.
	Rcpts []string
	// Now is when the entries' expiry is judged; zero: time.Now().
	Now time.Time
}

// Hit is one entry that matched, with the identity it matched.
type Hit struct {
	Entry    Entry
	Identity string // "client 192.0.2.1", "MAIL FROM a@b", "From a@b", "recipient a@b"
}

// String says which entry matched what, for reasons and logs.
func (h Hit) String() string {
	s := fmt.Sprintf("%s %s %s matches %s", h.Entry.List, h.Entry.Kind, h.Entry.Value, h.Identity)
	if h.Entry.Note != "" {
		s += " (" + h.Entry.Note + ")"
	}
	return s
}

// Decision is what the lists say about a message.
type Decision struct {
	// Block is the first block entry that matched; it wins over Allow
	// unless that is a recipient's (Blocked, Allowed).
	Block *Hit
	// Allow is the allow entry that applies (nil: none).
	Allow *Hit
	// Unauthenticated are allow entries that matched an identity that
	// was not authenticated, and so did not apply.
	Unauthenticated []Hit
}

// Allowed reports whether an allow entry applies: no block entry
// matched, or the allow is by recipient. Recipients who want everything
// get even a blocked sender's mail: RFC 5321 §4.5.1 expects postmaster
// to take mail from anyone, and abuse@ wants the spam it is told of.
func (d Decision) Allowed() bool {
	return d.Allow != nil && (d.Block == nil || d.Allow.Entry.Kind == Rcpt)
}

// Blocked reports whether a block entry applies.
func (d Decision) Blocked() bool { return d.Block != nil && !d.Allowed() }

// Reasons are the decision's lines for a verdict's reasons, the entry
// that decided first.
func (d Decision) Reasons() []string {
	var out []string
	switch {
	case d.Blocked():
		out = append(out, "lists: "+d.Block.String())
		if d.Allow != nil {
			out = append(out, "lists: not applied, blocked: "+d.Allow.String())
		}
	case d.Allowed():
		out = append(out, "lists: "+d.Allow.String())
		if d.Block != nil {
			out = append(out, "lists: not applied, every recipient wants everything: "+d.Block.String())
		}
	}
	for _, h := range d.Unauthenticated {
		out = append(out, "lists: not applied, not authenticated: "+h.String())
	}
	return out
}

// Check matches q against the lists.
func (s *Set) Check(q Query) Decision {
	var d Decision
	if s.Len() == 0 {
		return d
	}
	now := q.Now
	if now.IsZero() {
		now = time.Now()
	}
	note := func(e Entry, identity string, authenticated bool) {
		if e.Expired(now) {
			return
		}
		h := Hit{Entry: e, Identity: identity}
		switch {
		case e.List == Block:
			if d.Block == nil {
				d.Block = &h
			}
		case !authenticated:
			d.Unauthenticated = append(d.Unauthenticated, h)
		case d.Allow == nil:
			d.Allow = &h
		}
	}
	if q.IP.IsValid() {
		ip := q.IP.Unmap()
		bits := s.bits6
		if ip.Is4() {
			bits = s.bits4
		}
		for _, b := range bits {
			p, _ := ip.Prefix(b)
			for _, e := range s.nets[p] {
				note(e, "client "+ip.String(), true)
			}
		}
	}
	sender := func(addr, label string, auth bool) {
		addr = strings.ToLower(strings.Trim(addr, "<> "))
		_, dom, ok := strings.Cut(addr, "@")
		if !ok {
			return
		}
		for _, e := range s.addrs[addr] {
			note(e, label+" "+addr, auth)
		}
		s.domainHits(dom, func(e Entry) { note(e, label+" "+addr, auth) })
	}
	if q.MailFrom != "" {
		sender(q.MailFrom, "MAIL FROM", q.MailFromAuth)
	}
	for _, a := range q.From {
		// Only an address in the authenticated domain counts as
		// authenticated: with several From addresses DMARC judged one.
		_, dom, _ := strings.Cut(strings.ToLower(a), "@")
		sender(a, "From", q.FromAuth && dom == strings.ToLower(q.FromDomain))
	}
	if len(q.Rcpts) > 0 {
		var first *Entry
		all := true
		for _, r := range q.Rcpts {
			r = strings.ToLower(strings.Trim(r, "<> "))
			found := false
			for _, e := range s.rcpts[r] {
				if e.Expired(now) {
					continue
				}
				if e.List == Block {
					note(e, "recipient "+r, true)
					continue
				}
				found = true
				if first == nil {
					first = &e
				}
			}
			all = all && found
		}
		if all && first != nil {
			// In place of any other allow: a recipient's wins over a
			// block (Allowed).
			d.Allow = &Hit{Entry: *first, Identity: "recipient " + strings.Join(q.Rcpts, ", ")}
		}
	}
	return d
}

// addBits adds n to the prefix lengths bs, longest first (so that the
// most specific entry is found first), once.
func addBits(bs []int, n int) []int {
	for i, b := range bs {
		if b == n {
			return bs
		}
		if b < n {
			return slices.Insert(bs, i, n)
		}
	}
	return append(bs, n)
}

// domainHits calls f for each entry on dom or a parent domain of it.
func (s *Set) domainHits(dom string, f func(Entry)) {
	dom = strings.TrimSuffix(dom, ".")
	for dom != "" {
		for _, e := range s.domains[dom] {
			f(e)
		}
		_, rest, ok := strings.Cut(dom, ".")
		if !ok {
			return
		}
		dom = rest
	}
}
