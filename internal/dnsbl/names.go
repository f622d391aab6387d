package dnsbl

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

const hexDigits = "0123456789abcdef"

// ipQueryName is the name under which zone lists ip (RFC 5782 §2.1): an
// IPv4 address's four octets reversed, an IPv6 address's 32 nibbles
// reversed, each a label, the zone after them. The address is used as
// given: callers unmap IPv4-mapped addresses (a client's) but the IPv6
// test point ::FFFF:7F00:2 (RFC 5782 §5) must stay mapped.
func ipQueryName(ip netip.Addr, zone string) string {
	fq := ipQueryFqdn(ip, zone)
	return fq[:len(fq)-1]
}

// ipQueryFqdn is ipQueryName with the root's dot, as the cache keys
// names: one allocation gives both (this runs for every zone of every
// check).
func ipQueryFqdn(ip netip.Addr, zone string) string {
	var b []byte
	if ip.Is4() {
		a := ip.As4()
		b = make([]byte, 0, 17+len(zone))
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(a[i]), 10)
			b = append(b, '.')
		}
	} else {
		a := ip.As16()
		b = make([]byte, 0, 65+len(zone))
		for i := len(a) - 1; i >= 0; i-- {
			b = append(b, hexDigits[a[i]&0xf], '.', hexDigits[a[i]>>4], '.')
		}
	}
	return string(append(append(b, zone...), '.'))
}

// maxName is the longest name in presentation form without the trailing
// dot that fits the 255-octet wire limit (RFC 1035 §2.3.4).
const maxName = 253

// NormalizeDomain turns a host name from a message (a URL's host, a From
// domain) into the form a domain list is asked about (RFC 5782 §2.2):
// lower case, IDNA A-labels, no trailing dot, letters, digits, '-' and '_'
// only, labels of at most 63 octets, at most 253 in all. The lookup name
// adds the zone, so Domains also checks the sum.
func NormalizeDomain(name string) (string, error) {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if name == "" {
		return "", errors.New("dnsbl: empty domain")
	}
	if len(name) > 4*maxName {
		return "", errors.New("dnsbl: domain too long")
	}
	// idna.Lookup maps case and full-width dots and refuses what UTS #46
	// refuses; ASCII names pass through lower-cased. Names already in
	// that form (most) skip it: it allocates, and this runs for every
	// name of every message. A-labels (xn--) are always checked.
	a, err := name, error(nil)
	if !plainLDH(name) {
		a, err = idna.Lookup.ToASCII(name)
	}
	if err != nil {
		// Names with '_' (seen in real hosts) fail the STD3 rules; keep
		// them when they are otherwise plain ASCII.
		if !isASCII(name) {
			return "", fmt.Errorf("dnsbl: domain %q: %w", name, err)
		}
		a = strings.ToLower(name)
	}
	if len(a) > maxName {
		return "", fmt.Errorf("dnsbl: domain %q longer than %d octets", a, maxName)
	}
	if !strings.Contains(a, ".") {
		return "", fmt.Errorf("dnsbl: domain %q has a single label", a)
	}
	// Label by label, without a slice of them.
	for rest := a; ; {
		l, more, found := strings.Cut(rest, ".")
		if err := validLabel(l); err != nil {
			return "", fmt.Errorf("dnsbl: domain %q: %w", a, err)
		}
		if !found {
			break
		}
		rest = more
	}
	return a, nil
}

// plainLDH reports whether s is lower-case letters, digits, '-' and
// '.' only, without an A-label: what idna.Lookup.ToASCII returns as it
// is (the labels are checked after).
func plainLDH(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.Contains(s, "xn--")
}

// mayBeIP is a cheap test before ipLiteral: a host name has a letter
// and neither '[' nor ':'.
func mayBeIP(h string) bool {
	// A loop, not strings.ContainsAny and strings.Trim: those build a
	// set of their characters each call, for every name of every message.
	digitsDots := true
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '[' || c == ':':
			return true
		case (c < '0' || c > '9') && c != '.':
			digitsDots = false
		}
	}
	return digitsDots
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ipLiteral recognises a host that is an address: 192.0.2.1, [192.0.2.1],
// [IPv6:2001:db8::1] (RFC 5321 §4.1.3), 2001:db8::1.
func ipLiteral(host string) (netip.Addr, bool) {
	h := strings.TrimSpace(host)
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
		if len(h) > 5 && strings.EqualFold(h[:5], "ipv6:") {
			h = h[5:]
		}
	}
	ip, err := netip.ParseAddr(h)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// names is the bounded, deduplicated set of things to ask lists about.
type names struct {
	ips     []netip.Addr
	domains []string
	dropped int      // over the cap
	invalid []string // not a domain or address, quoted for the result
}

// collect takes the addresses ips, then sorts hosts into addresses and
// domains, adds each domain's registered domain (publicsuffix's eTLD+1)
// before the hosts, dedupes, and keeps at most max names in all.
// Registered domains come first so a message with many hosts under one
// domain still gets its domain asked.
func collect(ips []netip.Addr, hosts []string, max int) names {
	var n names
	addIP := func(ip netip.Addr) {
		// Linear: the client and a message's address literals are few,
		// and past max they are dropped below.
		if !slices.Contains(n.ips, ip) {
			n.ips = append(n.ips, ip)
		}
	}
	for _, ip := range ips {
		if ip = ip.Unmap(); !ip.IsValid() || ip.Zone() != "" {
			// Not an address a list is asked about (as its text, an
			// address with a zone is no domain either).
			if len(n.invalid) < 5 {
				n.invalid = append(n.invalid, sanitize(ip.String(), 80))
			}
			continue
		}
		addIP(ip)
	}
	// Room for a message's few names without an allocation.
	var regsA, fullA [8]string
	regs, full := regsA[:0], fullA[:0]
	for i, h := range hosts {
		// The same name often comes twice (From, DKIM d=, MAIL FROM):
		// normalize it once. Linear: callers pass a few dozen names.
		if i < 64 && slices.Contains(hosts[:i], h) {
			continue
		}
		if mayBeIP(h) {
			if ip, ok := ipLiteral(h); ok {
				addIP(ip)
				continue
			}
		}
		d, err := NormalizeDomain(h)
		if err != nil {
			if len(n.invalid) < 5 {
				n.invalid = append(n.invalid, sanitize(h, 80))
			}
			continue
		}
		// A host that is itself a public suffix (co.uk) has no registered
		// domain: it is asked as it is.
		if reg, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
			regs = append(regs, reg)
		}
		full = append(full, d)
	}
	// Deduplicated by a loop over those kept, not a map each message;
	// past 32 of them (a message full of hosts), by a map.
	var seen map[string]bool
	add := func(d string) {
		if seen != nil {
			if seen[d] {
				return
			}
			seen[d] = true
		} else if slices.Contains(n.domains, d) {
			return
		}
		n.domains = append(n.domains, d)
		if len(n.domains) == 32 && seen == nil {
			seen = make(map[string]bool, 64)
			for _, d := range n.domains {
				seen[d] = true
			}
		}
	}
	for _, d := range regs {
		add(d)
	}
	for _, d := range full {
		add(d)
	}
	if total := len(n.ips) + len(n.domains); total > max {
		n.dropped = total - max
		if len(n.ips) > max {
			n.ips = n.ips[:max]
		}
		n.domains = n.domains[:max-len(n.ips)]
	}
	return n
}

// sanitize makes text from DNS (a TXT reason) or from a message safe to
// log and to put in an SMTP reply: printable ASCII only (others become
// '?'), runs of white space one space, at most max octets.
func sanitize(s string, max int) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
			continue
		case c < 0x20 || c >= 0x7f:
			c = '?'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		if b.Len() < max {
			b.WriteByte(c)
		}
	}
	return b.String()
}
