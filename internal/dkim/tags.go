package dkim

import (
	"fmt"
	"strings"
)

// parseTags parses a tag-list (RFC 6376 §3.2): tag=value pairs separated
// by ";", white space allowed around tags, values and the "=". Tag names
// are case-sensitive; a tag given twice is an error.
func parseTags(s string) (map[string]string, error) {
	tags := make(map[string]string, 12)
	// Folding is dropped from the whole list at once: one copy at most,
	// where a copy a tag cost a DKIM-Signature of a dozen tags 12.
	rest := trimFWS(s)
	for more := true; more; {
		var part string
		part, rest, more = strings.Cut(rest, ";")
		part = strings.TrimSpace(part)
		if part == "" {
			if !more {
				continue // one trailing ";" is allowed
			}
			return nil, fmt.Errorf("empty tag between \";\"s")
		}
		name, value, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("tag %q has no value", part)
		}
		// tag-name = ALPHA *ALNUMPUNC, ALNUMPUNC = ALPHA / DIGIT / "_"
		for i := 0; i < len(name); i++ {
			c := name[i]
			alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '_')) {
				return nil, fmt.Errorf("invalid tag name %q", name)
			}
		}
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("tag %q appears twice", name)
		}
		tags[name] = strings.TrimSpace(value)
	}
	return tags, nil
}

// trimFWS turns folding (CRLF before white space) into plain white space.
func trimFWS(s string) string { return dropSpace(s, false) }

// stripWSP removes all white space, for base64 values and h= lists.
func stripWSP(s string) string { return dropSpace(s, true) }

// dropSpace is s without CR and LF, and without SP and HTAB too if wsp,
// byte by byte: one copy, and none when s has none of them. (strings.Map
// went rune by rune and allocated twice for a folded b= of 344 octets.)
// Bytes of other characters are kept as they are: an ASCII byte is
// never part of one.
func dropSpace(s string, wsp bool) string {
	drop := func(c byte) bool { return c == '\r' || c == '\n' || wsp && (c == ' ' || c == '\t') }
	i := 0
	for i < len(s) && !drop(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, i, len(s)-1)
	copy(b, s)
	for ; i < len(s); i++ {
		if c := s[i]; !drop(c) {
			b = append(b, c)
		}
	}
	return string(b)
}
