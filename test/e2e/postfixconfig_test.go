package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostfixConfigApply runs "mailwall postfix-config --apply" on a
// running Postfix set up the way the old stack leaves it: OpenDKIM and
// OpenDMARC in smtpd_milters next to another milter, policyd-spf as a
// master.cf service asked by check_policy_service. Before, mail is
// deferred (nothing answers at the old sockets); after, it goes through
// mailwall's policy server and milter, and the other milter is still
// there.
func TestPostfixConfigApply(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-apply-")
	dnsAddr, _ := startLabDNS(t, bin)
	milterPort, policyPort, smtpPort := freePort(t), freePort(t), freePort(t)
	etc := filepath.Join(root, "etc")
	other := "inet:127.0.0.1:1" // a milter mailwall does not replace; skipped by its default_action
	startPostfixServices(t, root, smtpPort, `smtpd_milters = unix:/run/opendkim/opendkim.sock,
    { inet:127.0.0.1:8893, connect_timeout=10s } { `+other+`, default_action=accept }
non_smtpd_milters = $smtpd_milters
smtpd_recipient_restrictions = reject_unauth_destination,
    check_policy_service unix:private/policyd-spf
policyd-spf_time_limit = 3600`, "policyd-spf unix - n n - 0 spawn\n    user=nobody argv=/usr/bin/policyd-spf\n")
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")

	if err := send(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", "before"); smtpCode(err)/100 != 4 {
		t.Fatalf("before the change: %v, want a 4xx (the old milters are not running)", err)
	}

	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(daemonConfig(daemonSetup{dns: dnsAddr}, milterPort, policyPort, freePort(t), filepath.Join(root, "mailwall.db"))), 0o644)
	startProcess(t, "milter listening", bin, "serve", "--config", cfg)

	mainBefore, masterBefore := mustRead(t, filepath.Join(etc, "main.cf")), mustRead(t, filepath.Join(etc, "master.cf"))
	out, err := exec.Command(bin, "postfix-config", "--config", cfg, "--postfix-dir", etc, "--apply").CombinedOutput()
	if err != nil {
		t.Fatalf("postfix-config --apply: %v\n%s", err, out)
	}
	for _, want := range []string{"was: smtpd_recipient_restrictions", "postfix check passed", "Postfix reloaded"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	backups, _ := filepath.Glob(filepath.Join(etc, "*.mailwall-*"))
	if len(backups) != 2 {
		t.Fatalf("backups: %q", backups)
	}
	for _, b := range backups {
		want := mainBefore
		if strings.Contains(b, "master.cf") {
			want = masterBefore
		}
		if got := mustRead(t, b); got != want {
			t.Errorf("%s is not the file as it was:\n%s", b, got)
		}
	}
	conf, _ := exec.Command("postconf", "-c", etc, "-h", "smtpd_milters", "smtpd_recipient_restrictions").Output()
	wantConf := fmt.Sprintf("inet:127.0.0.1:%d, { %s, default_action=accept }\nreject_unauth_destination, check_policy_service inet:127.0.0.1:%d\n", milterPort, other, policyPort)
	if string(conf) != wantConf {
		t.Errorf("postconf:\n%s\nwant:\n%s", conf, wantConf)
	}
	if n, _ := exec.Command("postconf", "-c", etc, "-n", "policyd-spf_time_limit").Output(); len(n) != 0 {
		t.Errorf("policyd-spf_time_limit still set: %s", n)
	}
	if m := mustRead(t, filepath.Join(etc, "master.cf")); !strings.Contains(m, "#policyd-spf unix") {
		t.Errorf("policyd-spf service not commented out:\n%s", m)
	}

	if err := send(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", "after"); err != nil {
		t.Fatalf("after the change: %v", err)
	}
	msg := delivered(t, maildir, "after")
	for _, want := range []string{"Received-SPF: Pass", "Authentication-Results: mx.rcpt.test;"} {
		if !strings.Contains(msg, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, msg)
		}
	}

	out, err = exec.Command(bin, "postfix-config", "--config", cfg, "--postfix-dir", etc, "--apply").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing to change") {
		t.Errorf("second --apply: %v\n%s", err, out)
	}
	if backups2, _ := filepath.Glob(filepath.Join(etc, "*.mailwall-*")); len(backups2) != 2 {
		t.Errorf("a second apply with nothing to change made backups: %q", backups2)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
