// Package mailbox reads the one mailbox most author fields hold without
// net/mail's parser.
//
// Nearly all mail's From is "local@domain", "<local@domain>" or
// "Display Name <local@domain>" in plain ASCII, and net/mail's parser,
// which handles the whole RFC 5322 grammar (quoted strings, comments,
// groups, encoded words, address lists), costs allocations and most of
// the time of reading a From (issue 24). Simple reads those forms alone,
// exactly as net/mail reads them, and says when a value is anything
// else, so that the caller asks net/mail: it is a shortcut, never a
// second parser with its own view of what an address is.
// TestSimple and FuzzSimple hold it to net/mail.
package mailbox

import "strings"

// Simple reads v when it is one mailbox in a plain form (RFC 5322
// §3.4):
//
//	local@domain
//	<local@domain>
//	Display Name <local@domain>
//
// with the local part and domain dot-atoms of ASCII atext (§3.2.3: no
// leading, trailing or double dot) and the display name words of ASCII
// atext and dots without "=" (so no encoded word, RFC 2047), between
// spaces and tabs, as is white space around the whole. name and addr
// are then what net/mail's ParseAddress gives (ParseAddressList as its
// one address, an AddressParser's Parse with any WordDecoder): the name
// with its words joined by single spaces, the address as written. For
// anything else (quoted strings, comments, encoded words, commas,
// groups, domain literals, non-ASCII, line breaks) ok is false and the
// caller parses v with net/mail.
func Simple(v string) (name, addr string, ok bool) {
	v = strings.Trim(v, " \t")
	if !strings.HasSuffix(v, ">") {
		if !addrSpec(v) {
			return "", "", false
		}
		return "", v, true
	}
	lt := strings.IndexByte(v, '<')
	if lt < 0 {
		return "", "", false
	}
	addr = v[lt+1 : len(v)-1]
	if !addrSpec(addr) {
		return "", "", false
	}
	name, ok = phrase(v[:lt])
	if !ok {
		return "", "", false
	}
	return name, addr, true
}

// addrSpec reports whether s is local@domain, both dot-atoms.
func addrSpec(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && dotAtom(s[:at]) && dotAtom(s[at+1:])
}

// dotAtom reports whether s is runs of ASCII atext joined by single
// dots (RFC 5322 §3.2.3's dot-atom-text).
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case atext(c):
		case c == '.' && s[i-1] != '.':
		default:
			return false
		}
	}
	return true
}

// phrase reads a display name that starts v (no leading white space):
// words of atext, dots but no "=", between spaces and tabs, as net/mail
// reads one (it takes a dot-atom for an atom, leading and trailing dots
// too, and joins the words with one space). ok is false for any other
// byte.
func phrase(s string) (name string, ok bool) {
	// joined: s[:end] is the name, its words apart by one space each;
	// gap: the white space since the last word is other than one space.
	end, joined, gap := 0, true, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			gap = gap || c == '\t' || i == 0 || s[i-1] == ' '
		case c == '.' || c != '=' && atext(c):
			joined = joined && !gap
			gap, end = false, i+1
		default:
			return "", false
		}
	}
	if joined {
		return s[:end], true
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' }), " "), true
}

// atext reports RFC 5322 §3.2.3's atext in ASCII: letters, digits and
// !#$%&'*+-/=?^_`{|}~.
func atext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
