package greylist

import (
	"strings"
	"testing"
)

// FuzzNormalizeSender: any sender (Postfix passes what the client wrote)
// normalizes without panic, to a fixed point, keeping the domain.
func FuzzNormalizeSender(f *testing.F) {
	for _, s := range []string{"alice@example.test", "prvs=1234abcdef=alice@example.test", "prvs=alice=1234abcdef@x.test",
		"bounce-123-456@lists.example.test", "a+b+c@d", "", "@", "prvs==@", "SRS0=HHH=TT=orig.test=alice@fwd.test", "1\x002@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeSender(s)
		if again := NormalizeSender(n); again != n {
			t.Errorf("not a fixed point: %q -> %q -> %q", s, n, again)
		}
		if _, d, ok := strings.Cut(strings.ToLower(s), "@"); ok {
			if _, nd, _ := strings.Cut(n, "@"); nd != d {
				t.Errorf("%q: domain %q became %q", s, d, nd)
			}
		}
	})
}
