package dkim

import (
	"strings"
	"testing"
)

// selfCanonicalReference is selfCanonical one octet at a time.
func selfCanonicalReference(p string, relaxed bool) int {
	end := 0
	for _, line := range strings.SplitAfter(p, "\r\n") {
		if !strings.HasSuffix(line, "\r\n") || line == "\r\n" {
			return end
		}
		text := line[:len(line)-2]
		if strings.ContainsAny(text, "\r\n") {
			return end
		}
		if relaxed && (strings.Contains(text, "\t") || strings.Contains(text, "  ") || strings.HasSuffix(text, " ")) {
			return end
		}
		end += len(line)
	}
	return end
}

// TestSelfCanonical puts each kind of octet that ends the fast path at
// every offset of a word, so the eight-octet windows and their overlap are
// all crossed.
func TestSelfCanonical(t *testing.T) {
	plain := "The quick brown fox jumps over the lazy dog.\r\nA second line, plain too.\r\n"
	breakers := []string{"  ", " \r\n", "\t", "\r", "\n", "\r\n\r\n", " \t", "\x00", "\x1f", "é ", " x"}
	for _, br := range breakers {
		for off := 0; off <= len(plain); off++ {
			p := plain[:off] + br + plain[off:] + plain
			for _, relaxed := range []bool{false, true} {
				got, want := selfCanonical([]byte(p), relaxed), selfCanonicalReference(p, relaxed)
				if got != want {
					t.Errorf("relaxed=%v %q: got %d, want %d", relaxed, p, got, want)
				}
			}
		}
	}
}
