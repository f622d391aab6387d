package phish

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize prepares text for matching, as every rule that compares
// names must see it: invisible and format characters removed (zero-width
// spaces and joiners, bidi controls, variation selectors, tag
// characters, soft hyphens, Hangul fillers: what Unicode calls default
// ignorable), then NFKC (fullwidth and styled letters become plain ones)
// and lower case. "Pay\u200bPal" and "ＰａｙＰａｌ" both give "paypal".
// Confusable letters (Cyrillic а for Latin a) are left to skeleton.
func Normalize(s string) string {
	if isPrintableASCII(s) {
		return strings.ToLower(s) // most text: nothing to remove or compose
	}
	if hasInvisible(s) {
		s = strings.Map(func(r rune) rune {
			if invisible(r) {
				return -1
			}
			return r
		}, s)
	}
	s = norm.NFKC.String(s)
	// NFKC can compose new format characters out of none, but not
	// invisible ones out of visible: one pass is enough.
	return strings.ToLower(s)
}

// shownOrder puts text under a right-to-left override (U+202E, up to
// U+202C or the end) in the order a reader sees it: "\u202emoc.lapyap"
// shows as "paypal.com". Brand matching must read what is shown.
func shownOrder(s string) string {
	i := strings.IndexRune(s, '\u202e')
	if i < 0 {
		return s
	}
	rest := s[i+len("\u202e"):]
	end := strings.IndexRune(rest, '\u202c')
	if end < 0 {
		end = len(rest)
	}
	r := []rune(rest[:end])
	slices.Reverse(r)
	return s[:i] + string(r) + shownOrder(rest[min(end+len("\u202c"), len(rest)):])
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || c < ' ' && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

func hasInvisible(s string) bool {
	for _, r := range s {
		if invisible(r) {
			return true
		}
	}
	return false
}

// invisible reports a default-ignorable code point (Unicode's
// DerivedCoreProperties: Cf, variation selectors and
// Other_Default_Ignorable_Code_Point) or a C0/C1 control other than
// white space: nothing a reader sees, so nothing a name may hide behind.
func invisible(r rune) bool {
	if r < utf8.RuneSelf {
		return r < ' ' && r != '\t' && r != '\n' && r != '\r' || r == 0x7f
	}
	return r >= 0x80 && r < 0xa0 ||
		unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}
