package classify

import (
	"net/mail"
	"strings"
	"testing"
)

// parseAddressAgrees fails t when parseAddress and mail.ParseAddress
// differ on v.
func parseAddressAgrees(t *testing.T, v string) {
	t.Helper()
	got, err := parseAddress(v)
	want, werr := mail.ParseAddress(v)
	switch {
	case (err == nil) != (werr == nil):
		t.Errorf("parseAddress(%q): error %v, mail.ParseAddress's %v", v, err, werr)
	case err == nil && got != *want:
		t.Errorf("parseAddress(%q) = %q <%s>, mail.ParseAddress's %q <%s>", v, got.Name, got.Address, want.Name, want.Address)
	}
}

// TestParseAddress: parseAddress answers as mail.ParseAddress does, on
// the shapes it reads itself and on their near misses.
func TestParseAddress(t *testing.T) {
	for _, v := range []string{
		"Sender <sender@example.test>", "sender@example.test", "Jane Q Public <jane.q-public_1+tag@mail.example.test>",
		"Microsoft account team ,_<no-reply@x.test>", "<sender@example.test>", " <sender@example.test>", "Sender  <a@b>",
		"Sender <a@b> ", " Sender <a@b>", "Sender<a@b>", "Two  Spaces <a@b>", "Sender <a@b>>", "Sender <<a@b>",
		"Sender <a..b@c>", "Sender <.a@c>", "Sender <a.@c>", "Sender <a@.c>", "Sender <a@c.>", "Sender <a@b@c>",
		"Sender <@c>", "Sender <a@>", "Sender <a@[192.0.2.1]>", "a@[192.0.2.1]", "a@b (comment)", "\"Q\" <a@b>",
		"=?UTF-8?B?5qW95aSp?= <info@rakuten-card.example>", "S\u00e9nder <a@b>", "a@b, c@d", "Group: a@b;", "",
		"a", "@", "a@b.c.d", "a+b@c", "a_b@c-d.e", "Dr. Who <who@tardis.test>", "Who? <a@b>", "a\t<b@c>",
	} {
		parseAddressAgrees(t, v)
	}
	// The shapes read without mail.ParseAddress: no allocation.
	for _, v := range []string{"Sender <sender@example.test>", "sender@example.test", "A B C <a.b+c@d-e.f>"} {
		if n := testing.AllocsPerRun(10, func() { parseAddress(v) }); n != 0 {
			t.Errorf("parseAddress(%q): %v allocations, not read by parseAddress itself", v, n)
		}
	}
	// The corpus's From fields.
	n := 0
	eachCorpusMessage(t, func(i, total int, l Labelled) bool { return i%5 == 0 }, func(l Labelled, m *Message) {
		for _, f := range m.Fields {
			if strings.EqualFold(f.Name, "From") {
				parseAddressAgrees(t, decodeWords(strings.TrimSpace(f.Value())))
				n++
			}
		}
	})
	t.Logf("%d corpus From fields", n)
}

// FuzzParseAddress: parseAddress answers as mail.ParseAddress does.
func FuzzParseAddress(f *testing.F) {
	f.Add("Sender <sender@example.test>")
	f.Add("a.b@c")
	f.Add("A  B <a..b@c>")
	f.Fuzz(parseAddressAgrees)
}
