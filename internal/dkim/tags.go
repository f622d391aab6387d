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
	parts := strings.Split(s, ";")
	for i, part := range parts {
		part = strings.TrimSpace(trimFWS(part))
		if part == "" {
			if i == len(parts)-1 {
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
func trimFWS(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Map(dropLineBreak, s)
}

// dropLineBreak is a strings.Map function removing CR and LF.
func dropLineBreak(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}

// stripWSP removes all white space, for base64 values and h= lists.
func stripWSP(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}
