package authres

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRFC8601Examples(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Header
	}{
		{"example.org; none", Header{AuthServID: "example.org"}},
		{"example.com; spf=pass smtp.mailfrom=example.net", Header{AuthServID: "example.com", Results: []Result{
			{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "example.net"}}}}}},
		{"example.com;\r\n\tauth=pass (cram-md5) smtp.auth=sender@example.net;\r\n\tspf=pass smtp.mailfrom=example.net", Header{AuthServID: "example.com", Results: []Result{
			{Method: "auth", Value: "pass", Comment: "cram-md5", Props: []Prop{{Type: "smtp", Name: "auth", Value: "sender@example.net"}}},
			{Method: "spf", Value: "pass", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "example.net"}}}}}},
		{"mail-router.example.net; dkim=pass (good signature) header.d=newyork.example.com header.b=oINEO8hg; dkim=fail (bad signature) header.d=newyork.example.com header.b=EToRSuvU", Header{AuthServID: "mail-router.example.net", Results: []Result{
			{Method: "dkim", Value: "pass", Comment: "good signature", Props: []Prop{{Type: "header", Name: "d", Value: "newyork.example.com"}, {Type: "header", Name: "b", Value: "oINEO8hg"}}},
			{Method: "dkim", Value: "fail", Comment: "bad signature", Props: []Prop{{Type: "header", Name: "d", Value: "newyork.example.com"}, {Type: "header", Name: "b", Value: "EToRSuvU"}}}}}},
		// RFC 8601 Appendix B.7: comments and CFWS nearly everywhere.
		{"foo.example.net (foobar) 1 (baz);\r\n    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\r\n      policy (A dot can go here) . (like that) expired\r\n      (this surprised me) = (as I wasn't expecting it) 1362471462", Header{AuthServID: "foo.example.net", Results: []Result{
			{Method: "dkim", Version: "1", Value: "fail", Props: []Prop{{Type: "policy", Name: "expired", Value: "1362471462"}}}}}},
		{`example.com; dmarc=fail reason="p=reject, no aligned identifier" header.from=example.com`, Header{AuthServID: "example.com", Results: []Result{
			{Method: "dmarc", Value: "fail", Reason: "p=reject, no aligned identifier", Props: []Prop{{Type: "header", Name: "from", Value: "example.com"}}}}}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		for i := range got.Results {
			// Comments inside B.7's result are not kept field by field.
			if tc.want.Results[i].Comment == "" {
				got.Results[i].Comment = ""
			}
			for j := range got.Results[i].Props {
				got.Results[i].Props[j].Comment = ""
			}
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, *got, tc.want)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	h := Header{AuthServID: "mx.example.test", Results: []Result{
		{Method: "spf", Value: "pass", Comment: "sender SPF authorized", Props: []Prop{{Type: "smtp", Name: "mailfrom", Value: "example.test"}}},
		{Method: "dkim", Value: "pass", Props: []Prop{{Type: "header", Name: "d", Value: "example.test"}, {Type: "header", Name: "s", Value: "sel"}, {Type: "header", Name: "b", Value: "AbC+/123"}}},
		{Method: "dmarc", Value: "fail", Reason: `p=reject "quoted"`, Props: []Prop{{Type: "header", Name: "from", Value: "example.test"}}},
		{Method: "auth", Value: "pass", Props: []Prop{{Type: "smtp", Name: "auth", Value: "joe user@example.test"}}},
	}}
	s := h.String()
	want := "mx.example.test;\r\n\tspf=pass (sender SPF authorized) smtp.mailfrom=example.test;\r\n\tdkim=pass header.d=example.test header.s=sel header.b=AbC+/123;\r\n\tdmarc=fail reason=\"p=reject \\\"quoted\\\"\" header.from=example.test;\r\n\tauth=pass smtp.auth=\"joe user@example.test\""
	if s != want {
		t.Errorf("got  %q\nwant %q", s, want)
	}
	back, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*back, h) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *back, h)
	}
	if got := (Header{AuthServID: "mx.example.test"}).Field(); got != "Authentication-Results: mx.example.test; none" {
		t.Errorf("no results: %q", got)
	}
	// A comment cannot be closed early by what goes into it.
	odd := Header{AuthServID: "x", Results: []Result{{Method: "spf", Value: "fail", Comment: "evil) dkim=pass (x"}}}
	if p, err := Parse(odd.String()); err != nil || len(p.Results) != 1 {
		t.Errorf("comment escaped: %q %v", odd.String(), err)
	}
}

func TestIsOurs(t *testing.T) {
	for _, tc := range []struct {
		value string
		ours  bool
	}{
		{"mx.example.test; dkim=pass header.d=bank.test", true},
		{"  MX.Example.Test ; spf=pass", true},
		{"(forged) mx.example.test 1; none", true},
		{"mx.example.test.evil.test; spf=pass", false},
		{"other.test; spf=pass", false},
		{"(unterminated comment", false},
		// Issue 23: the same name written as a domain may be.
		{"mx.example.test.; dmarc=pass header.from=bank.test", true},
		{"MX.EXAMPLE.TEST.;dmarc=pass", true},
		{"\"mx.example.test.\"; dmarc=pass", true},
		{"\"mx.example.test ; dmarc=pass", true}, // unterminated quote
		{"(x) \"mx.example.test; dmarc=pass", true},
		{"mx.example.test..; dmarc=pass", false},
		{".; dmarc=pass", false},
	} {
		if got := IsOurs(tc.value, "mx.example.test"); got != tc.ours {
			t.Errorf("IsOurs(%q) = %v", tc.value, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"", "; spf=pass", "x; spf", "x; spf=pass smtp", "x; spf=pass (open", `x; dmarc=fail reason="open`, "x; spf=pass bogus=1"} {
		if h, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, h)
		}
	}
	if !strings.Contains(func() string { _, err := Parse("x; spf=pass bogus=1"); return err.Error() }(), "bogus") {
		t.Error("error does not name the unexpected word")
	}
}

// TestLimit: thousands of results of one method become n, passes first,
// with a count of the rest; other methods keep theirs and their order.
func TestLimit(t *testing.T) {
	h := Header{AuthServID: "mx.example.test"}
	h.Results = append(h.Results, Result{Method: "spf", Value: "pass"}, Result{Method: "dmarc", Value: "pass"})
	for i := range 3000 {
		r := Result{Method: "dkim", Value: "permerror", Comment: "bad signature",
			Props: []Prop{{Type: "header", Name: "d", Value: fmt.Sprintf("junk%d.test", i)}}}
		if i == 2500 {
			r.Value, r.Comment = "pass", ""
		}
		h.Results = append(h.Results, r)
	}
	h.Results = append(h.Results, Result{Method: "arc", Value: "none"})
	h.Limit(5)
	var methods []string
	for _, r := range h.Results {
		methods = append(methods, r.Method+"="+r.Value)
	}
	want := "spf=pass dmarc=pass dkim=permerror dkim=permerror dkim=permerror dkim=permerror dkim=pass arc=none"
	if got := strings.Join(methods, " "); got != want {
		t.Errorf("results %s\nwant %s", got, want)
	}
	if h.Results[6].Prop("header", "d") != "junk2500.test" || h.Results[6].Comment != "2995 more dkim results not shown" {
		t.Errorf("last dkim %+v", h.Results[6])
	}
	f := h.Field()
	if len(f) > 1000 || !strings.Contains(f, "dmarc=pass") {
		t.Errorf("%d octets:\n%s", len(f), f)
	}
	if _, err := Parse(h.String()); err != nil {
		t.Errorf("limited field does not parse: %v\n%s", err, f)
	}
	// Under the limit nothing changes.
	small := Header{AuthServID: "x", Results: []Result{{Method: "dkim", Value: "fail", Comment: "c"}, {Method: "dkim", Value: "pass"}}}
	small.Limit(2)
	if len(small.Results) != 2 || small.Results[0].Comment != "c" {
		t.Errorf("%+v", small)
	}
}

// TestEmptyPropertiesOmitted: a DKIM result without a domain (the count
// of signatures past the limit, or a signature with no d=) was written
// `header.d="" header.s=""`; RFC 8601 §2.3 lets a result go without
// properties, so empty ones are left out, and the field still parses.
func TestEmptyPropertiesOmitted(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{Method: "dkim", Value: "policy", Comment: "3 more signatures not checked: at most 10 per message",
			Props: []Prop{{Type: "header", Name: "d"}, {Type: "header", Name: "s"}}},
			"dkim=policy (3 more signatures not checked: at most 10 per message)"},
		{Result{Method: "dkim", Value: "permerror", Comment: "no d=",
			Props: []Prop{{Type: "header", Name: "d"}, {Type: "header", Name: "s", Value: "sel"}}},
			"dkim=permerror (no d=) header.s=sel"},
		{Result{Method: "spf", Value: "none", Props: []Prop{{Type: "smtp", Name: "helo", Comment: "empty"}}}, "spf=none"},
		{Result{Method: "dkim", Value: "pass", Props: []Prop{{Type: "header", Name: "d", Value: "example.test"}}},
			"dkim=pass header.d=example.test"},
	} {
		got := tc.r.String()
		if got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
		h, err := Parse("mx.example.test; " + got)
		if err != nil || len(h.Results) != 1 || h.Results[0].Value != tc.r.Value {
			t.Errorf("%q does not parse back: %+v %v", got, h, err)
		}
	}
}

// A comment is bounded: a DNS error naming a 253-byte name in a DNSSEC
// bogus reason must not make the field unbounded, and Limit's count of
// results left out stays in view.
func TestCommentBounded(t *testing.T) {
	long := "dns: " + strings.Repeat("a.", 126) + "test TXT: DNSSEC bogus: é" + strings.Repeat("x", 300)
	r := Result{Method: "spf", Value: "temperror", Comment: long}
	s := r.String()
	if len(s) > len("spf=temperror ()")+MaxCommentBytes || !strings.HasSuffix(s, "...)") || !utf8.ValidString(s) {
		t.Errorf("comment not clipped (%d bytes): %s", len(s), s)
	}
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"abcdefghij", 6, "abc..."}, {"aébcd", 5, "a..."}, {"ééé", 5, "é..."}} {
		if got := Clip(tc.in, tc.n); got != tc.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	h := Header{AuthServID: "mx", Results: make([]Result, 8)}
	for i := range h.Results {
		h.Results[i] = Result{Method: "dkim", Value: "fail", Comment: long}
	}
	h.Limit(5)
	if s := h.Results[4].String(); !strings.Contains(s, "3 more dkim results not shown)") {
		t.Errorf("the count was clipped away: %s", s)
	}
}
