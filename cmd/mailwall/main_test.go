package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"mailwall/internal/config"
	"mailwall/internal/lab"
	"mailwall/internal/labtest"
	"mailwall/internal/milter"
	"mailwall/internal/store"
)

func labDNS(t *testing.T) string { return labtest.Lab(t) }

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSPFCommand(t *testing.T) {
	dns := labDNS(t)
	code, out, _ := runCLI("spf", "--dns", dns, "--ip", "127.0.0.2", "--helo", "mail.example.test", "--sender", "a@example.test")
	want := "Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=127.0.0.2; helo=mail.example.test; envelope-from=a@example.test; receiver=<UNKNOWN>\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, output %q; want 0 and %q", code, out, want)
	}
	code, out, _ = runCLI("spf", "--dns", dns, "--ip", "127.0.0.3", "--helo", "x.example.org", "--sender", "a@example.test", "--json")
	var got struct {
		Result, Identity, Explanation string
		Lookups                       int
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("exit %d, JSON %q: %v", code, out, err)
	}
	if got.Result != "fail" || got.Identity != "mailfrom" || got.Explanation != "SPF fail - not authorized" || got.Lookups != 0 {
		t.Errorf("JSON %+v", got)
	}
	// HELO only, when there is no sender.
	if code, out, _ := runCLI("spf", "--dns", dns, "--ip", "127.0.0.2", "--helo", "mail.example.test"); code != 0 || !strings.HasPrefix(out, "Received-SPF: Pass (helo) identity=helo;") {
		t.Errorf("HELO check: exit %d, %q", code, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"spf"},
		{"spf", "--ip", "not-an-ip", "--helo", "x.example"},
		{"spf", "--no-such-flag"},
		{"spf", "lint"},
		{"lab-dns"},
		{"config"},
		{"spf", "lint", "a.test", "b.test"},
		{"domain"},
		{"domain", "check"},
		{"domain", "check", "a.test", "b.test"},
		{"domain", "check", "a.test", "--bogus"},
		{"send-test", "--from", "a@a.test"},
		{"send-test", "--from", "a@a.test", "--to", "b@b.test", "--server", "127.0.0.1:25", "--key", "k.pem"},
		{"lab"},
		{"lab", "run"},
		{"dns"},
		{"dns", "query"},
		{"dns", "flush", "a.test", "b.test"},
	} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("mailwall %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}

func TestSPFLintCommand(t *testing.T) {
	dns := labDNS(t)
	// An error exits 1, as domain check does; a clean record 0.
	code, out, _ := runCLI("spf", "lint", "voids.example.test", "--dns", dns)
	if code != 1 || !strings.Contains(out, "void lookups: 3 of 2") || !strings.Contains(out, "error: voids.example.test: 3 lookups return no records") {
		t.Errorf("exit %d (want 1):\n%s", code, out)
	}
	if code, out, _ := runCLI("spf", "lint", "voids.example.test", "--dns", dns, "--json"); code != 1 || !strings.Contains(out, `"severity": "error"`) {
		t.Errorf("--json: exit %d (want 1):\n%s", code, out)
	}
	if code, out, _ := runCLI("spf", "lint", "example.test", "--dns", dns); code != 0 || !strings.Contains(out, "no problems found") {
		t.Errorf("clean record: exit %d (want 0):\n%s", code, out)
	}
}

func TestConfigCommand(t *testing.T) {
	code, out, _ := runCLI("config", "default")
	if code != 0 || !strings.Contains(out, "policyd:") {
		t.Fatalf("config default: %d %q", code, out)
	}
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte(out), 0o644)
	if code, _, _ := runCLI("config", "check", good); code != 0 {
		t.Errorf("the printed defaults do not pass config check")
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("dns:\n  timeout: soon\n"), 0o644)
	if code, _, errs := runCLI("config", "check", bad); code != 1 || !strings.Contains(errs, "line 2") {
		t.Errorf("bad config: exit %d, %q", code, errs)
	}
}

// syncPipe lets the test read what serve prints while it runs.
type syncPipe struct{ w *io.PipeWriter }

func (s syncPipe) Write(p []byte) (int, error) { return s.w.Write(p) }

// serveFirstLine runs serve in-process with the config file cfg, fails
// the test unless the first line it prints contains want, discards the
// rest and stops it when the test ends.
func serveFirstLine(t *testing.T, cfg, want string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	pr, pw := io.Pipe()
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg}, nil, syncPipe{pw}, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	if line, _ := bufio.NewReader(pr).ReadString('\n'); !strings.Contains(line, want) {
		t.Fatalf("serve said %q", line)
	}
	go io.Copy(io.Discard, pr)
}

// freeTCPAddr returns a loopback address whose port was free a moment ago.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// dialMilter connects a milter client to addr, closed when the test ends.
func dialMilter(t *testing.T, addr string) *milter.Client {
	t.Helper()
	c, err := milter.Dial("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openSQLiteStore opens a new SQLite store in a temporary directory,
// closed when the test ends.
func openSQLiteStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "mailwall.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// serveMilter writes a config for serve with only its milter listening,
// on a free port (milterExtra: more lines for the milter section), the
// DNS server dns and the sections more, starts serve with it and returns
// the milter's address.
func serveMilter(t *testing.T, dns, milterExtra, more string) string {
	t.Helper()
	addr := freeTCPAddr(t)
	cfg := filepath.Join(t.TempDir(), "mailwall.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`hostname: mx.rcpt.test
log:
  level: error
dns:
  servers: [%q]
policyd:
  listen: []
milter:
  listen: ["inet:%s"]
%sadmin:
  socket: ""
store:
  dsn: ""
web:
  listen: ""
%s`, dns, addr, milterExtra, more)), 0o644)
	serveFirstLine(t, cfg, "milter listening")
	return addr
}

// corpusLabDNS serves the corpus lab's DNS (testdata/corpus/lab.yaml) on
// a free port until the test ends and returns its address.
func corpusLabDNS(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../testdata/corpus/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := lab.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	f.DNS = "127.0.0.1:0"
	srv, _, err := f.StartDNS(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv.Addr()
}

func TestServeAnswersAndStops(t *testing.T) {
	dns := labDNS(t)
	addr := freeTCPAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailwall.yaml")
	sock := filepath.Join(dir, "run", "admin.sock")
	os.WriteFile(cfg, []byte(fmt.Sprintf("log:\n  level: error\ndns:\n  servers: [%q]\npolicyd:\n  listen: [\"inet:%s\"]\n  skip_addresses: []\nmilter:\n  listen: []\nadmin:\n  socket: %q\nstore:\n  dsn: %q\nweb:\n  listen: 127.0.0.1:0\n",
		dns, addr, sock, filepath.Join(dir, "mailwall.db"))), 0o644)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg}, nil, syncPipe{pw}, io.Discard)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	line, _ := br.ReadString('\n')
	if !strings.Contains(line, "listening on inet:"+addr) {
		t.Fatalf("serve said %q", line)
	}
	// Then the store, the first-run dashboard password, the web listener
	// and the admin socket.
	var said []string
	for len(said) < 4 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("serve said %q, then %v", said, err)
		}
		said = append(said, strings.TrimSpace(line))
	}
	var webAddr string
	if !strings.Contains(said[0], "store "+filepath.Join(dir, "mailwall.db")) || !strings.Contains(said[3], "admin socket "+sock) ||
		!strings.HasPrefix(said[1], "mailwall: dashboard login admin: first-run password in "+filepath.Join(dir, "initial-password")) || !strings.HasPrefix(said[2], "mailwall: web on http://") {
		t.Fatalf("serve said %q", said)
	}
	fmt.Sscanf(said[2], "mailwall: web on http://%s", &webAddr)
	go io.Copy(io.Discard, br)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "request=smtpd_access_policy\nclient_address=127.0.0.3\nhelo_name=x.example.org\nsender=a@example.test\ninstance=1\n\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	ans, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(ans, "action=550 5.7.23 ") {
		t.Errorf("answer %q", ans)
	}

	// The admin socket: owner only; it shows what the check left in the
	// cache, with the time left, and forgets it on flush.
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket: %v %v", fi, err)
	}
	code, out, errs := runCLI("dns", "query", "example.test", "TXT", "--socket", sock)
	if code != 0 || !strings.HasPrefix(out, "example.test. TXT: noerror (from the cache, ") || !strings.Contains(out, "IN\tTXT\t\"v=spf1 ip4:127.0.0.2 -all\"") {
		t.Errorf("dns query: exit %d %q %q", code, out, errs)
	}
	if code, out, _ := runCLI("dns", "flush", "example.test", "--socket", sock); code != 0 || !strings.HasPrefix(out, "flushed example.test. (") || strings.HasPrefix(out, "flushed example.test. (0 ") {
		t.Errorf("dns flush: exit %d %q", code, out)
	}
	if code, out, _ := runCLI("dns", "query", "example.test", "TXT", "--socket", sock); code != 0 || !strings.Contains(out, "(not cached before; fetched now, kept for 300s)") {
		t.Errorf("dns query after flush: exit %d %q", code, out)
	}
	if code, out, _ := runCLI("dns", "flush", "--socket", sock, "--json"); code != 0 || !strings.Contains(out, `"entries"`) {
		t.Errorf("dns flush all: exit %d %q", code, out)
	}
	// The dashboard asks for a login.
	if body, code := httpGet(t, "http://"+webAddr+"/"); code != 200 || !strings.Contains(body, `name="password"`) {
		t.Errorf("dashboard without a login: %d %s", code, body)
	}
	// Health and metrics: the store answers; the DNS cache's lookups show.
	if body, code := httpGet(t, "http://"+webAddr+"/healthz"); code != 200 || !strings.Contains(body, `"store":"ok"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if body, code := httpGet(t, "http://"+webAddr+"/metrics"); code != 200 || !strings.Contains(body, `mailwall_dns_cache_lookups_total{outcome="miss"}`) ||
		!strings.Contains(body, "mailwall_store_errors_total 0") || !strings.Contains(body, `mailwall_policyd_requests_total{action="REJECT"} 1`) ||
		!strings.Contains(body, `mailwall_check_duration_seconds_count{interface="policyd"} 1`) {
		t.Errorf("/metrics: %d %s", code, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func runCLIWithInput(in string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(in), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDKIMCommands(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"rsa", "ed25519"} {
		sel := "s" + alg
		if code, out, errs := runCLI("dkim", "keygen", "--domain", "example.test", "--selector", sel, "--algorithm", alg, "--out", dir); code != 0 || !strings.Contains(out, sel+"._domainkey") {
			t.Fatalf("keygen %s: %d %s %s", alg, code, out, errs)
		}
		if fi, err := os.Stat(filepath.Join(dir, sel+".private")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s.private: %v %v", sel, fi.Mode(), err)
		}
	}
	// Publish both S.txt files as written, in a lab zone.
	var recs []string
	for _, sel := range []string{"srsa", "sed25519"} {
		b, _ := os.ReadFile(filepath.Join(dir, sel+".txt"))
		recs = append(recs, string(b))
	}
	srv := labtest.Serve(t, labtest.Zone(t, "example.test", recs...))
	msg := "From: a@example.test\nTo: b@example.org\nSubject: hi\n\nbody\n"
	for _, sel := range []string{"srsa", "sed25519"} {
		code, signed, errs := runCLIWithInput(msg, "dkim", "sign", "--domain", "example.test", "--selector", sel, "--key", filepath.Join(dir, sel+".private"))
		if code != 0 || !strings.HasPrefix(signed, "DKIM-Signature: ") || !strings.HasSuffix(signed, msg) {
			t.Fatalf("sign %s: %d %q %s", sel, code, signed, errs)
		}
		code, out, _ := runCLIWithInput(signed, "dkim", "verify", "--dns", srv.Addr())
		if code != 0 || !strings.HasPrefix(out, "dkim=pass header.d=example.test header.s="+sel) {
			t.Errorf("verify %s: %d %q", sel, code, out)
		}
		code, out, _ = runCLIWithInput(strings.Replace(signed, "body", "b0dy", 1), "dkim", "verify", "--dns", srv.Addr(), "--json")
		var res []struct{ Result, Reason string }
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res) != 1 || res[0].Result != "fail" {
			t.Errorf("verify changed %s: %d %q", sel, code, out)
		}
	}
	if code, _, _ := runCLI("dkim", "sign", "--domain", "x"); code != 2 {
		t.Errorf("dkim sign without key: exit %d", code)
	}
	if code, _, _ := runCLI("dkim", "keygen", "--domain", "x", "--selector", "y", "--bits", "512", "--out", dir); code != 1 {
		t.Errorf("512-bit keygen: exit %d, want 1", code)
	}
}

func TestCheckMessageCommand(t *testing.T) {
	dns := labDNS(t)
	msg := "From: Alice <alice@example.test>\nTo: bob@rcpt.test\nSubject: hi\n\nhello\n"
	code, out, errs := runCLIWithInput(msg, "check-message", "--dns", dns, "--ip", "127.0.0.2", "--helo", "mail.example.test", "--sender", "alice@example.test", "--rcpt", "bob@rcpt.test")
	if code != 0 || !strings.Contains(out, "spf=pass") || !strings.Contains(out, "dmarc=pass (p=reject dis=none) header.from=example.test") || !strings.Contains(out, "# action: accept") {
		t.Errorf("exit %d:\n%s%s", code, out, errs)
	}
	code, out, _ = runCLIWithInput(msg, "check-message", "--dns", dns, "--ip", "127.0.0.3", "--helo", "x.example.org", "--sender", "alice@example.test", "--json")
	var r struct {
		SPF  struct{ Result string }
		DKIM []struct {
			Domain, Selector, Algorithm, Result, Reason string
		}
		DMARC struct {
			Result, Policy, Disposition string
			HeaderFrom                  string `json:"header_from"`
		}
		IPRev        struct{ Result string }
		Helo, Action string
		Reasons      []string
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if r.SPF.Result != "fail" || r.DMARC.Result != "fail" || r.DMARC.Policy != "reject" || r.DMARC.Disposition != "reject" ||
		r.DMARC.HeaderFrom != "example.test" || r.Action != "reject" || r.Helo != "pass" || len(r.Reasons) == 0 || r.DKIM == nil {
		t.Errorf("%+v", r)
	}
}

func TestPostfixConfigCommand(t *testing.T) {
	if _, err := exec.LookPath("postconf"); err != nil {
		t.Skip("postconf not installed (apt-get install postfix)")
	}
	cfg := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(cfg, []byte("milter:\n  listen: [\"unix:/var/spool/postfix/private/mailwall\"]\n"), 0o644)
	dir := t.TempDir()
	mainCF := "queue_directory = " + dir + "/no-such-spool\nsmtpd_milters = inet:localhost:8891\nsmtpd_recipient_restrictions = reject_unauth_destination, check_policy_service unix:private/policyd-spf\n"
	masterCF := "policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf\n"
	os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF), 0o644)
	os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCF), 0o644)

	code, out, _ := runCLI("postfix-config", "--config", cfg, "--postfix-dir", dir)
	for _, want := range []string{
		"#   was: smtpd_milters = inet:localhost:8891\nsmtpd_milters = unix:private/mailwall\n",
		"smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service inet:127.0.0.1:10045\n",
		"postconf -M# policyd-spf/unix",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, no %q in:\n%s", code, want, out)
		}
	}

	// postfix check fails (no queue directory): --apply changes nothing.
	code, _, stderr := runCLI("postfix-config", "--config", cfg, "--postfix-dir", dir, "--apply")
	if code != 1 || !strings.Contains(stderr, "nothing was changed") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "main.cf")); string(b) != mainCF {
		t.Errorf("main.cf changed:\n%s", b)
	}
	if backups, _ := filepath.Glob(filepath.Join(dir, "*.mailwall-*")); len(backups) != 0 {
		t.Errorf("backups made: %q", backups)
	}
}

func TestDomainCheckCommand(t *testing.T) {
	dns := labDNS(t)
	_, port, _ := net.SplitHostPort(dns)
	code, out, stderr := runCLI("domain", "check", "example.test", "--dns", dns, "--ns-port", port)
	for _, want := range []string{
		"example.test (DNS " + dns + ")\n",
		"\nSPF\n  pass  example.test: \"v=spf1 ip4:127.0.0.2 -all\"",
		"\nDMARC\n  pass  _dmarc.example.test: \"v=DMARC1; p=reject\": p=reject\n",
		"\nMX\n  pass  mail.example.test (127.0.0.2): PTR mail.example.test, which resolves back (FCrDNS)\n",
		"  pass  ns1.example.test (127.0.0.1): zone transfer (AXFR) refused\n",
		" 0 fail\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d (%s)", code, stderr)
	}
	// A domain with no records: failures, exit 1, and JSON that says so.
	code, out, _ = runCLI("domain", "check", "nothing.example.test", "--dns", dns, "--ns-port", port, "--json")
	var rep struct {
		Domain   string
		Findings []struct{ Section, Status, Message string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	failed := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Status == "fail" {
			failed[f.Section] = true
		}
	}
	if rep.Domain != "nothing.example.test" || !failed["spf"] {
		t.Errorf("report %+v", rep)
	}
}

func TestLabRunCommand(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runCLI("lab", "run", "../../examples/lab.yaml", "--dir", dir, "--dns", "127.0.0.1:0", "--mx-port", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "HOST") {
		t.Fatalf("table:\n%s", out)
	}
	for _, want := range [][]string{
		{"mail.example.test", "alice@example.test", "pass  pass  pass", "accept", "250 "},
		{"work.example.test", "alice@example.test", "fail  none  fail", "reject", "550 5.7.1 Rejected by DMARC policy for example.test"},
		// The story: every check passes, the look-alike is caught by its score.
		{"mail.amozonjp-update.test", "update-account@amozonjp-update.test", "pass  pass  pass", "65", "quarantine", "250 "},
	} {
		found := false
		for _, l := range lines {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			found = found || (ok && strings.HasPrefix(l, want[0]))
		}
		if !found {
			t.Errorf("no row with %q in:\n%s", want, out)
		}
	}
	// A second run reuses the keys.
	before, _ := os.ReadFile(filepath.Join(dir, "keys", "example.test", "mail.private"))
	if code, _, stderr := runCLI("lab", "run", "../../examples/lab.yaml", "--dir", dir, "--dns", "127.0.0.1:0", "--mx-port", "0", "--json"); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "keys", "example.test", "mail.private"))
	if len(before) == 0 || !bytes.Equal(before, after) {
		t.Error("the second run replaced the key")
	}
}

// TestCheckMessageStory runs check-message on the story's message (the
// corpus's first) against the corpus lab's DNS: every rule that fired is
// in the JSON, with the action.
func TestCheckMessageStory(t *testing.T) {
	dnsAddr := corpusLabDNS(t)
	msg, err := os.ReadFile("../../testdata/corpus/01-phish-story-amazon-lookalike.eml")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLIWithInput(string(msg), "check-message", "--dns", dnsAddr, "--ip", "127.0.1.1", "--helo", "desctrl.test",
		"--sender", "amozonjp-update-account@desctrl.test", "--rcpt", "taro@rcpt.test", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Action string `json:"action"`
		SPF    struct{ Result string }
		DMARC  struct{ Result string }
		Phish  struct {
			Score int
			Hits  []struct{ Rule, Detail string }
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var rules []string
	for _, h := range r.Phish.Hits {
		rules = append(rules, h.Rule)
	}
	want := []string{"brand_local_part", "brand_display_name", "url_text_mismatch", "ptr_bare_domain", "dmarc_none_brand"}
	if r.Action != "reject" || r.SPF.Result != "pass" || r.DMARC.Result != "pass" || !slices.Equal(rules, want) || r.Phish.Score != 125 {
		t.Errorf("action %s spf %s dmarc %s score %d rules %v; want reject pass pass 125 %v\n%s", r.Action, r.SPF.Result, r.DMARC.Result, r.Phish.Score, rules, want, out)
	}
}

func httpGet(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func TestDashboardPasswordFirstRun(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t)
	cfg := config.Default()
	cfg.Store.DSN = st.Name()
	var out strings.Builder
	hash, err := dashboardPassword(ctx, cfg, st, &out)
	// Only the file's path is printed (stdout goes to the journal); the
	// file beside the store is the owner's alone.
	var path string
	if _, scanErr := fmt.Sscanf(out.String(), "mailwall: dashboard login admin: first-run password in %s ", &path); err != nil || scanErr != nil {
		t.Fatalf("first run: %q %v %v", out.String(), err, scanErr)
	}
	if want := filepath.Join(filepath.Dir(st.Name()), "initial-password"); path != want {
		t.Errorf("password file %s, want %s", path, want)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
		t.Fatalf("password file: %v %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	var password string
	fmt.Sscanf(string(b), "user: admin\npassword: %s\n", &password)
	if password == "" || strings.Contains(out.String(), password) {
		t.Fatalf("password file %q, printed %q", b, out.String())
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		t.Error("the printed password does not match the hash kept")
	}
	if kept, _, _ := st.Setting(ctx, passwordSetting); kept != hash || strings.Contains(kept, password) {
		t.Errorf("store keeps %q", kept)
	}
	// The second start prints nothing and uses the same password.
	out.Reset()
	again, err := dashboardPassword(ctx, cfg, st, &out)
	if err != nil || again != hash || out.Len() != 0 {
		t.Errorf("second run: %q %v, printed %q", again, err, out.String())
	}
	// A hash in the config wins, and nothing is printed.
	cfg.Web.PasswordHash = "$2a$10$2yxkoqKrm/WtH64xde1uG.UBAksYg6u50ybzcsvYPdGA.x8Wbaari"
	if h, _ := dashboardPassword(ctx, cfg, st, &out); h != cfg.Web.PasswordHash || out.Len() != 0 {
		t.Errorf("config hash: %q, printed %q", h, out.String())
	}
	// reset-password replaces the stored one.
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("store:\n  dsn: %q\n", st.Name())), 0o644)
	code, said, errs := runCLI("web", "reset-password", "--config", cfgFile)
	var newPassword string
	fmt.Sscanf(said, "dashboard login admin / %s ", &newPassword)
	if kept, _, _ := st.Setting(ctx, passwordSetting); code != 0 || newPassword == "" || bcrypt.CompareHashAndPassword([]byte(kept), []byte(newPassword)) != nil {
		t.Errorf("reset-password: exit %d %q %q", code, said, errs)
	}
}

// TestServeFailureReports: a spoof through serve's milter brings the
// Domain Owner a failure report at its ruf= address, redacted.
func TestServeFailureReports(t *testing.T) {
	dns := labtest.Serve(t, labtest.Zone(t, "test"),
		labtest.Zone(t, "bank.test", `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
			`_dmarc IN TXT "v=DMARC1; p=reject; ruf=mailto:failures@bank.test; fo=1"`))
	sink := labtest.NewSink(t)
	milterAddr := serveMilter(t, dns.Addr(), "", fmt.Sprintf("reports:\n  relay: %q\n  failure:\n    send: true\n", sink.Addr()))

	c := dialMilter(t, milterAddr)
	c.Connect("unknown", netip.MustParseAddr("192.0.2.66"), 25)
	c.Helo("spoofer.example")
	c.Macro('M', "i", "4QiD9")
	c.Mail("<alice.smith@bank.test>")
	c.Rcpt("<bob.jones@rcpt.test>")
	c.Header("From", " Alice <alice.smith@bank.test>")
	c.Header("To", " bob.jones@rcpt.test")
	c.Header("Subject", " Verify your account")
	c.EndOfHeaders()
	c.Body([]byte("Secret body text.\r\n"))
	_, reply, err := c.EndOfMessage()
	if err != nil || !strings.HasPrefix(reply.Text, "550") {
		t.Fatalf("spoof: %+v %v", reply, err)
	}
	var msgs []labtest.SinkMessage
	for range 100 {
		if msgs = sink.Messages(); len(msgs) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(msgs) != 1 || msgs[0].To[0] != "failures@bank.test" || msgs[0].From != "dmarc-noreply@mx.rcpt.test" {
		t.Fatalf("at the sink: %+v", msgs)
	}
	report := string(msgs[0].Data)
	for _, want := range []string{"Auth-Failure: dmarc", "Identity-Alignment: dkim, spf", "Delivery-Result: reject", "Source-IP: 192.0.2.66",
		"Original-Envelope-Id: 4QiD9", "Reported-Domain: bank.test", "Subject: Verify your account", "dmarc=fail", "SPF-DNS: txt : bank.test : v=spf1"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, never := range []string{"alice.smith", "bob.jones", "Secret body"} {
		if strings.Contains(report, never) {
			t.Errorf("report shows %q:\n%s", never, report)
		}
	}
}
