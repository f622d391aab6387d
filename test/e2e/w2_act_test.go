package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailwall/internal/classify"
	"mailwall/internal/store"
)

// w2Verdict waits for the store's verdict of the message with subject.
func w2Verdict(t *testing.T, st *store.Store, subject string) store.Verdict {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		vs, err := st.Verdicts(context.Background(), store.VerdictFilter{Subject: subject, Source: "milter"})
		if err == nil && len(vs) == 1 {
			return vs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verdict of %q in the store: %v %v", subject, vs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// w2QueueSocket listens as mailwall-queue.socket does (Accept=yes), with
// systemd's own systemd-socket-activate: each connection starts
// "mailwall web queue-helper" on the Postfix instance of etc.
func w2QueueSocket(t *testing.T, bin, etc string) string {
	t.Helper()
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatal("systemd-socket-activate (package systemd) is needed to play mailwall-queue.socket")
	}
	sock := filepath.Join(t.TempDir(), "queue.sock")
	cmd := exec.Command(activate, "--accept", "--inetd", "-l", sock, bin, "web", "queue-helper", "--postfix-config", etc)
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("queue helper:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate did not listen on %s: %s", sock, logs.String())
		}
	}
}

// w2Click clicks the element sel on the page at path and returns the
// text of the page it leads to.
func w2Click(t *testing.T, b context.Context, base, path, sel string) string {
	t.Helper()
	if err := chromedp.Do(b, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		text, _ := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
		t.Fatalf("%s: no %s: %v\n%s", path, sel, err, text)
	}
	if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("click %s on %s: %v", sel, path, err)
	}
	text, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// w2Probability is the classifier's probability for msg, as
// check-message with serve's config (the store's model) gives it.
func w2Probability(t *testing.T, bin, cfg, msg string) float64 {
	t.Helper()
	cmd := exec.Command(bin, "check-message", "--config", cfg, "--json", "--ip", "127.0.0.2", "--helo", "mail.example.test", "--sender", "alice@example.test", "--rcpt", "bob@rcpt.test")
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("check-message: %v\n%s", err, stderrOf(err))
	}
	var r struct {
		Classifier *struct {
			Probability float64 `json:"probability"`
		} `json:"classifier"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Classifier == nil {
		t.Fatalf("check-message --json: %v\n%s", err, out)
	}
	return r.Classifier.Probability
}

// w2Parcel is a customs-fee lure from example.test (SPF passes
// 127.0.0.2): none of its words is in the model before the clicks.
func w2Parcel(subject string, n int) string {
	return fmt.Sprintf("From: Parcel Desk <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: %s\r\nMessage-ID: <w2-%d-%d@example.test>\r\n\r\n"+
		"Your parcel %d is waiting at the depot: the customs duty is unpaid. Settle the customs duty today\r\n"+
		"through the courier portal, or the depot returns the parcel to its sender.\r\n", subject, time.Now().UnixNano(), n, 4711+n)
}

// TestW2ActInBrowser acts on verdicts from the dashboard in headless
// Chromium, with a real Postfix and serve (milter, store, web):
//   - a look-alike of a brand that passes DMARC is held (score 45 over
//     quarantine at 40); "Allow From domain" on its verdict puts the
//     domain on the allow list, and the next such message is delivered;
//   - "Release" on the held message's verdict goes through "mailwall
//     web postsuper" to the root helper on its socket (as the package's
//     mailwall-queue.socket), which runs the real postsuper and
//     postqueue: the hold queue empties and the message is delivered;
//   - "Spam" on two verdicts of a lure the model never saw is learnt
//     into the store's model (its counts change, a second click counts
//     nothing), and a next message of the same kind scores higher.
func TestW2ActInBrowser(t *testing.T) {
	requirePostfix(t)
	chromium := requireChromium(t)
	root, bin := e2eRoot(t, "mailwall-e2e-w2-")
	lab, _ := startLabDNS(t, bin)
	dir := filepath.Join(root, "mw")
	db := filepath.Join(dir, "data", "mailwall.db")
	os.MkdirAll(filepath.Dir(db), 0o750)

	// The store's model starts with both classes, so that it predicts:
	// the handwritten spam and ham, learnt before serve starts.
	pre := filepath.Join(root, "learn.yaml")
	os.WriteFile(pre, []byte(fmt.Sprintf("store:\n  dsn: %q\n", db)), 0o600)
	paths, _ := filepath.Glob("../../internal/classify/testdata/handwritten/*.eml")
	for _, class := range []string{"spam", "ham"} {
		md := filepath.Join(root, class)
		lnMaildir(t, md)
		for _, p := range paths {
			if raw, err := os.ReadFile(p); err == nil && strings.HasPrefix(filepath.Base(p), class+"-") {
				lnDeliver(t, md, filepath.Base(p), string(raw))
			}
		}
		if out, err := exec.Command(bin, "learn", "--config", pre, "--maildir", md, "--as", class).CombinedOutput(); err != nil || !strings.Contains(string(out), "learnt as "+class) {
			t.Fatalf("learn %s: %v\n%s", class, err, out)
		}
	}

	etc := filepath.Join(root, "etc")
	// The dashboard reaches the hold queue as the package has it: the
	// daemon runs "mailwall web postsuper", which asks the root helper
	// on a socket; systemd-socket-activate plays mailwall-queue.socket
	// (one helper a connection, on its stdin and stdout), the helper
	// runs the real postsuper on the test's Postfix.
	sock := w2QueueSocket(t, bin, etc)
	// daemonConfig ends in the web section: its first lines are web's.
	d := startDaemon(t, bin, dir, daemonSetup{dns: lab, extra: fmt.Sprintf(`  postsuper: %s web postsuper --socket %s
checks:
  score:
    quarantine: 40
    reject: 0
  classifier:
    enabled: true
    source: store
    refresh: 1s
`, bin, sock)})
	password := hlInitialPassword(t, d.said)
	smtpPort := freePort(t)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:%s\nmilter_default_action = tempfail\nmilter_protocol = 6\n", d.milter))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")
	st, err := store.Open(context.Background(), "sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	b := browser(t, chromium)
	base := "http://" + d.web
	if err := chromedp.Do(b, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("user"), "admin"), chromedp.SendKeys(chromedp.ID("password"), password)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.ID("login"))); err != nil {
		t.Fatal(err)
	}

	var held store.Verdict
	t.Run("allow the From domain from a verdict, the next message is accepted", func(t *testing.T) {
		if err := sendMessage(smtpAddr, "127.0.0.5", "mail.amozonjp-update.test", "update-account@amozonjp-update.test", "bob@rcpt.test", lsLookalike("w2-held")); err != nil {
			t.Fatalf("send: %v", err)
		}
		waitHeld(t, root)
		held = w2Verdict(t, st, "w2-held")
		if held.Action != "quarantine" || held.QueueID != heldID(t, root) || held.DMARC != "pass" {
			t.Fatalf("the look-alike's verdict: %+v, want quarantine of the held queue ID %s with DMARC pass", held, heldID(t, root))
		}
		page := w2Click(t, b, base, fmt.Sprintf("/verdicts/%d", held.ID), `#act-allow button[value="domain:amozonjp-update.test"]`)
		if !strings.Contains(page, "allow list: domain amozonjp-update.test added") {
			t.Fatalf("after the click:\n%s", page)
		}
		es, err := st.ListEntries(context.Background())
		if err != nil || len(es) != 1 || es[0].List != "allow" || es[0].Kind != "domain" || es[0].Value != "amozonjp-update.test" {
			t.Fatalf("the lists: %+v %v", es, err)
		}
		// serve rereads the lists when their version changes (every 10 s).
		deadline := time.Now().Add(30 * time.Second)
		loaded := func() bool {
			for _, l := range strings.Split(d.log(), "\n") {
				if strings.Contains(l, "allow and block lists loaded") && strings.Contains(l, "entries=1 ") {
					return true
				}
			}
			return false
		}
		for !loaded() {
			if time.Now().After(deadline) {
				t.Fatalf("serve never loaded the entry:\n%s", d.log())
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := sendMessage(smtpAddr, "127.0.0.5", "mail.amozonjp-update.test", "update-account@amozonjp-update.test", "bob@rcpt.test", lsLookalike("w2-allowed")); err != nil {
			t.Fatalf("send: %v", err)
		}
		got := delivered(t, maildir, "w2-allowed")
		if !strings.Contains(got, "X-Mailwall-Verdict: pass (action=accept") || !strings.Contains(got, "brand_from_domain=45") {
			t.Errorf("the allowed message as delivered:\n%s", got)
		}
		if v := w2Verdict(t, st, "w2-allowed"); v.Action != "accept" || v.Stage != "lists" {
			t.Errorf("its verdict: %s by %s, want accept by lists", v.Action, v.Stage)
		}
		// The list page shows the entry the click made.
		if err := chromedp.Do(b, chromedp.Navigate(base+"/lists")); err != nil {
			t.Fatal(err)
		}
		shown, err := chromedp.Run(b, chromedp.Text(chromedp.ID("list-entries")))
		if err != nil || !strings.Contains(shown, "amozonjp-update.test") || !strings.Contains(shown, fmt.Sprintf("from verdict %d", held.ID)) {
			t.Errorf("lists page: %v\n%s", err, shown)
		}
	})

	t.Run("release the held message from Postfix's hold queue", func(t *testing.T) {
		if held.ID == 0 {
			t.Skip("no held message")
		}
		page := w2Click(t, b, base, fmt.Sprintf("/verdicts/%d", held.ID), "#queue-release")
		// postsuper's own words, passed on by the helper.
		if !strings.Contains(page, "Released from the hold queue: "+held.QueueID) || !strings.Contains(page, held.QueueID+": released from hold") {
			t.Fatalf("after release:\n%s", page)
		}
		delivered(t, maildir, "w2-held")
		out, _ := exec.Command("postqueue", "-c", etc, "-j").Output()
		if strings.Contains(string(out), held.QueueID) {
			t.Errorf("still queued: %s", out)
		}
	})

	t.Run("a spam click is learnt", func(t *testing.T) {
		ctx := context.Background()
		before, err := st.ModelCounts(ctx, classify.SiteModel, 1<<62, func(classify.BucketCount) {})
		if err != nil || before.Junk == 0 || before.Ham == 0 {
			t.Fatalf("the seeded model: %+v %v", before, err)
		}
		next := w2Parcel("w2-parcel-next", 3)
		p0 := w2Probability(t, bin, d.cfg, next)
		var clicked []store.Verdict
		for i := range 2 {
			subject := fmt.Sprintf("w2-parcel-%d", i)
			if err := sendMessage(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", w2Parcel(subject, i)); err != nil {
				t.Fatalf("send: %v", err)
			}
			v := w2Verdict(t, st, subject)
			fb, err := st.VerdictFeedback(ctx, v.ID)
			if err != nil || len(fb.Features) == 0 {
				t.Fatalf("%s: no features kept with the verdict: %+v %v", subject, fb, err)
			}
			clicked = append(clicked, v)
			page := w2Click(t, b, base, fmt.Sprintf("/verdicts/%d", v.ID), "#learn-spam")
			if !strings.Contains(page, "Learnt as spam.") {
				t.Fatalf("after the click on %s:\n%s", subject, page)
			}
		}
		after, err := st.ModelCounts(ctx, classify.SiteModel, 1<<62, func(classify.BucketCount) {})
		if err != nil || after.Junk != before.Junk+2 || after.Ham != before.Ham || after.Version == before.Version {
			t.Fatalf("model after two clicks: %+v, before %+v (%v)", after, before, err)
		}
		// A second click on the same verdict counts nothing.
		page := w2Click(t, b, base, fmt.Sprintf("/verdicts/%d", clicked[0].ID), "#learn-spam")
		if !strings.Contains(page, "Already learnt as spam: not counted twice.") {
			t.Errorf("second click:\n%s", page)
		}
		if again, _ := st.ModelCounts(ctx, classify.SiteModel, 1<<62, func(classify.BucketCount) {}); again.Junk != after.Junk {
			t.Errorf("a second click counted: %d junk, want %d", again.Junk, after.Junk)
		}
		if fb, _ := st.VerdictFeedback(ctx, clicked[0].ID); fb.Feedback != "spam" {
			t.Errorf("feedback column: %q", fb.Feedback)
		}
		// The same message learnt again from its mailbox copy (as the
		// Junk watcher would) is known by the same key: not counted twice.
		cmd := exec.Command(bin, "learn", "spam", "--config", d.cfg)
		cmd.Stdin = strings.NewReader(delivered(t, maildir, "w2-parcel-0"))
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "already learnt as spam") {
			t.Errorf("mailwall learn spam of the clicked message's Maildir copy: %v: %s", err, out)
		}
		p1 := w2Probability(t, bin, d.cfg, next)
		t.Logf("classifier probability of the next parcel lure: %.4f before the clicks, %.4f after", p0, p1)
		if p1 <= p0 {
			t.Errorf("the next similar message scores %.4f after the clicks, %.4f before: want higher", p1, p0)
		}
		// Through Postfix, once serve's copy of the model is refreshed
		// (every second here): the classifier's hit, where the two
		// clicked messages had none.
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			subject := fmt.Sprintf("w2-parcel-after-%d", i)
			if err := sendMessage(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", w2Parcel(subject, 10+i)); err != nil {
				t.Fatalf("send: %v", err)
			}
			v := w2Verdict(t, st, subject)
			if slices.ContainsFunc(v.Rules, func(r string) bool { return strings.HasPrefix(r, "classifier") }) {
				if v.Score <= clicked[0].Score || v.Score <= clicked[1].Score {
					t.Errorf("score %d after the clicks, %d and %d before", v.Score, clicked[0].Score, clicked[1].Score)
				}
				t.Logf("through Postfix: score %d (%v), the clicked ones %d and %d", v.Score, v.Rules, clicked[0].Score, clicked[1].Score)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no classifier hit through the milter after the clicks: %+v", v)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	d.alive(t)
}
