package phish

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"mailwall/internal/dkim"
)

// FuzzCheck: any message is scored without a panic, the score is the sum
// of the weights, and every hit explains itself.
func FuzzCheck(f *testing.F) {
	f.Add("From: Amazon <amozon@x.test>\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=Shift_JIS\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0iaHR0cDovL3guZXhhbXBsZS8iPnd3dy5hbWF6b24uY28uanA8L2E+\r\n--b--\r\n")
	f.Add("From: =?ISO-2022-JP?B?GyRCM1g5OxsoQg==?= <a@xn--pypal-4ve.test>\r\nReply-To: b@c.test\r\n\r\nhttp://www.yahoo.co:jp@h.test/ http://3221225985/\r\n")
	f.Add("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n")
	f.Add("Content-Type: text/plain; charset=unknown\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=XX=\r\n")
	f.Add("From: Microsoft account team ,_<no-reply@x.test >, <a@b>\r\nFrom: \"\u202emoc.lapyap\r\nSender: Office,\r\nContent-Type: multipart/mixed; boundary=b; boundary=c\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=a.html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0ibG9naW4iPng8L2E+==PGJhc2UgaHJlZj0iaHR0cDovL3gvIj4\r\n--b\r\nContent-Type: text/html\r\n\r\n<base href=\"http://e.test/\"><div style=\"font-size:0\"><a href=\"x\">www.paypal.com</a>")
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		br := bufio.NewReader(strings.NewReader(msg))
		fields, err := dkim.ReadHeader(br)
		if err != nil {
			return
		}
		var body strings.Builder
		br.WriteTo(&body)
		r := c.Check(context.Background(), Input{Fields: fields, Body: []byte(body.String()), SPF: "pass", DKIMPass: []string{"x.test"}})
		sum := 0
		for _, h := range r.Hits {
			sum += h.Weight
			if h.Detail == "" {
				t.Fatalf("%s without detail", h.Rule)
			}
		}
		if sum != r.Score {
			t.Fatalf("score %d, weights %d", r.Score, sum)
		}
	})
}

// FuzzMailbox: any author field is read without a panic, in bounded
// space; what it reads is valid UTF-8, whatever the bytes, and the
// domain is in lower case.
func FuzzMailbox(f *testing.F) {
	for _, s := range []string{
		"Microsoft account team ,_<no-reply@x.test>",
		"Name, <addr@x.test>",
		"<addr@x.test >",
		"Message de LIDL, <a@b.test.>, Message de LIDL,\t<a@b.test>",
		`"Volgen"<>63493<info@m.test>`,
		"Bradesco",
		`"unbalanced <a@b.test>`,
		"=?utf-8?B?UGF5UGFsIDxzZXJ2aWNlQHBheXBhbC5jb20+?=",
		"\x83A\x83}\x83]\x83\x93 <a@b.test>",
		"\x1b$B%\"%^%>%s\x1b(B <a@b.test>",
		"a@b.test, c@d.test",
		"<a@b@c.test>",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, list bool) {
		m := parseMailbox(raw, "Shift_JIS", list)
		if len(m.Others) > maxCandidates || len(m.Malformed) > 8 || len(m.Name) > 4*maxAddressField {
			t.Fatalf("unbounded: %d others, %d reasons, name %d octets", len(m.Others), len(m.Malformed), len(m.Name))
		}
		if m.Domain != strings.ToLower(m.Domain) {
			t.Fatalf("domain %q not lower case", m.Domain)
		}
		if !utf8.ValidString(m.Name) || !utf8.ValidString(m.Address()) {
			t.Fatalf("invalid UTF-8 read: %q", m.String())
		}
		_ = m.String()
	})
}
