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

// TestSelfCanonical puts each kind of octet that ends the fast paths at
// every offset of text long enough for several 32-octet vector steps, so
// the steps, the eight-octet words and their overlaps are all crossed.
// Both scans are checked against the reference: the vector one (where
// this CPU has it) with the word scan after it, and the word scan alone.
func TestSelfCanonical(t *testing.T) {
	plain := "The quick brown fox jumps over the lazy dog.\r\nA second line, plain too.\r\nx\r\nAnd a third, a little longer than the first one was.\r\n"
	breakers := []string{"  ", " \r\n", "\t", "\r", "\n", "\r\n\r\n", " \t", "\x00", "\x1f", "é ", " x", "\r\r\n", "\n\r"}
	for _, br := range breakers {
		for off := 0; off <= len(plain); off++ {
			p := plain[:off] + br + plain[off:] + plain
			for _, relaxed := range []bool{false, true} {
				want := selfCanonicalReference(p, relaxed)
				if got := selfCanonical([]byte(p), relaxed); got != want {
					t.Errorf("relaxed=%v %q: got %d, want %d", relaxed, p, got, want)
				}
				if got := selfCanonicalWords([]byte(p), relaxed); got != want {
					t.Errorf("word scan, relaxed=%v %q: got %d, want %d", relaxed, p, got, want)
				}
				if wideScan && p[0] != '\r' && p[0] != '\n' {
					// The vector scan may stop early, but only at a line
					// end and never past the reference's.
					if end := scanLinesAVX2([]byte(p), relaxed); end > want || end > 0 && p[end-1] != '\n' {
						t.Errorf("vector scan, relaxed=%v %q: stopped at %d, reference %d", relaxed, p, end, want)
					}
				}
			}
		}
	}
}
