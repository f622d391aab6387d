package phish

import "strings"

// PlainHTTPHost is the host of an http or https link whose host is
// letters, digits, dots and hyphens only, with nothing anywhere that
// url.Parse could refuse (a control octet, a '%'): most links, whose
// url.Parse was a good share of the cost of the rules on links and of
// the DNS blocklists' analyzer. ok is false for the others, for
// url.Parse to read; where ok, the host is url.Parse's Hostname in
// lower case, and the link has no user information
// (TestPlainHTTPHost, FuzzPlainHTTPHost).
func PlainHTTPHost(raw string) (host string, ok bool) {
	var rest string
	switch {
	case len(raw) > 7 && strings.EqualFold(raw[:7], "http://"):
		rest = raw[7:]
	case len(raw) > 8 && strings.EqualFold(raw[:8], "https://"):
		rest = raw[8:]
	default:
		return "", false
	}
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c < 0x20 || c == 0x7f || c == '%' {
			return "", false
		}
		if end == len(rest) {
			switch {
			case c == '/' || c == '?' || c == '#':
				end = i
			case c != '.' && c != '-' && (c < '0' || c > '9') && (c|0x20 < 'a' || c|0x20 > 'z'):
				return "", false // a port, user information, an address literal, ...
			}
		}
	}
	if end == 0 {
		return "", false
	}
	return strings.ToLower(rest[:end]), true
}
