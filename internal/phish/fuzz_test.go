package phish

import (
	"bufio"
	"context"
	"strings"
	"testing"

	"mailwall/internal/dkim"
)

// FuzzCheck: any message is scored without a panic, the score is the sum
// of the weights, and every hit explains itself.
func FuzzCheck(f *testing.F) {
	f.Add("From: Amazon <amozon@x.test>\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=Shift_JIS\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0iaHR0cDovL3guZXhhbXBsZS8iPnd3dy5hbWF6b24uY28uanA8L2E+\r\n--b--\r\n")
	f.Add("From: =?ISO-2022-JP?B?GyRCM1g5OxsoQg==?= <a@xn--pypal-4ve.test>\r\nReply-To: b@c.test\r\n\r\nhttp://www.yahoo.co:jp@h.test/ http://3221225985/\r\n")
	f.Add("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n")
	f.Add("Content-Type: text/plain; charset=unknown\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=XX=\r\n")
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
