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
// TestSimple and FuzzSimple hold it to net/mail. Angle is the tolerant
// reading a mail client makes of a From net/mail refuses (an
// undecodable name, an unquoted comma): the one address in angle
// brackets at its end.
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
	v = trimWSP(v)
	if v == "" || v[len(v)-1] != '>' {
		if !addrSpec(v) {
			return "", "", false
		}
		return "", v, true
	}
	// The name first: what is not plain (quotes, encoded words) most
	// often shows in its first bytes.
	name, lt, ok := phrase(v)
	if !ok || !addrSpec(v[lt+1:len(v)-1]) {
		return "", "", false
	}
	return name, v[lt+1 : len(v)-1], true
}

// addrSpec reports whether s is local@domain, both dot-atoms: runs of
// ASCII atext joined by single dots (RFC 5322 §3.2.3).
func addrSpec(s string) bool {
	at := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case in(c, atextLo, atextHi):
		case c == '.' && i > 0 && i < len(s)-1 && s[i-1] != '.' && s[i-1] != '@' && s[i+1] != '@':
		case c == '@' && at < 0 && i > 0 && i < len(s)-1:
			at = i
		default:
			return false
		}
	}
	return at > 0
}

// phrase reads the display name that starts v (no leading white space)
// up to the first "<", at lt: words of atext, dots but no "=", between
// spaces and tabs, as net/mail reads one (it takes a dot-atom for an
// atom, leading and trailing dots too, and joins the words with one
// space). ok is false for any other byte, or no "<".
func phrase(v string) (name string, lt int, ok bool) {
	single := true // the words are apart by one space each
	for lt = 0; lt < len(v); lt++ {
		if c := v[lt]; !in(c, wordLo, wordHi) {
			switch {
			case c == '<':
				name = trimWSP(v[:lt])
				if !single {
					name = strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
				}
				return name, lt, true
			case c == ' ' || c == '\t':
				// A tab or a second space: net/mail makes one
				// space of it (none after the last word).
				single = single && c == ' ' && lt > 0 && v[lt-1] != ' '
			default:
				return "", 0, false
			}
		}
	}
	return "", 0, false
}

// trimWSP is s without the spaces and tabs at its start and end.
func trimWSP(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Sets of ASCII bytes as bits, lo for 0-63, hi for 64-127: atext is RFC
// 5322 §3.2.3's (letters, digits and !#$%&'*+-/=?^_`{|}~; TestAtext
// holds the bits to that), a display name's words atext and dots
// without "=".
const (
	atextLo = 0xa3ffacfa00000000
	atextHi = 0x7fffffffc7fffffe
	wordLo  = (atextLo | 1<<'.') &^ (1 << '=')
	wordHi  = atextHi
)

// in reports whether c is in the set lo, hi.
func in(c byte, lo, hi uint64) bool {
	if c >= 64 {
		lo = hi
	}
	return c < 128 && lo>>(c&63)&1 != 0
}

// Angle reads a From that ends in its one angle-bracketed address,
// "Name <local@domain>", whatever the name (no quotes or backslashes):
// what net/mail reads as one mailbox it reads as the same address
// (FuzzAngle), and it reads too the malformed names net/mail
// rejects, as phishing writes them ("Brand ,_<a@b.example>", unquoted
// commas and colons, raw 8-bit text), so that their sender keeps an
// identity where a mail client shows one. Encoded words in any charset pass as well, where
// net/mail knows three.
func Angle(v string) (string, bool) {
	lt, gt := strings.IndexByte(v, '<'), strings.IndexByte(v, '>')
	if lt < 0 || gt < lt || strings.Count(v, "<") != 1 || strings.Count(v, ">") != 1 || strings.TrimSpace(v[gt+1:]) != "" {
		return "", false
	}
	addr := v[lt+1 : gt]
	at := strings.IndexByte(addr, '@')
	if at <= 0 || at != strings.LastIndexByte(addr, '@') || at == len(addr)-1 ||
		strings.ContainsAny(addr, " \t\r\n\"(),:;[]\\") || strings.ContainsAny(v[:lt], "\"\\") {
		return "", false
	}
	return addr, true
}
