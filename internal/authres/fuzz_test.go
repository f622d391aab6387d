package authres

import "testing"

// FuzzParse: any field value parses or errs; what parses formats to a
// value that parses again to the same results.
func FuzzParse(f *testing.F) {
	f.Add("example.com; spf=pass smtp.mailfrom=example.net")
	f.Add("foo.example.net (foobar) 1 (baz); dkim (x) / 1 (y) = (z) fail policy . expired = 1362471462")
	f.Add(`x; dmarc=fail reason="a \"b\"" header.from=c`)
	f.Fuzz(func(t *testing.T, v string) {
		h, err := Parse(v)
		if err != nil {
			return
		}
		again, err := Parse(h.String())
		if err != nil {
			t.Fatalf("formatted %q does not parse: %v", h.String(), err)
		}
		if len(again.Results) != len(h.Results) || again.AuthServID != h.AuthServID {
			t.Fatalf("round trip changed %+v into %+v", h, again)
		}
	})
}
