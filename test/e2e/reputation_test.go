package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mailwall/internal/classify"
	"mailwall/internal/dkim"
	"mailwall/internal/labtest"
	"mailwall/internal/milter"
	"mailwall/internal/pgtest"
	"mailwall/internal/store"
)

// TestReputationTwoServe runs two "mailwall serve" on one PostgreSQL
// store with checks.reputation on, and shows that they share one
// history: mail from example.test accepted by node 1 is a good history
// node 2 gives reputation_good; the recipient of mail our user sent
// through node 1 (signed there) is a known correspondent on node 2;
// "mailwall learn spam" of messages node 2 delivered turns example.test
// bad for node 1; "mailwall reputation show" prints the history.
func TestReputationTwoServe(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-reputation-")
	dsn := pgtest.DSN(t)
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, _, err := dkim.WriteKeyFiles(root, "rep", "rcpt.test", key)
	if err != nil {
		t.Fatal(err)
	}
	lab := labtest.Lab(t)
	t.Setenv("STATE_DIRECTORY", root) // the first-run password file, with a PostgreSQL store
	// Evidence is written every second and read again after a second:
	// the thresholds are low so that a few messages make a history.
	extra := fmt.Sprintf(`checks:
  internal_hosts: ["127.0.0.9/32"]
  signing:
    - domain: rcpt.test
      selector: rep
      key: %q
  reputation:
    enabled: true
    min_evidence: 0.5
    good_min_ham: 0.5
    ham_max_score: 30
    cache_ttl: 1s
    flush_interval: 1s
`, keyFile)
	nodes := make([]*daemon, 2)
	for i := range nodes {
		nodes[i] = startDaemon(t, bin, fmt.Sprintf("%s/mx%d", root, i+1), daemonSetup{dns: lab, hostname: fmt.Sprintf("mx%d.rcpt.test", i+1),
			store: fmt.Sprintf("driver: postgres\n  dsn: %q", dsn), extra: extra})
	}
	n1, n2 := nodes[0], nodes[1]
	score := func(mods []milter.Modification) string { return header(mods, "X-Mailwall-Score") }

	// Node 1 accepts ordinary mail from example.test (SPF and DMARC
	// pass from 127.0.0.2): weak ham evidence, 0.25 a message.
	for i := range 4 {
		mods, r := milterSend(t, n1.milter, 10*time.Second, repMsg(fmt.Sprintf("REPA%d", i), "alice", "127.0.0.2"))
		if !accepted(r) {
			t.Fatalf("ordinary mail %d through node 1: %v %s", i, r, score(mods))
		}
	}
	repWaitShow(t, bin, n2.cfg, "example.test", func(out string) bool { ham, _ := repRow(out, "from_domain", "example.test"); return ham > 0.99 })

	// Node 2 has never seen example.test's mail, yet knows its history.
	mods, _ := milterSend(t, n2.milter, 10*time.Second, repMsg("REPB1", "carol", "127.0.0.2"))
	t.Logf("node 2, first mail from example.test: X-Mailwall-Score %q", score(mods))
	if s := score(mods); !strings.Contains(s, "reputation_good=-15") || strings.Contains(s, "known_correspondent") {
		t.Errorf("node 2, mail from example.test after node 1's: X-Mailwall-Score %q, want reputation_good=-15 and no correspondent", s)
	}

	// Our user writes to alice@example.test through node 1, which signs.
	out := repInternal(t, n1.milter)
	if header(out, "DKIM-Signature") == "" {
		t.Fatalf("internal mail not signed: %v", out)
	}
	deadline := time.Now().Add(15 * time.Second)
	var delivered [][]milter.Modification
	for {
		mods, _ := milterSend(t, n2.milter, 10*time.Second, repMsg(fmt.Sprintf("REPC%d", len(delivered)), "alice", "127.0.0.2"))
		delivered = append(delivered, mods)
		if strings.Contains(score(mods), "known_correspondent=-20") {
			t.Logf("node 2, alice after our user wrote to her: X-Mailwall-Score %q", score(mods))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 2 never saw alice@example.test as a correspondent: %q", score(mods))
		}
		time.Sleep(500 * time.Millisecond)
	}

	if out := repShow(t, bin, n2.cfg, "Alice@example.test"); !strings.Contains(out, "a known correspondent") {
		t.Errorf("reputation show alice@example.test: %s", out)
	}

	// People say example.test's mail is spam: mailwall learn reads the
	// identities from node 2's Authentication-Results (node 2's
	// authserv-id is its hostname, so node 2's config reads them).
	for i := range 10 {
		raw := repDelivered(mods, repMsg(fmt.Sprintf("REPD%d", i), "alice", "127.0.0.2"))
		cmd := exec.Command(bin, "learn", "spam", "--config", n2.cfg)
		cmd.Stdin = bytes.NewReader(raw)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("learn spam: %v\n%s", err, b)
		}
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		mods, _ := milterSend(t, n1.milter, 10*time.Second, repMsg(fmt.Sprintf("REPE%d", time.Now().UnixNano()), "dave", "127.0.0.2"))
		if s := score(mods); strings.Contains(s, "reputation_bad=40") {
			t.Logf("node 1 after the feedback: X-Mailwall-Score %q", s)
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("node 1 after the spam feedback: %q, want reputation_bad=40", s)
		}
		time.Sleep(500 * time.Millisecond)
	}
	show := repShow(t, bin, n1.cfg)
	t.Logf("reputation show:\n%s", show)
	for _, id := range [][2]string{{"from_domain", "example.test"}, {"spf", "example.test"}, {"net", "127.0.0.0/24"}} {
		if _, spam := repRow(show, id[0], id[1]); spam < 29.9 {
			t.Errorf("reputation show: %s %s has %g spam, want the 30 of ten feedbacks:\n%s", id[0], id[1], spam, show)
		}
	}
	for _, d := range nodes {
		d.alive(t)
	}
}

// repMsg is a message from local@example.test sent by ip.
func repMsg(queueID, local, ip string) milterMsg {
	from := local + "@example.test"
	return milterMsg{host: "mail.example.test", ip: ip, queueID: queueID, from: "<" + from + ">", rcpt: "<bob@rcpt.test>",
		fields: [][2]string{{"From", "Someone <" + from + ">"}, {"To", "bob@rcpt.test"}, {"Subject", "the minutes " + queueID},
			{"Date", "Mon, 23 Nov 2026 09:00:00 +0000"}, {"Message-ID", "<" + queueID + "@example.test>"}},
		body: "Hi Bob,\r\n\r\nthe minutes of Tuesday's meeting: the release moves to Thursday.\r\n"}
}

// repInternal sends mail from our user bob@rcpt.test, on the internal
// host 127.0.0.9, to alice@example.test.
func repInternal(t *testing.T, addr string) []milter.Modification {
	t.Helper()
	mods, r := milterSend(t, addr, 10*time.Second, milterMsg{host: "desk.rcpt.test", ip: "127.0.0.9", queueID: "REPOUT", from: "<bob@rcpt.test>",
		rcpt: "<alice@example.test>", fields: [][2]string{{"From", "Bob <bob@rcpt.test>"}, {"To", "alice@example.test"}, {"Subject", "lunch"},
			{"Date", "Mon, 23 Nov 2026 10:00:00 +0000"}, {"Message-ID", "<out@rcpt.test>"}}, body: "Lunch on Friday?\r\n"})
	if !accepted(r) {
		t.Fatalf("internal mail: %v", r)
	}
	return mods
}

// repDelivered is m as delivered: the fields node added on top (its
// Authentication-Results among them), then m's own.
func repDelivered(added []milter.Modification, m milterMsg) []byte {
	var b bytes.Buffer
	for _, mod := range added {
		if mod.Kind == 'h' || mod.Kind == 'i' {
			fmt.Fprintf(&b, "%s: %s\r\n", mod.Name, strings.ReplaceAll(strings.TrimSpace(mod.Value), "\n", "\r\n"))
		}
	}
	for _, f := range m.fields {
		fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
	}
	b.WriteString("\r\n" + m.body)
	return b.Bytes()
}

// repRow finds kind and identity's row in reputation show's output
// and returns its ham and spam (-1 when there is none).
func repRow(out, kind, identity string) (ham, spam float64) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == kind && f[1] == identity {
			fmt.Sscan(f[2], &ham)
			fmt.Sscan(f[3], &spam)
			return ham, spam
		}
	}
	return -1, -1
}

// repShow runs "mailwall reputation show" with cfg.
func repShow(t *testing.T, bin, cfg string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"reputation", "show", "--config", cfg}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("reputation show: %v\n%s", err, out)
	}
	return string(out)
}

// repWaitShow waits until "mailwall reputation show IDENTITY" says ok.
func repWaitShow(t *testing.T, bin, cfg, identity string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := repShow(t, bin, cfg, identity)
		if ok(out) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reputation show %s never as expected:\n%s", identity, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestReputationAutolearn: with the classifier's model in the store,
// mail from a correspondent our user wrote to (signed on the way out)
// is learnt as ham without anyone asking, a message rejected on its
// score as spam; mailwall unlearn, given the ham as a Maildir holds it
// (LF line ends), takes that lesson back.
func TestReputationAutolearn(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-autolearn-")
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, _, err := dkim.WriteKeyFiles(root, "rep", "rcpt.test", key)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t), extra: fmt.Sprintf(`checks:
  internal_hosts: ["127.0.0.9/32"]
  signing:
    - domain: rcpt.test
      selector: rep
      key: %q
  classifier:
    enabled: true
    source: store
    refresh: 1s
  reputation:
    enabled: true
    flush_interval: 1s
`, keyFile)})
	model := func() classify.ModelState {
		st, err := store.Open(context.Background(), "sqlite", d.db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s, err := st.ModelCounts(context.Background(), classify.SiteModel, math.MaxInt64, func(classify.BucketCount) {})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitModel := func(what string, ok func(classify.ModelState) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !ok(model()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the model holds %+v\n%s", what, model(), d.log())
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	repInternal(t, d.milter)
	// Once the correspondent is written (within a second), alice's mail
	// is known; only that message is a candidate for learning.
	var ham milterMsg
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		ham = repMsg(fmt.Sprintf("REPHAM%d", i), "alice", "127.0.0.2")
		mods, r := milterSend(t, d.milter, 10*time.Second, ham)
		if !accepted(r) {
			t.Fatalf("mail from alice: %v", r)
		}
		if strings.Contains(header(mods, "X-Mailwall-Score"), "known_correspondent") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice never a known correspondent: X-Mailwall-Score %q", header(mods, "X-Mailwall-Score"))
		}
		time.Sleep(300 * time.Millisecond)
	}
	waitModel("the correspondent's mail learnt as ham", func(s classify.ModelState) bool { return s.Ham == 1 && s.Junk == 0 })

	// Phishing rejected on its score alone (no DMARC record to fail).
	spam := milterMsg{host: "x.example.test", ip: "127.0.0.3", queueID: "REPSPAM", from: "<>", rcpt: "<bob@rcpt.test>",
		fields: [][2]string{{"From", "PayPal Security <security@paypa1-login.test>"}, {"To", "bob@rcpt.test"}, {"Subject", "Your account is limited"},
			{"Message-ID", "<spam1@paypa1-login.test>"}, {"Content-Type", "text/html; charset=utf-8"}},
		body: `<p>Verify your PayPal account now:</p><a href="http://paypal.com@198.51.100.7/login">https://www.paypal.com/signin</a>` +
			`<a href="http://198.51.100.7/verify">www.paypal.com</a>` + "\r\n"}
	mods, r := milterSend(t, d.milter, 10*time.Second, spam)
	t.Logf("the phishing: reply %v, X-Mailwall-Score %q", r, header(mods, "X-Mailwall-Score"))
	if r.Code != 'y' || !strings.HasPrefix(r.Text, "550") {
		t.Fatalf("the phishing was not rejected: %v", r)
	}
	waitModel("the rejected phishing learnt as spam", func(s classify.ModelState) bool { return s.Junk == 1 })

	// The user disagrees: unlearn the ham as delivered.
	raw := bytes.ReplaceAll(repDelivered(mods[:0], ham), []byte("\r\n"), []byte("\n"))
	cmd := exec.Command(bin, "unlearn", "ham", "--config", d.cfg)
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "unlearnt as ham") {
		t.Fatalf("unlearn ham: %v\n%s", err, out)
	}
	if s := model(); s.Ham != 0 || s.Junk != 1 {
		t.Errorf("after unlearn: %+v, want no ham and the one spam", s)
	}
	d.alive(t)
}
