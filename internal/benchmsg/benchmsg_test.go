package benchmsg

import (
	"strings"
	"testing"
)

// TestBody: the body is at least the size asked, less than a line more,
// its lines the link (when asked) and then the one sentence.
func TestBody(t *testing.T) {
	for _, tc := range []struct {
		size int
		link bool
	}{
		{0, false}, {0, true}, {2 << 10, true}, {2 << 10, false}, {1 << 20, true},
	} {
		b := Body(tc.size, tc.link)
		if len(b) < tc.size || len(b) >= tc.size+len(Line)+len(Link) {
			t.Errorf("size %d link %v: %d octets", tc.size, tc.link, len(b))
		}
		rest, linked := strings.CutPrefix(b, Link)
		if linked != tc.link {
			t.Errorf("size %d link %v: starts with the link: %v", tc.size, tc.link, linked)
		}
		if strings.ReplaceAll(rest, Line, "") != "" {
			t.Errorf("size %d link %v: other text than the sentence", tc.size, tc.link)
		}
	}
}
