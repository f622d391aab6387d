package sendtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

func TestBuild(t *testing.T) {
	date := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		m    Message
		want []string
	}{
		{"defaults", Message{From: "a@example.test", To: "b@rcpt.test", Date: date}, []string{
			"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n", "From: <a@example.test>\r\n", "To: <b@rcpt.test>\r\n",
			"Subject: mailwall send-test\r\n", "@example.test>\r\n", "MIME-Version: 1.0\r\n",
			"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nA test message",
		}},
		{"utf-8 body, bare LFs", Message{From: "a@example.test", To: "b@rcpt.test", Subject: "hi", Body: "こんにちは\nline two", Date: date}, []string{
			"Subject: hi\r\n", "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", "\r\n\r\nこんにちは\r\nline two\r\n",
		}},
	} {
		got, err := Build(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: lacks %q:\n%s", tc.name, w, got)
			}
		}
		if strings.Contains(strings.ReplaceAll(got, "\r\n", ""), "\n") {
			t.Errorf("%s: bare LF in %q", tc.name, got)
		}
	}
}

func TestBuildSigned(t *testing.T) {
	key, _ := dkim.GenerateKey("rsa", 2048)
	rec, _ := dkim.PublicKeyRecord(key)
	dns := labtest.Serve(t, labtest.Zone(t, "example.test", dkim.ZoneRecord("s1", "", rec)))
	msg, err := Build(Message{From: "a@example.test", To: "b@rcpt.test", Domain: "example.test", Selector: "s1", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	v := &dkim.Verifier{Resolver: &dnsx.Client{Servers: []string{dns.Addr()}, Timeout: time.Second}}
	r, err := v.Verify(context.Background(), strings.NewReader(msg))
	if err != nil || len(r) != 1 || r[0].Status != dkim.Pass {
		t.Errorf("signature: %+v %v", r, err)
	}
}

// TestBuildBulk: --bulk's message has the one-click unsubscribe fields
// (RFC 8058 §3.1), signed (§4) by the From domain, and verifies; without
// a key, with another signing domain or with a URI that is not https it
// is refused.
func TestBuildBulk(t *testing.T) {
	key, _ := dkim.GenerateKey("ed25519", 0)
	rec, _ := dkim.PublicKeyRecord(key)
	dns := labtest.Serve(t, labtest.Zone(t, "example.test", dkim.ZoneRecord("s1", "", rec)))
	msg, err := Build(Message{From: "news@example.test", To: "b@rcpt.test", Domain: "example.test", Selector: "s1", Key: key, Bulk: true,
		Unsubscribe: "https://example.test/u?id=42"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"List-Unsubscribe: <https://example.test/u?id=42>,\r\n <mailto:unsubscribe@example.test?subject=unsubscribe>\r\n",
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "Message-ID: <", "Date: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("lacks %q:\n%s", want, msg)
		}
	}
	v := &dkim.Verifier{Resolver: &dnsx.Client{Servers: []string{dns.Addr()}, Timeout: time.Second}}
	r, err := v.Verify(context.Background(), strings.NewReader(msg))
	if err != nil || len(r) != 1 || r[0].Status != dkim.Pass {
		t.Fatalf("signature: %+v %v", r, err)
	}
	h := strings.ToLower(strings.Join(r[0].Signature.Headers, ":"))
	if !strings.Contains(h, "list-unsubscribe:") || !strings.Contains(h, "list-unsubscribe-post") {
		t.Errorf("h=%s does not cover both fields", h)
	}
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"no key", Message{From: "news@example.test", To: "b@rcpt.test", Bulk: true}},
		{"another domain signs", Message{From: "news@example.test", To: "b@rcpt.test", Domain: "esp.test", Selector: "s1", Key: key, Bulk: true}},
		{"http", Message{From: "news@example.test", To: "b@rcpt.test", Domain: "example.test", Selector: "s1", Key: key, Bulk: true, Unsubscribe: "http://example.test/u"}},
		{"injected field", Message{From: "news@example.test", To: "b@rcpt.test", Domain: "example.test", Selector: "s1", Key: key, Bulk: true, Unsubscribe: "https://x.test/>\r\nBcc: a@b"}},
	} {
		if _, err := Build(tc.m); err == nil {
			t.Errorf("%s: built", tc.name)
		}
	}
}
