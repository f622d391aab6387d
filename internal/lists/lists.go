// Package lists is the site's allow and block lists: entries by client
// IP or network, by sender address or domain (the envelope MAIL FROM and
// the header From), and by recipient, matched across every check.
//
// An allow entry by sender address or domain applies only to an identity
// that was authenticated: a From domain needs DMARC pass (or, without a
// DMARC record, an aligned DKIM or SPF pass), an envelope sender needs SPF
// pass. Anyone can write a From or MAIL FROM, so an allow entry on an
// unauthenticated identity would let in every spoof of the partner it
// names. IP and recipient entries need nothing: the client address is
// not spoofable over TCP, and a recipient is our own user asking for
// everything (postmaster@, abuse@).
//
// Block entries need no authentication, as Postfix's check_sender_access
// REJECT, rspamd's multimap and Stalwart's blocked domains match the
// claimed identity: a message claiming a blocked sender is either from
// that sender or a forgery of it, and the admin wants neither. Refusing
// it can only keep mail out, never let a spoof in. A block entry wins
// over any allow entry but a recipient's: postmaster@ gets even a
// blocked sender's mail (RFC 5321 §4.5.1).
package lists

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// List is which list an entry is on.
type List string

// The two lists.
const (
	Allow List = "allow"
	Block List = "block"
)

// Kind is what an entry matches.
type Kind string

// The kinds of entries.
const (
	IP     Kind = "ip"     // client address or network (CIDR)
	Sender Kind = "sender" // address, in MAIL FROM or the header From
	Domain Kind = "domain" // domain and its subdomains, in MAIL FROM or From
	Rcpt   Kind = "rcpt"   // recipient address
)

// Entry is one line of a list.
type Entry struct {
	ID      int64     `json:"id,omitempty"`
	List    List      `json:"list"`
	Kind    Kind      `json:"kind"`
	Value   string    `json:"value"`
	Note    string    `json:"note,omitempty"`
	Created time.Time `json:"created"`
	// Expires is when the entry stops applying; zero: never.
	Expires time.Time `json:"expires,omitzero"`
}

// Expired reports whether e no longer applies at now.
func (e Entry) Expired(now time.Time) bool { return !e.Expires.IsZero() && !now.Before(e.Expires) }

// ParseList reads "allow" or "block".
func ParseList(s string) (List, error) {
	switch l := List(strings.ToLower(s)); l {
	case Allow, Block:
		return l, nil
	}
	return "", fmt.Errorf("lists: %q is not allow or block", s)
}

// Normalize checks value for kind and returns it in the form stored and
// matched: a network in canonical CIDR form (a bare address as /32 or
// /128), addresses and domains in lower case, domains without a
// trailing dot.
func Normalize(kind Kind, value string) (string, error) {
	v := strings.TrimSpace(value)
	switch kind {
	case IP:
		if p, err := netip.ParsePrefix(v); err == nil {
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			return p.Masked().String(), nil
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return "", fmt.Errorf("lists: %q is not an IP address or CIDR network", value)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()).String(), nil
	case Sender, Rcpt:
		v = strings.ToLower(strings.Trim(v, "<>"))
		local, dom, ok := strings.Cut(v, "@")
		if !ok || local == "" || !validDomain(dom) || strings.ContainsAny(v, " \t\r\n,;") {
			return "", fmt.Errorf("lists: %q is not an address (local@domain)", value)
		}
		return v, nil
	case Domain:
		v = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(v), "@"), ".")
		v = strings.TrimPrefix(v, ".") // ".example.com": subdomains are matched anyway
		if !validDomain(v) {
			return "", fmt.Errorf("lists: %q is not a domain", value)
		}
		return v, nil
	}
	return "", fmt.Errorf("lists: %q is not ip, sender, domain or rcpt", kind)
}

func validDomain(d string) bool {
	if d == "" || len(d) > 255 || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return false
	}
	for _, r := range d {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("@,;<>()[]\\\"", r) {
			return false
		}
	}
	return true
}
