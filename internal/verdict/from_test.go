package verdict

import (
	"net/mail"
	"slices"
	"strings"
	"testing"

	"mailwall/internal/dkim"
)

// simpleFroms are From values the fast path reads (want true) or leaves
// to net/mail (false).
var simpleFroms = []struct {
	v    string
	want bool
}{
	{"alice@example.test", true},
	{"Alice <alice@example.test>", true},
	{"Alice Smith <Alice.Smith+tag@Mail.Example.TEST>", true},
	{"<alice@example.test>", true},
	{"O'Brien-Smith_x <ob@example.test>", true},
	{"Alice<alice@example.test>", true},
	{"first.last@sub.example.test", true},
	{"\"Alice\" <alice@example.test>", false},
	{"Alice (comment) <alice@example.test>", false},
	{"John Q. Public <jqp@example.test>", false},
	{"=?utf-8?q?Al=C3=AFce?= <alice@example.test>", false},
	{"Doe, John <jd@example.test>", false},
	{"a@one.test, b@two.test", false},
	{"Alice <alice@example.test> trailing", false},
	{"alice@example.test>", false},
	{"Alice <alice@@example.test>", false},
	{"Alice <alice@example..test>", false},
	{"Alice <.alice@example.test>", false},
	{"Alice <alice@example.test.>", false},
	{"Alice <alice@>", false},
	{"Alice <@example.test>", false},
	{"Alice <alice@[192.0.2.1]>", false},
	{"Ålice <alice@example.test>", false},
	{"alice@bücher.test", false},
	{"undisclosed-recipients:;", false},
	{"Alice\t<alice@example.test>", false},
	{"Alice <<alice@example.test>", false},
	{"", false},
	{"<>", false},
}

// TestSimpleMailbox: the fast path reads the common forms, and whatever
// it reads net/mail reads as the one same address.
func TestSimpleMailbox(t *testing.T) {
	for _, tc := range simpleFroms {
		addr, ok := simpleMailbox(tc.v)
		if ok != tc.want {
			t.Errorf("%q: simple %v, want %v", tc.v, ok, tc.want)
		}
		if ok {
			checkSimpleMailbox(t, tc.v, addr)
		}
	}
}

// FuzzSimpleMailbox: any value the fast path reads, net/mail reads as
// one mailbox with that address.
func FuzzSimpleMailbox(f *testing.F) {
	for _, tc := range simpleFroms {
		f.Add(tc.v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if addr, ok := simpleMailbox(v); ok {
			checkSimpleMailbox(t, v, addr)
		}
	})
}

func checkSimpleMailbox(t *testing.T, v, addr string) {
	t.Helper()
	list, err := mail.ParseAddressList(v)
	if err != nil || len(list) != 1 || list[0].Address != addr {
		t.Errorf("%q: fast path %q, net/mail %v %v", v, addr, list, err)
	}
}

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
		if !slices.Equal(doms, fromDomains(fields)) {
			t.Errorf("%q: fromDomains %q", tc.from, fromDomains(fields))
		}
	}
}
