package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/labtest"
)

// lnMaildir makes a Maildir (new, cur, tmp) at dir.
func lnMaildir(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// lnDeliver writes msg into dir's tmp/ and renames it into new/, as a
// delivery agent (or a mail client moving it) does.
func lnDeliver(t *testing.T, dir, name, msg string) {
	t.Helper()
	tmp := filepath.Join(dir, "tmp", name)
	if err := os.WriteFile(tmp, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		t.Fatal(err)
	}
}

// TestLearnMaildirMilter: serve with checks.classifier.source: store and
// a user's Maildir watched; mailwall learn --maildir teaches ham into the
// same store while serve runs, spam is moved into the user's Junk folder,
// and a spammy message through the milter then gets the classifier's hit
// (none before), an ordinary one still none: the running daemon picked
// up both kinds of learning at its refresh, with no restart.
func TestLearnMaildirMilter(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-learn-")
	md := filepath.Join(root, "Maildir")
	lnMaildir(t, md)
	lnMaildir(t, filepath.Join(md, ".Junk"))
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t), extra: fmt.Sprintf(`checks:
  classifier:
    enabled: true
    source: store
    refresh: 1s
    learn:
      maildirs: [{path: %q, junk: .Junk}]
      interval: 1s
`, md)})
	spammy := "Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n" +
		"details and the small processing fee. Limited time exclusive offer, act now.\r\n"
	ordinary := "Hi Bob, could we review the release schedule and the test plan at the team meeting on Thursday? Thanks, Alice\r\n"
	if got := classifierE2ESend(t, d.milter, "LN0", "Claim your free prize now", spammy); strings.Contains(got, "classifier") {
		t.Fatalf("before learning: X-Mailwall-Score:%s, want no classifier hit", got)
	}

	// Ham through the command, on the daemon's own store.
	hamDir := filepath.Join(root, "ham")
	lnMaildir(t, hamDir)
	paths, _ := filepath.Glob("../../internal/classify/testdata/handwritten/*.eml")
	n := 0
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(filepath.Base(p), "ham-") {
			lnDeliver(t, hamDir, filepath.Base(p), string(raw))
		} else {
			lnDeliver(t, filepath.Join(md, ".Junk"), filepath.Base(p), string(raw))
			n++
		}
	}
	for i := range 3 {
		lnDeliver(t, hamDir, fmt.Sprintf("meet%d", i), fmt.Sprintf("From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: Meeting %d\r\nMessage-ID: <m%d@example.test>\r\n\r\nHi Bob, the release schedule and the test plan for the team meeting %d. Thanks, Alice\r\n", i, i, i))
		lnDeliver(t, filepath.Join(md, ".Junk"), fmt.Sprintf("lottery%d", i), fmt.Sprintf("From: Prize Desk <desk@example.test>\r\nTo: bob@rcpt.test\r\nSubject: Claim your free prize now %d\r\nMessage-ID: <p%d@example.test>\r\n\r\n%sTicket %d.\r\n", i, i, spammy, i))
		n++
	}
	out, err := exec.Command(bin, "learn", "--config", d.cfg, "--maildir", hamDir, "--as", "ham").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "7 messages read, 7 learnt as ham") {
		t.Fatalf("mailwall learn --maildir: %v: %s", err, out)
	}

	// The watcher learns the Junk folder; the next refresh brings it in.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(d.log(), "learnt from a Maildir") < n {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher learnt %d of %d Junk messages:\n%s", strings.Count(d.log(), "learnt from a Maildir"), n, d.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := ""
	for i := 0; !strings.Contains(got, "classifier="); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("after learning: X-Mailwall-Score:%s, want the classifier's hit\n%s", got, d.log())
		}
		time.Sleep(500 * time.Millisecond)
		got = classifierE2ESend(t, d.milter, fmt.Sprintf("LN%d", i+1), "Claim your free prize now", spammy)
	}
	if got := classifierE2ESend(t, d.milter, "LNO", "Meeting on Thursday", ordinary); strings.Contains(got, "classifier") {
		t.Errorf("ordinary: X-Mailwall-Score:%s, want no classifier hit", got)
	}
	d.alive(t)
	// The model's copy is a 16 MB table; serve with it stays well
	// under what a small MX host has.
	rss := d.peakRSS(t)
	t.Logf("serve's peak RSS with the store's model: %d MB", rss>>20)
	if rss > 256<<20 {
		t.Errorf("peak RSS %d MB, want under 256 MB", rss>>20)
	}
}
