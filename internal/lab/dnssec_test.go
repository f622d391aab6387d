package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dnssecLab signs every zone but one, breaks two on purpose, and sends
// from each domain's own host.
const dnssecLab = `mx: {name: mx.rcpt.test, domain: rcpt.test}
domains:
  - {name: good.test, spf: "v=spf1 a -all", hosts: [{name: mail, ip: 127.0.0.41}]}
  - {name: hashed.test, spf: "v=spf1 a -all", hosts: [{name: mail, ip: 127.0.0.42}]}
  - {name: plain.test, spf: "v=spf1 a -all", hosts: [{name: mail, ip: 127.0.0.43}]}
  - {name: forged.test, spf: "v=spf1 a -all", hosts: [{name: mail, ip: 127.0.0.44}]}
  - {name: stale.test, spf: "v=spf1 a -all", hosts: [{name: mail, ip: 127.0.0.45}]}
messages:
  - {host: mail.good.test, from: a@good.test}
  - {host: mail.hashed.test, from: a@hashed.test}
  - {host: mail.plain.test, from: a@plain.test}
  - {host: mail.forged.test, from: a@forged.test}
  - {host: mail.stale.test, from: a@stale.test}
dnssec:
  nsec3: [hashed.test]
  unsigned: [plain.test]
  break: {forged.test: tamper, stale.test: expire}
`

// TestLabDNSSEC: on the signed lab, SPF passes for signed, NSEC3 and
// unsigned zones, and is a temperror for a tampered or expired zone (the
// forged record is never believed, the message is deferred);
// Authentication-Results says so; the
// lab root's trust anchor is written for a mailwall config.
func TestLabDNSSEC(t *testing.T) {
	f, err := Parse([]byte(dnssecLab))
	if err != nil {
		t.Fatal(err)
	}
	f.DNS = "127.0.0.1:0"
	dir := t.TempDir()
	l, err := Start(f, Options{Dir: dir, Pipeline: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rows, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	WriteTable(&table, rows)
	t.Logf("lab run:\n%s", table.String())
	want := map[string]string{"good.test": "pass", "hashed.test": "pass", "plain.test": "pass", "forged.test": "temperror", "stale.test": "temperror"}
	for _, r := range rows {
		d := r.MailFrom[strings.IndexByte(r.MailFrom, '@')+1:]
		if r.SPF != want[d] {
			t.Errorf("%s: spf=%s, want %s (reasons %v)", d, r.SPF, want[d], r.Reasons)
		}
	}
	if len(rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rows), len(want))
	}
	// The last message (from stale.test) was deferred; the
	// Authentication-Results the pipeline made for it says why.
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	ar := ""
	if last != nil {
		for _, h := range last.Result.Headers {
			if h.Name == "Authentication-Results" {
				ar = h.Value
			}
		}
	}
	if !strings.Contains(ar, "spf=temperror") || !strings.Contains(ar, "stale.test") {
		t.Errorf("Authentication-Results of the stale.test message: %q", ar)
	}
	t.Logf("Authentication-Results: %s", ar)
	anchor, err := os.ReadFile(filepath.Join(dir, TrustAnchorFile))
	if err != nil || !strings.HasPrefix(string(anchor), ".\t") || !strings.Contains(string(anchor), "DS\t") {
		t.Errorf("trust anchor file: %q %v", anchor, err)
	}
}

func TestLabDNSSECInvalid(t *testing.T) {
	base := "mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, hosts: [{name: mail, ip: 127.0.0.51}]}]\n"
	for _, tc := range []struct{ yaml, want string }{
		{"dnssec: {nsec3: [other.test]}", "not a zone of the lab"},
		{"dnssec: {break: {a.test: melt}}", "not tamper, expire"},
		{"dnssec: {unsigned: [rcpt.test, 127.in-addr.arpa]}", ""},
	} {
		_, err := Parse([]byte(base + tc.yaml))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
