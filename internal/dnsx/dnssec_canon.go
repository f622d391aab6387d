package dnsx

import (
	"bytes"

	"github.com/miekg/dns"
)

// CanonicalCompare orders two domain names as RFC 4034 §6.1 says: label by
// label from the rightmost, each label compared as lower-cased octets, a
// name sorting before the names below it. It returns -1, 0 or +1. Names
// that do not pack (invalid) compare by their text.
func CanonicalCompare(a, b string) int {
	la, oka := wireLabels(a)
	lb, okb := wireLabels(b)
	if !oka || !okb {
		return bytes.Compare([]byte(a), []byte(b))
	}
	for i, j := len(la)-1, len(lb)-1; ; i, j = i-1, j-1 {
		switch {
		case i < 0 && j < 0:
			return 0
		case i < 0:
			return -1
		case j < 0:
			return 1
		}
		if c := bytes.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
}

// wireLabels returns the labels of name as raw, lower-cased octets (the
// presentation escapes undone), leftmost first.
func wireLabels(name string) ([][]byte, bool) {
	var buf [256]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), buf[:], 0, nil, false)
	if err != nil {
		return nil, false
	}
	var out [][]byte
	for off := 0; off < n; {
		l := int(buf[off])
		if l == 0 {
			break
		}
		if off+1+l > n {
			return nil, false
		}
		lab := bytes.ToLower(buf[off+1 : off+1+l])
		out = append(out, lab)
		off += 1 + l
	}
	return out, true
}

// nsecCovers reports whether an NSEC record whose owner is owner and next
// name is next proves that name does not exist: owner < name < next in
// canonical order, the last NSEC of a zone (next is the apex) covering
// everything after its owner (RFC 4034 §4.1.1, RFC 4035 §5.4).
func nsecCovers(owner, next, name string) bool {
	if CanonicalCompare(owner, name) >= 0 {
		return false
	}
	if CanonicalCompare(owner, next) >= 0 { // last in the chain: wraps to the apex
		return dns.IsSubDomain(next, name)
	}
	return CanonicalCompare(name, next) < 0
}
