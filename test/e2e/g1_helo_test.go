package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestG1HeloAllowListed: through a real Postfix with mailwall's milter, a
// HELO regexp table's REJECT refuses a client, but not one the allow
// list names by address (as check_client_access before
// check_helo_access would): its message is delivered.
func TestG1HeloAllowListed(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-g1-helo-")
	t.Setenv("STATE_DIRECTORY", root)
	dns, _ := startLabDNS(t, bin, glZones(t, root)...)
	table := filepath.Join(root, "helo_checks")
	os.WriteFile(table, []byte("/^bad\\.helo\\.test$/ REJECT\n"), 0o644)
	dir := filepath.Join(root, "mw")
	db := filepath.Join(dir, "data", "mailwall.db")
	os.MkdirAll(filepath.Dir(db), 0o750)
	pre := filepath.Join(root, "lists.yaml")
	os.WriteFile(pre, []byte(fmt.Sprintf("store:\n  dsn: %q\n", db)), 0o600)
	lsCLI(t, bin, pre, "allow", "add", "--ip", "127.0.0.42/32", "--note", "partner relay")
	d := startDaemon(t, bin, dir, daemonSetup{dns: dns, extra: fmt.Sprintf("checks:\n  helo_regexp_tables: [%q]\n", table)})
	smtpPort := freePort(t)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:%s\nmilter_default_action = tempfail\nmilter_protocol = 6", d.milter))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)

	err := send(smtpAddr, "127.0.0.41", "bad.helo.test", "alice@gl.test", "bob@rcpt.test", "g1-helo-refused")
	if code := smtpCode(err); code/100 != 5 || !strings.Contains(fmt.Sprint(err), "Helo command rejected") {
		t.Errorf("client not on the allow list: %v, want the HELO table's refusal", err)
	}
	if err := send(smtpAddr, "127.0.0.42", "bad.helo.test", "alice@gl.test", "bob@rcpt.test", "g1-helo-allowed"); err != nil {
		t.Fatalf("allow-listed client: %v, want accepted", err)
	}
	msg := delivered(t, filepath.Join(root, "mail", "inbox"), "g1-helo-allowed")
	// Accepted, verdict pass (the header names no stage for an accept).
	if !strings.Contains(msg, "X-Mailwall-Verdict: pass (action=accept; stage=none)") {
		t.Errorf("delivered message's verdict:\n%s", msg)
	}
	d.alive(t)
}
