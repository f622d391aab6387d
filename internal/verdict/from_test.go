package verdict

import (
	"strings"
	"testing"

	"mailwall/internal/dkim"
)

// TestParseFrom: addresses and domains of every From field, the
// unparseable one by its @domain parts.
func TestParseFrom(t *testing.T) {
	for _, tc := range []struct {
		from        []string
		addrs, doms string
	}{
		{[]string{"Alice <Alice@Example.TEST>"}, "alice@example.test", "example.test"},
		{[]string{"\"Alice, A.\" <alice@example.test>"}, "alice@example.test", "example.test"},
		{[]string{"a@one.test, B <b@two.test>"}, "a@one.test,b@two.test", "one.test,two.test"},
		{[]string{"a@one.test", "b@two.test"}, "a@one.test,b@two.test", "one.test,two.test"},
		{[]string{"broken <<a@Evil.test"}, "@evil.test", "evil.test"},
		{[]string{"x@bücher.test"}, "x@bücher.test", "xn--bcher-kva.test"},
		{[]string{"Folded\r\n <f@example.test>"}, "f@example.test", "example.test"},
		{[]string{"undisclosed"}, "", ""},
		// A name net/mail cannot read, one address: the address.
		{[]string{"=?ISO-2022-JP?B?GyRCOjRGIzJWO1IbKEI=?= <Hanako@Friend.example>"}, "hanako@friend.example", "friend.example"},
		{[]string{"Microsoft account team ,_<no-reply@ms.example>"}, "no-reply@ms.example", "ms.example"},
		// Two domains read: both stay, no address is picked.
		{[]string{"support@brand.example <x@evil.test>"}, "@brand.example,@evil.test", "brand.example,evil.test"},
	} {
		var fields []dkim.Field
		for _, f := range tc.from {
			fields = append(fields, dkim.NewField("From", " "+f))
		}
		fields = append(fields, dkim.NewField("Sender", " s@sender.test"))
		addrs, doms := parseFrom(fields)
		if got := strings.Join(addrs, ","); got != tc.addrs {
			t.Errorf("%q: addresses %q, want %q", tc.from, got, tc.addrs)
		}
		if got := strings.Join(doms, ","); got != tc.doms {
			t.Errorf("%q: domains %q, want %q", tc.from, got, tc.doms)
		}
	}
}
