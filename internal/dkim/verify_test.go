package dkim

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// vectorDNS serves the RFC examples' keys (testdata/dkim/*.zone).
func vectorDNS(t testing.TB) dnsx.Resolver {
	files, _ := filepath.Glob("../../testdata/dkim/*.zone")
	cfg := labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	for _, f := range files {
		cfg.Zones = append(cfg.Zones, labdns.ZoneFile{Path: f})
	}
	s, err := labdns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})
}

func readVector(t testing.TB, name string) string {
	b, err := os.ReadFile(filepath.Join("../../testdata/dkim", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func verifyString(t testing.TB, v *Verifier, msg string) []Result {
	t.Helper()
	res, err := v.Verify(context.Background(), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRFCExamples(t *testing.T) {
	v := &Verifier{Resolver: vectorDNS(t)}
	res := verifyString(t, v, readVector(t, "rfc6376-a2.eml"))
	if len(res) != 1 || res[0].Status != Pass || res[0].Domain != "example.com" || res[0].Selector != "brisbane" {
		t.Errorf("RFC 6376 A.2: %+v", res)
	}
	res = verifyString(t, v, readVector(t, "rfc8463-a3.eml"))
	if len(res) != 2 {
		t.Fatalf("RFC 8463 A.3: %d results", len(res))
	}
	for i, want := range []string{Ed25519SHA256, RSASHA256} {
		if res[i].Status != Pass || res[i].Algorithm != want || res[i].Domain != "football.example.com" {
			t.Errorf("RFC 8463 A.3 signature %d: %+v", i, res[i])
		}
	}
	// The same message with CRLF line ends gives the same results.
	crlf := strings.ReplaceAll(readVector(t, "rfc8463-a3.eml"), "\n", "\r\n")
	for _, r := range verifyString(t, v, crlf) {
		if r.Status != Pass {
			t.Errorf("CRLF copy: %+v", r)
		}
	}
}

func TestTamperingFails(t *testing.T) {
	v := &Verifier{Resolver: vectorDNS(t)}
	msg := readVector(t, "rfc8463-a3.eml")
	for _, tc := range []struct{ name, from, to, reason string }{
		{"body changed", "We lost the game.", "We won the game.", "body hash did not verify"},
		{"signed header changed", "Subject: Is dinner ready?", "Subject: Is lunch ready?", "signature did not verify"},
		{"From added above (over-signed)", "From: Joe SixPack", "From: Mallory <m@evil.test>\nFrom: Joe SixPack", "signature did not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range verifyString(t, v, strings.Replace(msg, tc.from, tc.to, 1)) {
				if r.Status != Fail || r.Reason != tc.reason {
					t.Errorf("%s: %s (%s), want fail (%s)", r.Algorithm, r.Status, r.Reason, tc.reason)
				}
			}
		})
	}
	// Relaxed canonicalization forgives white space changes...
	for _, r := range verifyString(t, v, strings.Replace(msg, "Subject: Is dinner ready?", "Subject:   Is dinner   ready?  ", 1)) {
		if r.Status != Pass {
			t.Errorf("relaxed header white space: %+v", r)
		}
	}
	// ...simple does not.
	m6376 := readVector(t, "rfc6376-a2.eml")
	if r := verifyString(t, v, strings.Replace(m6376, "Subject: Is dinner ready?", "Subject:  Is dinner ready?", 1)); r[0].Status != Fail {
		t.Errorf("simple header white space: %+v", r)
	}
	// Unsigned headers may change.
	if r := verifyString(t, v, "X-Spam: yes\n"+m6376); r[0].Status != Pass {
		t.Errorf("unsigned header added: %+v", r)
	}
}

func TestKeyProblems(t *testing.T) {
	msg := readVector(t, "rfc6376-a2.eml")
	for _, tc := range []struct {
		name, record string
		status       Status
		reason       string
	}{
		{"no key", "", PermError, "no key for signature"},
		{"revoked", `"v=DKIM1; p="`, PermError, "key revoked"},
		{"garbage", `"v=DKIM1; p=!!!"`, PermError, "key syntax error"},
		{"wrong type", `"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="`, PermError, "does not match"},
		{"hash not allowed", `"v=DKIM1; h=sha1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"`, PermError, "does not allow sha256"},
		{"strict with subdomain i=", `"v=DKIM1; t=s; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"`, PermError, "t=s"},
		{"testing", `"v=DKIM1; t=y; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"`, Pass, "testing mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs []string
			if tc.record != "" {
				recs = append(recs, "brisbane._domainkey IN TXT "+tc.record)
			}
			v := &Verifier{Resolver: zoneResolver(t, "example.com", recs...)}
			r := verifyString(t, v, msg)[0]
			if r.Status != tc.status || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("got %s (%s), want %s (%s)", r.Status, r.Reason, tc.status, tc.reason)
			}
		})
	}
}

func TestSignatureProblems(t *testing.T) {
	v := &Verifier{Resolver: vectorDNS(t), Now: func() time.Time { return time.Unix(1528637909+100, 0) }}
	msg := readVector(t, "rfc8463-a3.eml")
	for _, tc := range []struct {
		name, from, to string
		status         Status
		reason         string
	}{
		{"expired", "t=1528637909; h=from : to :", "t=1528637909; x=1528637950; h=from : to :", PermError, "expired"},
		{"signed timestamp", "t=1528637909;", "t=+1528637909;", Neutral, "invalid timestamp"},
		{"unknown algorithm", "a=ed25519-sha256", "a=ed448-sha512", Neutral, "unsupported algorithm"},
		{"From not signed", "h=from : to :\n subject : date : message-id : from : subject : date;", "h=to : subject;", Neutral, "does not include From"},
		{"i= outside d=", "i=@football.example.com;\n q=dns/txt; s=brisbane", "i=@evil.test;\n q=dns/txt; s=brisbane", Neutral, "is not in d="},
		{"b= missing", "b=/gCrinpcQ", "x=/gCrinpcQ", Neutral, "required tag b="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := strings.Replace(msg, tc.from, tc.to, 1)
			if changed == msg {
				t.Fatal("test did not change the message")
			}
			r := verifyString(t, v, changed)[0]
			if r.Status != tc.status || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("got %s (%s), want %s (%s)", r.Status, r.Reason, tc.status, tc.reason)
			}
		})
	}
}

func TestDNSTimeoutIsTempError(t *testing.T) {
	v := &Verifier{Resolver: &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 50 * time.Millisecond, Attempts: 1}}
	r := verifyString(t, v, readVector(t, "rfc6376-a2.eml"))[0]
	if r.Status != TempError {
		t.Errorf("got %s (%s), want temperror", r.Status, r.Reason)
	}
}

func TestUnsignedMessage(t *testing.T) {
	v := &Verifier{Resolver: vectorDNS(t)}
	if r := verifyString(t, v, "From: a@example.com\n\nhi\n"); len(r) != 0 {
		t.Errorf("unsigned message gave %+v", r)
	}
}
