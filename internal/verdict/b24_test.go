package verdict

import (
	"strings"
	"testing"
)

// TestB24OneLine: OneLine is strings.Join(strings.Fields(s), " "), for
// folded header values, stray white space and Unicode's spaces.
func TestB24OneLine(t *testing.T) {
	for _, s := range []string{
		"", " ", "a", "a b", " a", "a ", "a  b", "a\tb", " mx.test;\r\n\tspf=pass\r\n\tdkim=pass", "a\r\nb", "\v\f", "x \u00a0y", "x\u2003 y",
		"ünï cödé", "pass (action=accept; stage=content)", "a b ", "  ", "a\x01 b", "\x00a  \x1fb\r\n",
	} {
		if got, want := OneLine(s), strings.Join(strings.Fields(s), " "); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", s, got, want)
		}
	}
}
