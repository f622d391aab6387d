package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/labtest"
)

// d3SendingSection is the SENDING section of domain check's output.
func d3SendingSection(out string) string {
	_, after, ok := strings.Cut(out, "\nSENDING\n")
	if !ok {
		return ""
	}
	if i := strings.Index(after, "\n\n"); i >= 0 {
		after = after[:i]
	}
	return after
}

// TestD3DomainCheckSending: a key made by "dkim keygen" and published in
// lab DNS, a message made by "send-test --bulk --print" with it, and
// "domain check --sending" of the domain with the sending address, its
// HELO name and that message: every sending check passes (the rest is
// info). The same message without --bulk warns that it has no
// List-Unsubscribe; --ip without --sending is a usage error.
func TestD3DomainCheckSending(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := runCLI("dkim", "keygen", "--domain", "d3s.test", "--selector", "s1", "--algorithm", "rsa", "--out", dir); code != 0 {
		t.Fatalf("keygen: %d %s %s", code, out, errs)
	}
	rec, err := os.ReadFile(filepath.Join(dir, "s1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dns := labtest.Serve(t, labtest.Zone(t, "test"),
		labtest.Zone(t, "d3s.test", `@ IN TXT "v=spf1 ip4:127.0.0.71 -all"`, `_dmarc IN TXT "v=DMARC1; p=none"`, `mail IN A 127.0.0.71`, string(rec)),
		labtest.Zone(t, "0.0.127.in-addr.arpa", `71 IN PTR mail.d3s.test.`))
	_, port, _ := net.SplitHostPort(dns.Addr())
	check := func(bulk bool) (int, string) {
		t.Helper()
		args := []string{"send-test", "--from", "news@d3s.test", "--to", "bob@rcpt.test", "--key", filepath.Join(dir, "s1.private"), "--selector", "s1", "--print"}
		if bulk {
			args = append(args, "--bulk")
		}
		code, msg, errs := runCLI(args...)
		if code != 0 || !strings.Contains(msg, "DKIM-Signature:") {
			t.Fatalf("send-test --print: %d %s %s", code, msg, errs)
		}
		file := filepath.Join(dir, "msg.eml")
		if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI("domain", "check", "--sending", "d3s.test", "--ip", "127.0.0.71", "--helo", "mail.d3s.test", "--message", file,
			"--dns", dns.Addr(), "--ns-port", port, "--timeout", "1s")
		// The other sections judge the zone itself (the lab's d3s.test has
		// no MX or NS records): their failures are not the sender's.
		if errs != "" && !strings.Contains(errs, "checks failed") {
			t.Errorf("stderr: %s", errs)
		}
		return code, out
	}
	_, out := check(true)
	sec := d3SendingSection(out)
	for _, want := range []string{
		"  pass  spf d3s.test at 127.0.0.71: pass (ip4:127.0.0.71)\n", "  pass  dkim d=d3s.test s=s1: pass\n",
		"  pass  alignment: DMARC pass", "  pass  reverse dns 127.0.0.71: PTR mail.d3s.test resolves back to it\n",
		"  pass  helo mail.d3s.test:", "  pass  unsubscribe: one-click", "  pass  format:",
		"  info  complaints: not visible from here", "https://support.google.com/a/answer/81126",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("SENDING lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(sec, "  fail  ") || strings.Contains(sec, "  warn  ") {
		t.Errorf("a compliant sender got a fail or warn:\n%s", sec)
	}
	_, out = check(false)
	if sec := d3SendingSection(out); !strings.Contains(sec, "  warn  unsubscribe: no List-Unsubscribe") {
		t.Errorf("without --bulk:\n%s", out)
	}
	if code, _, _ := runCLI("domain", "check", "d3s.test", "--ip", "127.0.0.71"); code != 2 {
		t.Errorf("--ip without --sending: exit %d, want 2 (usage)", code)
	}
}

// TestD3CheckMessageDebug: check-message --debug logs each stage's detail
// to stderr, as for a debug peer; without it, none.
func TestD3CheckMessageDebug(t *testing.T) {
	dns := labDNS(t)
	const msg = "From: A <a@example.test>\r\nTo: b@rcpt.test\r\nSubject: hi\r\n\r\nhello\r\n"
	args := []string{"check-message", "--dns", dns, "--ip", "127.0.0.2", "--helo", "mail.example.test", "--sender", "a@example.test", "--rcpt", "b@rcpt.test", "--no-lists"}
	code, _, errs := runCLIWithInput(msg, args...)
	if code > 1 || strings.Contains(errs, "debug:") {
		t.Errorf("without --debug: exit %d, stderr:\n%s", code, errs)
	}
	code, _, errs = runCLIWithInput(msg, append(args, "--debug")...)
	for _, want := range []string{`msg="debug: dns" debug_peer=true name=example.test type=TXT`, `msg="debug: spf" debug_peer=true`, "result=pass",
		`msg="debug: dmarc"`, `msg="debug: verdict"`} {
		if !strings.Contains(errs, want) {
			t.Errorf("--debug: stderr lacks %s (exit %d):\n%s", want, code, errs)
		}
	}
}
