package phish

import (
	"context"
	"slices"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"PayPal", "paypal"},
		{"Pay\u200bPal", "paypal"},             // zero-width space
		{"Pay\u200d\u200cPal\ufeff", "paypal"}, // joiners, BOM
		{"Amazon\ufe0f", "amazon"},             // variation selector
		{"Apple\U000E0041\U000E007F", "apple"}, // tag characters
		{"\u202eNetflix\u202c", "netflix"},     // bidi override
		{"Micro\u00adsoft", "microsoft"},       // soft hyphen
		{"Ｍｉｃｒｏｓｏｆｔ", "microsoft"},             // fullwidth
		{"𝐏𝐚𝐲𝐏𝐚𝐥", "paypal"},                   // mathematical bold
		{"Ama\u3164zon", "amazon"},             // Hangul filler
		{"楽天\u200bカード", "楽天カード"},               // Japanese kept
		{"ｱﾏｿﾞﾝ", "アマゾン"},                      // halfwidth katakana composed
		{"tab\tstays", "tab\tstays"},           // white space is not invisible
		{"ctrl\x01char", "ctrlchar"},
	} {
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSkeletonUTS39: the letters the hand-made table mapped before are
// mapped the same by the generated one, and some it did not know.
func TestSkeletonUTS39(t *testing.T) {
	for in, want := range map[string]string{
		"аррlе":    "apple",    // Cyrillic а р е
		"αmazon":   "amazon",   // Greek alpha
		"ѕоftbаnk": "softbank", // Cyrillic dze, o, a
		"ԁһӏ":      "dhl",      // Cyrillic komi de, shha, palochka
		"ɡoogle":   "google",   // Latin script g
		"ıcloud":   "icloud",   // dotless i
		"amaz0n":   "amazon",   // digit as letter
		"ꓑaypal":   "paypal",   // Lisu letter pa (UTS #39 only)
		"ꮲaypal":   "paypal",   // Cherokee small letter, lower case of Ꮲ
		"arnazon":  "amazon",   // rn for m
	} {
		if got := skeleton(in); got != want {
			t.Errorf("skeleton(%q) = %q, want %q", in, got, want)
		}
	}
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fields, body := msg(t, "From: \u13e2\u0430y\u200b\u13e2al <service@notice.example>\n\nhi\n") // Cherokee PE, Cyrillic a, a zero-width space
	r := c.Check(context.Background(), Input{Fields: fields, Body: body, SPF: "pass", DKIMPass: []string{"notice.example"}, DMARCPolicy: "reject"})
	if !slices.Contains(r.Brands, "paypal") {
		t.Errorf("brands %v, rules %v", r.Brands, r.Rules())
	}
}

func TestParseMediaTypeLenient(t *testing.T) {
	for _, tc := range []struct{ in, media, boundary, charset string }{
		{`multipart/alternative; boundary="b1"; boundary="b1"`, "multipart/alternative", "b1", ""},
		{`text/html; charset=utf-8;; charset="iso-8859-1"`, "text/html", "", "utf-8"},
		{`text/html; charset="Shift_JIS`, "text/html", "", "Shift_JIS"},
		{`TEXT/HTML; charset=windows-1251 (Cyrillic)`, "text/html", "", "windows-1251 (Cyrillic)"},
		{`html; charset=utf-8; charset=x`, "text/plain", "", "utf-8"},
	} {
		media, params := parseMediaType(tc.in)
		if media != tc.media || params["boundary"] != tc.boundary || params["charset"] != tc.charset {
			t.Errorf("%q: %s %v", tc.in, media, params)
		}
	}
	// A duplicate boundary no longer loses the whole message.
	fields, body := msg(t, "Content-Type: multipart/alternative; boundary=\"b\"; boundary=\"b\"\n\n--b\nContent-Type: text/html\n\n<a href=\"http://evil.example/\">www.paypal.com</a>\n--b--\n")
	c := Extract(fields, body)
	if len(c.Links) != 1 || c.Links[0].Text != "www.paypal.com" {
		t.Errorf("links %v, problems %v", c.Links, c.Problems)
	}
}
