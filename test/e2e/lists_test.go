package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lsCLI runs "mailwall allow|block ..." with config cfg.
func lsCLI(t *testing.T, bin, cfg string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mailwall %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// lsLookalike is the look-alike message the phishing rules score at 45
// (brand_from_domain) and more: amozonjp-update.test's SPF allows
// 127.0.0.5 and its DMARC record says p=none.
func lsLookalike(subject string) string {
	return "From: update-account@amozonjp-update.test\r\nTo: bob@rcpt.test\r\nSubject: " + subject + "\r\n" +
		fmt.Sprintf("Message-ID: <%d@amozonjp-update.test>\r\n\r\nPlease update your account.\r\n", time.Now().UnixNano())
}

// TestListsPostfix: through a real Postfix with mailwall serve as its
// policy server and milter, the lists edited with the CLI on the store
// serve uses: a client blocked while serve runs is refused at RCPT
// (550 5.7.1, within the cache's refresh); a From domain on the allow
// list that passes DMARC is delivered where its score (quarantine from
// 40, no rejection) would hold it, with its headers; the same From spoofed from
// another host (DMARC fail under p=none) is not allowed: held.
func TestListsPostfix(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-ls-")
	t.Setenv("STATE_DIRECTORY", root)
	lab, _ := startLabDNS(t, bin)
	dir := filepath.Join(root, "mw")
	db := filepath.Join(dir, "data", "mailwall.db")
	// The entries made before serve starts, on the store it will open.
	pre := filepath.Join(root, "lists.yaml")
	os.MkdirAll(filepath.Dir(db), 0o750)
	os.WriteFile(pre, []byte(fmt.Sprintf("store:\n  dsn: %q\n", db)), 0o600)
	if out := lsCLI(t, bin, pre, "allow", "add", "--domain", "amozonjp-update.test", "--note", "partner"); !strings.Contains(out, "allow domain amozonjp-update.test added") {
		t.Fatalf("allow add: %s", out)
	}
	d := startDaemon(t, bin, dir, daemonSetup{dns: lab, extra: "checks:\n  score:\n    quarantine: 40\n    reject: 0\n"})
	smtpPort := freePort(t)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_recipient_restrictions = check_policy_service inet:%s\nsmtpd_policy_service_timeout = 30s\n"+
		"smtpd_milters = inet:%s\nmilter_default_action = tempfail\nmilter_protocol = 6", d.policy, d.milter))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")

	t.Run("client blocked while serve runs is refused at RCPT", func(t *testing.T) {
		if err := send(smtpAddr, "127.0.0.61", "client.example.org", "someone@stranger.test", "bob@rcpt.test", "ls-before"); err != nil {
			t.Fatalf("before the entry: %v", err)
		}
		lsCLI(t, bin, d.cfg, "block", "add", "--ip", "127.0.0.61", "--note", "e2e")
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := policyAsk(t, d.policy, "127.0.0.61", "client.example.org", "someone@stranger.test")
			if got == "action=550 5.7.1 sender is on this site's block list" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the new entry never applied: %s", got)
			}
			time.Sleep(250 * time.Millisecond)
		}
		err := send(smtpAddr, "127.0.0.61", "client.example.org", "someone@stranger.test", "bob@rcpt.test", "ls-blocked")
		// Postfix puts "<rcpt>: Recipient address rejected:" between the
		// code and the policy server's text.
		if smtpCode(err) != 550 || !strings.Contains(err.Error(), "5.7.1 ") || !strings.Contains(err.Error(), "sender is on this site's block list") {
			t.Fatalf("blocked client: %v, want 550 5.7.1 at RCPT", err)
		}
		if !strings.Contains(err.Error(), "Recipient address rejected") {
			t.Errorf("not refused at RCPT: %v", err)
		}
		if n := d.metric(t, `mailwall_lists_total{list="block"}`); n < 2 {
			t.Errorf("block list refusals counted: %v", n)
		}
	})
	t.Run("allowed From passing DMARC skips the score's quarantine", func(t *testing.T) {
		if err := sendMessage(smtpAddr, "127.0.0.5", "mail.amozonjp-update.test", "update-account@amozonjp-update.test", "bob@rcpt.test", lsLookalike("ls-allowed")); err != nil {
			t.Fatalf("send: %v", err)
		}
		got := delivered(t, maildir, "ls-allowed")
		if n := d.metric(t, `mailwall_messages_total{action="accept",stage="lists"}`); n != 1 {
			t.Errorf("messages the allow list accepted: %v, want 1", n)
		}
		for _, want := range []string{"dmarc=pass", "X-Mailwall-Score: ", "brand_from_domain=45", "X-Mailwall-Verdict: pass (action=accept"} {
			if !strings.Contains(got, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, got)
			}
		}
	})
	t.Run("the same From spoofed is not allowed", func(t *testing.T) {
		// MAIL FROM of a domain without SPF, the allowed domain in From:
		// DMARC fails (nothing aligned passes), p=none leaves it to us.
		if err := sendMessage(smtpAddr, "127.0.0.6", "mail.stranger.test", "bounce@stranger.test", "bob@rcpt.test", lsLookalike("ls-spoof")); err != nil {
			t.Fatalf("send: %v", err)
		}
		waitHeld(t, root)
		held, _ := exec.Command("postcat", "-c", filepath.Join(root, "etc"), "-hq", heldID(t, root)).Output()
		for _, want := range []string{"Subject: ls-spoof", "dmarc=fail", "action=quarantine; stage=score"} {
			if !strings.Contains(string(held), want) {
				t.Errorf("held message lacks %q:\n%s", want, held)
			}
		}
	})
	d.alive(t)
}
