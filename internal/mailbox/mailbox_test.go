package mailbox

import (
	"net/mail"
	"strings"
	"testing"
)

// simpleCases are the forms Simple reads (ok) and values near them it
// leaves to net/mail, gathered from the three shortcuts it replaced
// (verdict's, phish's, reputation's).
var simpleCases = []struct {
	v, name, addr string
	ok            bool
}{
	{"alice@example.test", "", "alice@example.test", true},
	{"first.last@sub.example.test", "", "first.last@sub.example.test", true},
	{"<alice@example.test>", "", "alice@example.test", true},
	{"Alice <alice@example.test>", "Alice", "alice@example.test", true},
	{"Alice<alice@example.test>", "Alice", "alice@example.test", true},
	{" Alice Smith <a.smith+x@friend.example> ", "Alice Smith", "a.smith+x@friend.example", true},
	{"Alice Smith <Alice.Smith+tag@Mail.Example.TEST>", "Alice Smith", "Alice.Smith+tag@Mail.Example.TEST", true},
	{"Sender  Name <a.b+c@mail.example.test>", "Sender Name", "a.b+c@mail.example.test", true},
	{"Sender\tName\t<a@b.test>", "Sender Name", "a@b.test", true},
	{"Sender <a@b.test>  ", "Sender", "a@b.test", true},
	{"O'Brien-Smith_x <ob@example.test>", "O'Brien-Smith_x", "ob@example.test", true},
	{"John Q. Public <jqp@example.test>", "John Q. Public", "jqp@example.test", true},
	{". Dr.Who. <who@example.test>", ". Dr.Who.", "who@example.test", true},
	{"AT&T Billing <bill@att.example>", "AT&T Billing", "bill@att.example", true},
	{"Sender.Name <a@b.test>", "Sender.Name", "a@b.test", true},
	{"Sender <a@-c.test>", "Sender", "a@-c.test", true},
	{"123 <a@b.test>", "123", "a@b.test", true},
	{"Sender <a@b>", "Sender", "a@b", true},
	{"Sender <a_b@c_d.test>", "Sender", "a_b@c_d.test", true},
	{"Sender <a-@b-.test>", "Sender", "a-@b-.test", true},
	{"S <a@1.2.3.4>", "S", "a@1.2.3.4", true},
	{"bounce+x=y@example.test", "", "bounce+x=y@example.test", true},
	{`"Alice" <alice@example.test>`, "", "", false},
	{`"Smith, Alice" <alice@friend.example>`, "", "", false},
	{`"<bob@x.example>" <alice@friend.example>`, "", "", false},
	{"Alice (comment) <alice@example.test>", "", "", false},
	{"Alice <alice@example.test> (work)", "", "", false},
	{"=?utf-8?q?Al=C3=AFce?= <alice@example.test>", "", "", false},
	{"Doe, John <jd@example.test>", "", "", false},
	{"a@one.test, b@two.test", "", "", false},
	{"undisclosed-recipients:;", "", "", false},
	{"Team: a@b.test;", "", "", false},
	{"Alice <alice@example.test> trailing", "", "", false},
	{"Sender <a@b.test>x", "", "", false},
	{"alice@example.test>", "", "", false},
	{"Sender <a@b.test", "", "", false},
	{"Alice <<alice@example.test>", "", "", false},
	{"Alice <a@b@friend.example>", "", "", false},
	{"Alice <alice@@example.test>", "", "", false},
	{"Alice <alice @friend.example>", "", "", false},
	{"Alice <alice@example..test>", "", "", false},
	{"Sender <a..b@c.test>", "", "", false},
	{"Alice <.alice@example.test>", "", "", false},
	{"Alice <alice@example.test.>", "", "", false},
	{"Alice <alice@>", "", "", false},
	{"Alice <@example.test>", "", "", false},
	{"Alice <alice@[192.0.2.1]>", "", "", false},
	{"Ålice <alice@example.test>", "", "", false},
	{"alice@bücher.test", "", "", false},
	{"Folded\r\n <f@example.test>", "", "", false},
	{"a", "", "", false},
	{"", "", "", false},
	{"<>", "", "", false},
}

// TestSimple: Simple reads the plain forms as the table says, and
// whatever it reads net/mail reads as the same one mailbox.
func TestSimple(t *testing.T) {
	for _, tc := range simpleCases {
		name, addr, ok := Simple(tc.v)
		if name != tc.name || addr != tc.addr || ok != tc.ok {
			t.Errorf("Simple(%q) = %q %q %v, want %q %q %v", tc.v, name, addr, ok, tc.name, tc.addr, tc.ok)
		}
		checkNetMail(t, tc.v)
	}
}

// TestAtext: the bits of atext are RFC 5322 §3.2.3's atext, those of
// a name's words atext and "." without "=".
func TestAtext(t *testing.T) {
	const specials = "!#$%&'*+-/=?^_`{|}~"
	for i := range 256 {
		c := byte(i)
		want := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(specials, c) >= 0
		if got := in(c, atextLo, atextHi); got != want {
			t.Errorf("atext %q: %v, want %v", c, got, want)
		}
		if want := (want || c == '.') && c != '='; in(c, wordLo, wordHi) != want {
			t.Errorf("name word %q: %v, want %v", c, !want, want)
		}
	}
}

// FuzzSimple: on any value Simple reads, net/mail reads the same one
// mailbox.
func FuzzSimple(f *testing.F) {
	for _, tc := range simpleCases {
		f.Add(tc.v)
	}
	f.Fuzz(checkNetMail)
}

// checkNetMail fails t when Simple reads v otherwise than net/mail's
// ParseAddress and ParseAddressList.
func checkNetMail(t *testing.T, v string) {
	name, addr, ok := Simple(v)
	if !ok {
		return
	}
	if a, err := mail.ParseAddress(v); err != nil || a.Name != name || a.Address != addr {
		t.Errorf("%q: Simple %q %q, net/mail's ParseAddress %v %v", v, name, addr, a, err)
	}
	if l, err := mail.ParseAddressList(v); err != nil || len(l) != 1 || l[0].Name != name || l[0].Address != addr {
		t.Errorf("%q: Simple %q %q, net/mail's ParseAddressList %v %v", v, name, addr, l, err)
	}
}

// BenchmarkSimple: the shortcut against net/mail's ParseAddress on the
// From of most mail.
func BenchmarkSimple(b *testing.B) {
	const v = "Alice Smith <alice.smith@example.test>"
	b.Run("simple", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := Simple(v); !ok {
				b.Fatal("not simple")
			}
		}
	})
	b.Run("net_mail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mail.ParseAddress(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAngle: the tolerant reading takes the one angle-bracketed
// address at the end whatever the name, and leaves the rest to the
// parser.
func TestAngle(t *testing.T) {
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
		got, ok := Angle(c.from)
		if got != c.want || ok != c.ok {
			t.Errorf("Angle(%q) = %q %v, want %q %v", c.from, got, ok, c.want, c.ok)
		}
	}
}

// FuzzAngle: what net/mail reads as one mailbox the tolerant
// reading, when it takes it, reads as the same address.
func FuzzAngle(f *testing.F) {
	for _, s := range []string{"Alice <alice@friend.example>", `"A" <a@b.example>`, "a@b", "<a@b.example> x", "=?utf-8?q?A?= <a@b.example>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, from string) {
		got, ok := Angle(from)
		if !ok {
			return
		}
		a, err := mail.ParseAddress(from)
		if err == nil && !strings.EqualFold(a.Address, got) {
			t.Errorf("%q: Angle %q, net/mail %q", from, got, a.Address)
		}
	})
}
