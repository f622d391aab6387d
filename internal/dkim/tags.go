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
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(trimFWS(part))
		if part == "" {
			continue // a trailing ";" is allowed
		}
		name, value, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("tag %q has no value", part)
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
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
	return strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(s)
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
