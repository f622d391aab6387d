package dmarc

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Mailbox is the one address a rua= or ruf= mailto: URI names: decoded,
// checked, its domain in lower-case A-labels. Both the external
// destination check (Host) and the RCPT TO of a report (Address) use it,
// so what is checked is what is sent to.
//
// RFC 6068 §2: "mailto:" to [ "?" hfields ], to being addr-specs with
// %-escapes, separated by commas. The hfields (subject, body, cc, ...)
// are dropped: a report's header is ours to write. The decoded address
// must be one RFC 5321 Mailbox that our relay takes as it is: a
// dot-atom local part (no quoted strings, no "%" or "!" routing) and a
// host name, with nothing else: no "<>", white space, controls, second
// "@", or ESMTP parameters smuggled in with %-escapes.
func (u URI) Mailbox() (string, error) {
	rest, ok := cutPrefixFold(u.URI, "mailto:")
	if !ok {
		return "", fmt.Errorf("dmarc: %q is not a mailto: URI", u.URI)
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	// Only the escapes are decoded: a "+" is itself in a mailto: URI
	// (RFC 6068 §5), and a malformed escape makes the URI unusable.
	addr, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("dmarc: %q: %w", u.URI, err)
	}
	mb, err := CheckMailbox(addr)
	if err != nil {
		return "", fmt.Errorf("dmarc: %q: %w", u.URI, err)
	}
	return mb, nil
}

// CheckMailbox checks that addr is one plain RFC 5321 Mailbox,
// local-part "@" domain, as a report may be sent to, and returns it with
// the domain in lower-case A-labels.
func CheckMailbox(addr string) (string, error) {
	if len(addr) > 254 { // RFC 5321 §4.5.3.1.3: a path of 256 with its "<>"
		return "", errors.New("address too long")
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c <= ' ' || c == 0x7f {
			return "", errors.New("white space or a control character in the address")
		}
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return "", errors.New("no @ in the address")
	}
	if strings.Contains(domain, "@") {
		return "", errors.New("more than one @ in the address")
	}
	if err := checkLocalPart(local); err != nil {
		return "", err
	}
	host, err := checkHost(domain)
	if err != nil {
		return "", err
	}
	return local + "@" + host, nil
}

// checkLocalPart accepts RFC 5321's Dot-string of atext, less "%" and
// "!", which some MTAs still take as source routes to another host.
func checkLocalPart(s string) error {
	if s == "" || len(s) > 64 { // RFC 5321 §4.5.3.1.1
		return fmt.Errorf("local part %q is empty or over 64 octets", s)
	}
	for _, atom := range strings.Split(s, ".") {
		if atom == "" {
			return fmt.Errorf("local part %q has an empty atom", s)
		}
		for i := 0; i < len(atom); i++ {
			c := atom[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("#$&'*+-/=?^_`{|}~", c) >= 0) {
				return fmt.Errorf("local part %q holds %q", s, c)
			}
		}
	}
	return nil
}

// checkHost accepts a host name of two or more LDH labels (U-labels are
// converted), no address literal: a report goes to a domain's MX.
func checkHost(s string) (string, error) {
	if s == "" {
		return "", errors.New("no domain in the address")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("domain %q is not UTF-8", s)
	}
	a, err := idna.Lookup.ToASCII(s)
	if err == nil {
		// The A-labels must stand for a name themselves (a stray
		// escape can make a punycode label that does not).
		_, err = idna.Lookup.ToUnicode(a)
	}
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", s, err)
	}
	a = strings.ToLower(a)
	if len(a) > 253 {
		return "", fmt.Errorf("domain %q is too long", s)
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("domain %q is not a host name under a top-level domain", s)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("domain %q has a bad label %q", s, l)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("domain %q holds %q", s, c)
			}
		}
	}
	return a, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
