package phish

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

// parseMailbox is parseMailboxLazy with the charset given.
func parseMailbox(raw, charset string, list bool) Mailbox {
	return parseMailboxLazy(raw, func() string { return charset }, list)
}

func TestParseMailbox(t *testing.T) {
	sjis := encode(t, japanese.ShiftJIS, "アマゾン")
	latin1 := encode(t, charmap.ISO8859_1, "Société Générale")
	for _, tc := range []struct {
		name, raw, charset string
		wantName, wantAddr string
		malformed          []string // substrings of the reasons, in order; nil: well formed
		others             int
	}{
		{name: "well formed", raw: `"Amazon.co.jp" <store-news@amazon.co.jp>`, wantName: "Amazon.co.jp", wantAddr: "store-news@amazon.co.jp"},
		{name: "bare address", raw: "bowaglul@gmail.com", wantAddr: "bowaglul@gmail.com"},
		{name: "kit comma underscore", raw: "Microsoft account team ,_<no-reply@x.test>", wantName: "Microsoft account team", wantAddr: "no-reply@x.test", malformed: []string{`"," in the display name`}},
		{name: "comma before address", raw: "Apple MysteryBox, <service@stayfriends.de>", wantName: "Apple MysteryBox", wantAddr: "service@stayfriends.de", malformed: []string{`","`}},
		{name: "space inside brackets", raw: "AARP ! <join_now_31547@luffy.talaba.click >", wantName: "AARP !", wantAddr: "join_now_31547@luffy.talaba.click", malformed: []string{"spaces inside <join_now_31547@luffy.talaba.click>"}},
		{name: "two addresses", raw: "Message de LIDL, <ne-pas-repondre@chronopost.fr.>, Message de LIDL,\t<ne-pas-repondre@chronopost.fr>", wantName: "Message de LIDL", wantAddr: "ne-pas-repondre@chronopost.fr", malformed: []string{"ends with a dot", "2 addresses", `","`}},
		{name: "two different addresses", raw: "PayPal <service@paypal.com>, Support <x@evil.test>", wantName: "PayPal", wantAddr: "service@paypal.com", malformed: []string{"2 addresses"}, others: 1},
		{name: "quoted names twice", raw: `"Aldi x E-Scooter", "Aldi x E-Scooter"	<news@my.esprit-friends.com>`, wantName: "Aldi x E-Scooter, Aldi x E-Scooter", wantAddr: "news@my.esprit-friends.com", malformed: []string{`","`}},
		{name: "empty brackets then address", raw: `"Volgen"<>63493<info235495683446@msmtrakk21a.com>`, wantName: "63493", wantAddr: "info235495683446@msmtrakk21a.com", malformed: []string{"empty <>"}},
		{name: "no @ at all", raw: "Bradesco Prime", wantName: "Bradesco Prime", malformed: []string{"no address (no @)"}},
		{name: "empty brackets only", raw: "=?UTF-8?B?RGVCYW5r?= <>", wantName: "DeBank", malformed: []string{"empty <>", "no address"}},
		{name: "domain without a dot", raw: "Bradesco <notifica@bradesco>", wantName: "Bradesco", wantAddr: "notifica@bradesco", malformed: []string{`the domain "bradesco" has no dot`}},
		{name: "percent in the domain", raw: "Mercado Pago <aviso@registromp28839%atendimento.com>", wantName: "Mercado Pago", wantAddr: "aviso@registromp28839%atendimento.com", malformed: []string{`'%' in the domain`}},
		{name: "unbalanced quote", raw: `"PayPal Service <service@intl.paypal.test>`, wantName: "PayPal Service", wantAddr: "service@intl.paypal.test", malformed: []string{"unbalanced quotes"}},
		{name: "unclosed bracket", raw: "PayPal <service@paypal.test", wantName: "PayPal", wantAddr: "service@paypal.test", malformed: []string{"RFC 5322"}},
		{name: "address in a comment", raw: "Beeilen Sie sich!,(<service@otto.de>)", wantName: "Beeilen Sie sich!", wantAddr: "service@otto.de", malformed: []string{`","`, `text after the address: ")"`}},
		{name: "encoded word in quotes", raw: `"=?UTF-8?B?UHJpbWU=?=" <res0lvdmaillmphbsh12375@perfectzecure.org.ng>`, wantName: "Prime", wantAddr: "res0lvdmaillmphbsh12375@perfectzecure.org.ng"},
		{name: "encoded word then junk", raw: `"=?UTF-8?B?Ti5FLlQuRi5MLkkuWA==?=" ,JWK <admission@luc.edu>`, wantName: "N.E.T.F.L.I.X ,JWK", wantAddr: "admission@luc.edu", malformed: []string{`","`}},
		{name: "whole field encoded", raw: "=?utf-8?B?" + base64.StdEncoding.EncodeToString([]byte("PayPal <service@paypal.com>")) + "?=", wantName: "PayPal", wantAddr: "service@paypal.com", malformed: []string{"inside an encoded word"}},
		{name: "unknown charset in one word", raw: "=?x-unknown?q?Dear?= =?utf-8*en?q?Amazon?= <a@b.test>", wantName: "DearAmazon", wantAddr: "a@b.test"},
		{name: "raw UTF-8 name", raw: "Suzana 💌 <newsmail@appri.serenitepure.fr>", wantName: "Suzana 💌", wantAddr: "newsmail@appri.serenitepure.fr"},
		{name: "raw Shift_JIS name, message charset", raw: sjis + " <info@amaz0n.test>", charset: "Shift_JIS", wantName: "アマゾン", wantAddr: "info@amaz0n.test"},
		{name: "raw Shift_JIS name, ISO-2022-JP body", raw: sjis + " <info@amaz0n.test>", charset: "ISO-2022-JP", wantName: "アマゾン", wantAddr: "info@amaz0n.test"},
		{name: "raw EUC-JP name, ISO-2022-JP body", raw: encode(t, japanese.EUCJP, "楽天カード") + " <info@rakuten.test>", charset: "iso-2022-jp", wantName: "楽天カード", wantAddr: "info@rakuten.test"},
		{name: "raw Latin-1 name, no charset", raw: latin1 + " <info@societegenerale.test>", wantName: "Société Générale", wantAddr: "info@societegenerale.test"},
		{name: "raw ISO-2022-JP", raw: encode(t, japanese.ISO2022JP, "楽天カード") + " <info@rakuten-card.test>", wantName: "楽天カード", wantAddr: "info@rakuten-card.test"},
		{name: "unquoted @ in the name", raw: "phishing@pot.test <phishing@pot.test>", wantName: "phishing@pot.test", wantAddr: "phishing@pot.test", malformed: []string{`"@" in the display name`}},
		{name: "two @", raw: "<ndtuftrz@uksyz@21cn.com>", wantAddr: "ndtuftrz@uksyz@21cn.com", malformed: []string{"two @"}},
		{name: "empty", raw: "  ", malformed: []string{"empty"}},
		{name: "right-to-left override", raw: "\"\u202emoc.lapyap\u202c Service\" <a@b.test>", wantName: "\u202emoc.lapyap\u202c Service", wantAddr: "a@b.test", malformed: []string{`bidi override in the display name, shown as "paypal.com Service"`}},
		{name: "Hebrew name, no override", raw: "\"\u05e9\u05dc\u05d5\u05dd \u200fבנק\" <a@b.test>", wantName: "\u05e9\u05dc\u05d5\u05dd \u200fבנק", wantAddr: "a@b.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := parseMailbox(tc.raw, tc.charset, false)
			if m.Name != tc.wantName || m.Address() != tc.wantAddr {
				t.Errorf("read as %s, want %q <%s>", m, tc.wantName, tc.wantAddr)
			}
			if len(m.Malformed) != len(tc.malformed) {
				t.Fatalf("malformed %q, want %q", m.Malformed, tc.malformed)
			}
			for i, want := range tc.malformed {
				if !strings.Contains(m.Malformed[i], want) {
					t.Errorf("malformed[%d] %q, want it to say %q", i, m.Malformed[i], want)
				}
			}
			if len(m.Others) != tc.others {
				t.Errorf("others %q, want %d", m.Others, tc.others)
			}
		})
	}
}

func TestReplyToListIsWellFormed(t *testing.T) {
	m := parseMailbox("a@shop.example, b@shop.example", "", true)
	if len(m.Malformed) != 0 || m.Address() != "a@shop.example" || len(m.Others) != 1 {
		t.Errorf("Reply-To list: %s others %q malformed %q", m, m.Others, m.Malformed)
	}
	if m := parseMailbox("a@shop.example, b@shop.example", "", false); len(m.Malformed) == 0 {
		t.Error("two From addresses not malformed")
	}
}

// TestParseMailboxBounded: a hostile field is read in bounded time and
// the candidates considered are capped.
func TestParseMailboxBounded(t *testing.T) {
	for name, raw := range map[string]string{
		"many brackets":  strings.Repeat("<a@b.test>, ", 200000),
		"many quotes":    strings.Repeat(`"`, 1<<20) + "<a@b.test>",
		"open brackets":  strings.Repeat("<", 1<<20),
		"many words":     strings.Repeat("x@y.test ", 100000),
		"encoded words":  strings.Repeat("=?utf-8?q?a?= ", 100000),
		"long name only": strings.Repeat("a", 1<<20),
	} {
		start := time.Now()
		m := parseMailbox(raw, "", false)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s: %v", name, d)
		}
		if len(m.Others) >= maxCandidates || len(m.Malformed) > 8 || len(m.Name) > maxAddressField {
			t.Errorf("%s: %d others, %d reasons, name of %d octets", name, len(m.Others), len(m.Malformed), len(m.Name))
		}
		if !slices.ContainsFunc(m.Malformed, func(s string) bool { return strings.Contains(s, "longer than") }) {
			t.Errorf("%s: the cut is not reported: %q", name, m.Malformed)
		}
	}
}

// TestFromMalformedRule: the rule fires with an explanation, and the From
// rules that a strict parser skipped now run on the address read.
func TestFromMalformedRule(t *testing.T) {
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header string
		want         []string
		detail       string
	}{
		{"kit From imitating a brand", "From: Paypal      ,_<0a7pz@poumzenuhs.com>\n", []string{BrandDisplayName, FromMalformed}, `From is not one well-formed mailbox: "," in the display name, unquoted; read as "Paypal" <0a7pz@poumzenuhs.com>`},
		{"no @", "From: Bradesco\n", []string{FromMalformed}, "no address (no @)"},
		{"no From", "Subject: hi\n", []string{FromMalformed}, "no From field"},
		{"two From fields", "From: a@shop.example\nFrom: b@shop.example\n", []string{FromMalformed}, "2 From fields"},
		{"bad Sender", "From: a@shop.example\nSender: Office, <x@shop.example>\n", []string{FromMalformed}, "Sender is not one well-formed mailbox"},
		{"two addresses, second a brand look-alike", "From: News <news@shop.example>, Team <x@paypa1-secure.test>\n", []string{BrandFromDomain, FromMalformed}, "2 addresses"},
		{"right-to-left override shows a brand", "From: \"\u202emoc.lapyap\u202c\" <service@notice.example>\n", []string{BrandDisplayName, FromMalformed}, `shown as "paypal.com"`},
		{"invisible characters split the brand", "From: Pay\u200bPal\u2060 Service <service@notice.example>\n", []string{BrandDisplayName}, ""},
		{"well formed", "From: \"Shop\" <news@shop.example>\nReply-To: a@shop.example, b@shop.example\n", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields, body := msg(t, tc.header+"\nhello\n")
			r := c.Check(context.Background(), Input{Fields: fields, Body: body, SPF: "pass", DKIMPass: []string{"shop.example"}, DMARCPolicy: "reject"})
			if got := rules(r); !slices.Equal(got, tc.want) {
				t.Errorf("rules %v, want %v", got, tc.want)
			}
			for _, h := range r.Hits {
				if h.Rule == FromMalformed && !strings.Contains(h.Detail, tc.detail) {
					t.Errorf("detail %q, want it to say %q", h.Detail, tc.detail)
				}
			}
		})
	}
}
