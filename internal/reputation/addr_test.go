package reputation

import (
	"net/mail"
	"strings"
	"testing"
)

// TestAngleAddr: the tolerant reading takes the one angle-bracketed
// address at the end whatever the name, and leaves the rest to the
// parser.
func TestAngleAddr(t *testing.T) {
	for _, c := range []struct {
		from, want string
		ok         bool
	}{
		{"Alice <alice@friend.example>", "alice@friend.example", true},
		{"<alice@friend.example>", "alice@friend.example", true},
		{" Alice Smith <a.smith+x@friend.example> ", "a.smith+x@friend.example", true},
		{"=?ISO-2022-JP?B?GyRCOjRGIzJWO1IbKEI=?= <hanako@friend.example>", "hanako@friend.example", true},
		{"Microsoft account team ,_<no-reply@friend.example>", "no-reply@friend.example", true},
		{"phishing@pot <phishing@pot>", "phishing@pot", true},
		{": Casino-Deal <info@friend.example>", "info@friend.example", true},
		{`"Smith, Alice" <alice@friend.example>`, "", false}, // quotes: the parser
		{`"<bob@x.example>" <alice@friend.example>`, "", false},
		{"alice@friend.example", "", false},
		{"Alice <alice@friend.example> (work)", "", false},
		{"Alice <a@b@friend.example>", "", false},
		{"Alice <alice@>", "", false},
		{"Alice <@friend.example>", "", false},
		{"Alice <alice @friend.example>", "", false},
		{"a <b@x.example>, c <d@y.example>", "", false},
	} {
		got, ok := angleAddr(c.from)
		if got != c.want || ok != c.ok {
			t.Errorf("angleAddr(%q) = %q %v, want %q %v", c.from, got, ok, c.want, c.ok)
		}
	}
}

// FuzzAngleAddr: what net/mail reads as one mailbox the tolerant
// reading, when it takes it, reads as the same address.
func FuzzAngleAddr(f *testing.F) {
	for _, s := range []string{"Alice <alice@friend.example>", `"A" <a@b.example>`, "a@b", "<a@b.example> x", "=?utf-8?q?A?= <a@b.example>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, from string) {
		got, ok := angleAddr(from)
		if !ok {
			return
		}
		a, err := mail.ParseAddress(from)
		if err == nil && !strings.EqualFold(a.Address, got) {
			t.Errorf("%q: angleAddr %q, net/mail %q", from, got, a.Address)
		}
	})
}
