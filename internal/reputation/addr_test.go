package reputation

import (
	"net/mail"
	"strings"
	"testing"
)

// TestSimpleAngleAddr: the fast path reads what net/mail reads, and
// leaves to it what is not plain.
func TestSimpleAngleAddr(t *testing.T) {
	for _, c := range []struct {
		from, want string
		ok         bool
	}{
		{"Alice <alice@friend.example>", "alice@friend.example", true},
		{"<alice@friend.example>", "alice@friend.example", true},
		{" Alice Smith <a.smith+x@friend.example> ", "a.smith+x@friend.example", true},
		{`"Smith, Alice" <alice@friend.example>`, "", false}, // quotes: the parser
		{`"<bob@x.example>" <alice@friend.example>`, "", false},
		{"alice@friend.example", "", false},
		{"Alice <alice@friend.example> (work)", "", false},
		{"Alice <a@b@friend.example>", "", false},
		{"Alice <alice@>", "", false},
		{"Alice <@friend.example>", "", false},
		{"Alice <alice @friend.example>", "", false},
	} {
		got, ok := simpleAngleAddr(c.from)
		if got != c.want || ok != c.ok {
			t.Errorf("simpleAngleAddr(%q) = %q %v, want %q %v", c.from, got, ok, c.want, c.ok)
		}
	}
}

func FuzzSimpleAngleAddr(f *testing.F) {
	for _, s := range []string{"Alice <alice@friend.example>", `"A" <a@b.example>`, "a@b", "<a@b.example> x", "=?utf-8?q?A?= <a@b.example>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, from string) {
		got, ok := simpleAngleAddr(from)
		if !ok {
			return
		}
		a, err := mail.ParseAddress(from)
		if err == nil && !strings.EqualFold(a.Address, got) {
			t.Errorf("%q: fast path %q, net/mail %q", from, got, a.Address)
		}
	})
}
