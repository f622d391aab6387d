package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailwall/internal/classify"
	"mailwall/internal/labtest"
)

// classifierE2EModel trains a Bayes model on internal/classify's
// handwritten test messages (four spam, four ham, each three times) and
// saves it as dir/bayes.model.
func classifierE2EModel(t *testing.T, dir string) string {
	t.Helper()
	paths, err := filepath.Glob("../../internal/classify/testdata/handwritten/*.eml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no training messages: %v", err)
	}
	m := classify.NewBayes(classify.DefaultBits)
	c := classify.NewClassifier(m, nil)
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fields, body := classify.ParseMessage(raw)
		for range 3 {
			if err := c.Learn(&classify.Message{Fields: fields, Body: body}, strings.SplitN(filepath.Base(p), "-", 2)[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := classify.SaveModel(context.Background(), classify.DirStore{Dir: dir}, "bayes", m); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "bayes.model")
}

// classifierE2ESend runs one milter session from example.test (SPF
// passes 127.0.0.2) and returns X-Mailwall-Score as serve added it.
func classifierE2ESend(t *testing.T, addr, queueID, subject, body string) string {
	t.Helper()
	mods, _ := milterSend(t, addr, 10*time.Second, milterMsg{host: "mail.example.test", ip: "127.0.0.2", queueID: queueID, from: "<alice@example.test>", rcpt: "<bob@rcpt.test>",
		fields: [][2]string{{"From", "Alice <alice@example.test>"}, {"To", "bob@rcpt.test"}, {"Subject", subject}, {"Message-ID", "<" + queueID + "@example.test>"}},
		body:   body})
	return header(mods, "X-Mailwall-Score")
}

// TestClassifierMilter: serve with checks.classifier on scores a spammy
// message through the milter with the classifier's hit, leaves an
// ordinary one without it, and a SIGHUP whose model file is gone keeps
// the running classifier (the log says why) rather than drop it.
func TestClassifierMilter(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-classifier-")
	model := classifierE2EModel(t, root)
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t),
		extra: fmt.Sprintf("checks:\n  classifier:\n    enabled: true\n    model: %q\n", model)})
	spammy := "Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n" +
		"details and the small processing fee. Limited time exclusive offer, act now.\r\n"
	ordinary := "Hi Bob, could we review the release schedule and the test plan at the team meeting on Thursday? Thanks, Alice\r\n"
	if got := classifierE2ESend(t, d.milter, "CLS1", "Claim your free prize now", spammy); !strings.Contains(got, "classifier=45") {
		t.Errorf("spammy: X-Mailwall-Score:%s, want classifier=45\n%s", got, d.log())
	}
	if got := classifierE2ESend(t, d.milter, "CLS2", "Meeting on Thursday", ordinary); strings.Contains(got, "classifier") {
		t.Errorf("ordinary: X-Mailwall-Score:%s, want no classifier hit", got)
	}
	if err := os.Remove(model); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.log(), "does not exist") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload error in the log:\n%s", d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.alive(t)
	if got := classifierE2ESend(t, d.milter, "CLS3", "Claim your free prize now", spammy); !strings.Contains(got, "classifier=45") {
		t.Errorf("after the failed reload: X-Mailwall-Score:%s, want classifier=45", got)
	}
}
