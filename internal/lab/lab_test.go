package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/conncheck"
	"mailwall/internal/dnsx"
	"mailwall/internal/phish"
	"mailwall/internal/verdict"
)

func pipeline(res dnsx.Resolver) (*verdict.Checker, error) {
	c := verdict.New(res, "mx.rcpt.test")
	var err error
	if c.S25R, err = conncheck.NewS25R(nil, nil, nil); err != nil {
		return nil, err
	}
	p, err := phish.New(phish.DefaultBrands(), nil)
	c.Analyzers = []analysis.Analyzer{p}
	return c, err
}

// exampleFile is examples/lab.yaml on free ports.
func exampleFile(t *testing.T) *File {
	f, err := Load(filepath.Join("..", "..", "examples", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f.DNS, f.MX.Port = "127.0.0.1:0", 0
	return f
}

// TestExampleLab replays the story of examples/lab.yaml: the domain's own
// host passes, its other host and the look-alike's host claiming it are
// rejected, and the look-alike itself passes authentication but is
// quarantined on its score.
func TestExampleLab(t *testing.T) {
	dir := t.TempDir()
	l, err := Start(exampleFile(t), Options{Dir: dir, Pipeline: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rows, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		spf, dkim, dmarc, action, reply string
		score                           int
	}
	const phishReject = "550 5.7.1 Message rejected as likely phishing"
	expect := map[string]want{
		"mail.example.test as alice@example.test":                          {"pass", "pass", "pass", "accept", "250 ", 0},
		"mail.example.test as update-account@amozonjp-update.test":         {"fail", "none", "fail", "reject", phishReject, 110},
		"work.example.test as alice@example.test":                          {"fail", "none", "fail", "reject", "550 5.7.1 Rejected by DMARC", 45},
		"work.example.test as update-account@amozonjp-update.test":         {"fail", "none", "fail", "reject", phishReject, 110},
		"mail.amozonjp-update.test as alice@example.test":                  {"fail", "none", "fail", "reject", "550 5.7.1 Rejected by DMARC", 45},
		"mail.amozonjp-update.test as update-account@amozonjp-update.test": {"pass", "pass", "pass", "quarantine", "250 ", 65},
	}
	if len(rows) != len(expect) {
		t.Errorf("%d rows, want %d", len(rows), len(expect))
	}
	for _, r := range rows {
		key := r.Host + " as " + r.MailFrom
		w, ok := expect[key]
		if !ok {
			t.Errorf("unexpected row %+v", r)
			continue
		}
		if r.SPF != w.spf || r.DKIM != w.dkim || r.DMARC != w.dmarc || r.Action != w.action || !strings.HasPrefix(r.Reply, w.reply) || r.Score != w.score {
			t.Errorf("%s: spf=%s dkim=%s dmarc=%s %s score %d %q; want %+v (reasons %v)", key, r.SPF, r.DKIM, r.DMARC, r.Action, r.Score, r.Reply, w, r.Reasons)
		}
	}
	var b strings.Builder
	WriteTable(&b, rows)
	if !strings.Contains(b.String(), "HOST") || !strings.Contains(b.String(), "work.example.test") {
		t.Errorf("table:\n%s", b.String())
	}
	// Keys are private, and kept for the next run.
	fi, err := os.Stat(filepath.Join(dir, "keys", "example.test", "mail.private"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	accepted, _ := os.ReadDir(filepath.Join(dir, "Maildir", "new"))
	held, _ := os.ReadDir(filepath.Join(dir, "Maildir", ".Quarantine", "new"))
	if len(accepted) != 1 || len(held) != 1 {
		t.Errorf("%d messages in the inbox and %d in quarantine, want 1 and 1", len(accepted), len(held))
	}
	if len(held) == 1 {
		data, _ := os.ReadFile(filepath.Join(dir, "Maildir", ".Quarantine", "new", held[0].Name()))
		if !strings.Contains(string(data), "X-Mailwall-Score: 65 (brand_from_domain=45 dmarc_none_brand=20)") {
			t.Errorf("quarantined message lacks its score header:\n%s", data)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, hosts: [{name: m, ip: 192.0.2.1}]}]\n", "not in 127.0.0.0/8"},
		{"mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, hosts: [{name: m, ip: 127.0.0.2, sign: true}]}]\n", "has no dkim key"},
		{"mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, hosts: [{name: m, ip: 127.0.0.2}, {name: n, ip: 127.0.0.2}]}]\n", "is m.a.test's already"},
		{"mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, hostz: []}]\n", "field hostz not found"},
		{"mx: {name: mx.other.test, domain: rcpt.test}\ndomains: []\n", "not inside rcpt.test"},
		{"mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, dkim: [{selector: s, algorithm: dsa}], hosts: [{name: m, ip: 127.0.0.2}]}]\n", "DKIM algorithm"},
	} {
		if _, err := Parse([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.text, err, tc.want)
		}
	}
}

// FuzzParse: any lab file gives a File or an error; what passes validation
// is usable (every case names a host of the file).
func FuzzParse(f *testing.F) {
	data, _ := os.ReadFile(filepath.Join("..", "..", "examples", "lab.yaml"))
	f.Add(data)
	f.Add([]byte("mx: {name: mx.r.test, domain: r.test}\ndomains: [{name: a.test, hosts: [{name: m, ip: 127.0.0.9}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too: the fuzzer itself has no time limit.
		timer := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("Parse(%q) takes over 5s", data)) })
		defer timer.Stop()
		lf, err := Parse(data)
		if err != nil {
			return
		}
		for _, c := range lf.Cases() {
			if _, _, ok := lf.Host(c.Host); !ok {
				t.Fatalf("case from unknown host %q", c.Host)
			}
		}
	})
}
