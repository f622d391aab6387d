package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailwall/internal/labtest"
	"mailwall/internal/pgtest"
	"mailwall/internal/store"
)

// p1Message is a raw message (CRLF) from local@example.test to rcpt.
func p1Message(id, from, rcpt, subject, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.test>\r\n\r\n%s", from, rcpt, subject, id, body)
}

// p1Learn runs "mailwall learn CLASS [--rcpt RCPT]" on cfg's store with
// raw on its standard input.
func p1Learn(t *testing.T, bin, cfg, class, rcpt, raw string) {
	t.Helper()
	args := []string{"learn", class, "--config", cfg}
	if rcpt != "" {
		args = append(args, "--rcpt", rcpt)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(raw)
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("learnt as "+class)) {
		t.Fatalf("learn %s --rcpt %q: %v\n%s", class, rcpt, err, out)
	}
}

// p1Send sends one message through node's milter from example.test
// (SPF passes 127.0.0.2) to rcpt and returns its X-Mailwall-Score.
func p1Send(t *testing.T, d *daemon, queueID, rcpt, subject, body string) string {
	t.Helper()
	mods, _ := milterSend(t, d.milter, 10*time.Second, milterMsg{host: "mail.example.test", ip: "127.0.0.2", queueID: queueID,
		from: "<news@example.test>", rcpt: "<" + rcpt + ">",
		fields: [][2]string{{"From", "Deals <news@example.test>"}, {"To", rcpt}, {"Subject", subject}, {"Message-ID", "<" + queueID + "@example.test>"}},
		body:   body})
	return header(mods, "X-Mailwall-Score")
}

// p1Score is the number X-Mailwall-Score starts with (0: none).
func p1Score(h string) int {
	n := 0
	fmt.Sscan(h, &n)
	return n
}

// p1Until sends through d until the score says want (the node's refresh
// brought in what was learnt), or fails after 20 seconds.
func p1Until(t *testing.T, d *daemon, name, rcpt, subject, body string, want func(score string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		got := p1Send(t, d, fmt.Sprintf("P1%s%d", name, i), rcpt, subject, body)
		if want(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: X-Mailwall-Score:%s after 20s\n%s", name, got, d.log())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestP1TwoServeOneModel: two serve processes on one PostgreSQL store,
// the classifier's model in the store (refresh 1s) and per-recipient
// statistics on. mailwall learn teaches the store; both nodes then give
// the classifier's hit to a message like the spam learnt, and neither
// to ordinary mail. Then one recipient (alice) reports a weekly deals
// newsletter as spam while another (bob) learns it as ham: a new issue
// scores higher for alice than for bob, on both nodes, and bob's has no
// classifier hit.
func TestP1TwoServeOneModel(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-p1-")
	dsn := pgtest.DSN(t)
	lab := labtest.Lab(t)
	t.Setenv("STATE_DIRECTORY", root) // the first-run password file, with a PostgreSQL store
	extra := `checks:
  classifier:
    enabled: true
    source: store
    refresh: 1s
    per_recipient: true
    recipient_min_learns: 3
    autolearn:
      enabled: false
`
	nodes := make([]*daemon, 2)
	for i := range nodes {
		nodes[i] = startDaemon(t, bin, fmt.Sprintf("%s/mx%d", root, i+1), daemonSetup{dns: lab, hostname: fmt.Sprintf("mx%d.rcpt.test", i+1),
			store: fmt.Sprintf("driver: postgres\n  dsn: %q", dsn), extra: extra})
	}
	cfg := nodes[0].cfg

	const (
		spammy = "Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n" +
			"details and the small processing fee. Limited time exclusive offer, act now.\r\n"
		ordinary = "Hi Bob, could we review the release schedule and the test plan at the team meeting on Thursday? Thanks, Alice\r\n"
		news     = "This week's garden deals: pruning shears, hose reels and raised beds at our members' prices.\r\n" +
			"Read the whole issue on our site. You receive Garden Weekly as a member; unsubscribe at any time.\r\n"
	)
	for _, n := range nodes {
		if got := p1Send(t, n, "P1PRE", "carol@rcpt.test", "Claim your free prize now", spammy); strings.Contains(got, "classifier") {
			t.Fatalf("before learning: X-Mailwall-Score:%s, want no classifier hit", got)
		}
	}

	// The site's lessons, through the command, into the shared store.
	for i := range 4 {
		p1Learn(t, bin, cfg, "spam", "", p1Message(fmt.Sprintf("lot%d", i), "Prize Desk <desk@example.test>", "bob@rcpt.test",
			fmt.Sprintf("Claim your free prize now %d", i), fmt.Sprintf("%sTicket %d.\r\n", spammy, i)))
		p1Learn(t, bin, cfg, "ham", "", p1Message(fmt.Sprintf("meet%d", i), "Alice <alice@example.test>", "bob@rcpt.test",
			fmt.Sprintf("Meeting %d", i), fmt.Sprintf("Hi Bob, the release schedule and the test plan for the team meeting %d. Thanks, Alice\r\n", i)))
	}
	for i, n := range nodes {
		got := p1Until(t, n, fmt.Sprintf("SITE%d", i), "carol@rcpt.test", "Claim your free prize now", spammy,
			func(s string) bool { return strings.Contains(s, "classifier=") })
		t.Logf("node %d after mailwall learn: X-Mailwall-Score:%s", i+1, got)
		if got := p1Send(t, n, fmt.Sprintf("P1ORD%d", i), "carol@rcpt.test", "Meeting on Thursday", ordinary); strings.Contains(got, "classifier") {
			t.Errorf("node %d, ordinary: X-Mailwall-Score:%s, want no classifier hit", i+1, got)
		}
	}

	// Per recipient: alice calls the newsletter spam, bob reads it.
	// Each also teaches 3 of the other class, so that both have their
	// recipient_min_learns of each.
	const alice, bob = "alice@rcpt.test", "bob@rcpt.test"
	for i := range 6 {
		issue := func(to string, n int) string {
			return p1Message(fmt.Sprintf("news-%s-%d", to[:1], n), "Garden Weekly <news@example.test>", to,
				fmt.Sprintf("Garden Weekly, issue %d", n), news)
		}
		p1Learn(t, bin, cfg, "spam", alice, issue(alice, 20+i))
		p1Learn(t, bin, cfg, "ham", bob, issue(bob, 10+i))
	}
	for i := range 3 {
		p1Learn(t, bin, cfg, "ham", alice, p1Message(fmt.Sprintf("ameet%d", i), "Carol <carol@example.test>", alice,
			fmt.Sprintf("Lunch %d", i), fmt.Sprintf("Hi Alice, lunch on Friday at the usual place, table %d? Carol\r\n", i)))
		p1Learn(t, bin, cfg, "spam", bob, p1Message(fmt.Sprintf("blot%d", i), "Prize Desk <desk@example.test>", bob,
			fmt.Sprintf("You are a winner %d", i), fmt.Sprintf("%sTicket %d.\r\n", spammy, 20+i)))
	}
	for i, n := range nodes {
		// Before its refresh a node reads the newsletter as the site
		// did (junk-like); after it, bob's lessons say ham.
		forBob := p1Until(t, n, fmt.Sprintf("BOB%d", i), bob, "Garden Weekly, issue 30", news,
			func(s string) bool { return !strings.Contains(s, "classifier") })
		forAlice := p1Send(t, n, fmt.Sprintf("P1ALICE%d", i), alice, "Garden Weekly, issue 30", news)
		t.Logf("node %d, the newsletter: for alice X-Mailwall-Score:%s, for bob X-Mailwall-Score:%s", i+1, forAlice, forBob)
		if p1Score(forAlice) <= p1Score(forBob) || !strings.Contains(forAlice, "classifier=") {
			t.Errorf("node %d: the newsletter scores %q for alice, %q for bob: want alice's higher, with the classifier's hit", i+1, forAlice, forBob)
		}
	}
	for _, d := range nodes {
		d.alive(t)
	}
}

// TestP1ClickRecipient: a "spam" click in the dashboard (headless
// Chromium) on the verdict of a message to one recipient teaches that
// recipient's statistics, since the verdict kept the recipient's salt
// with its features. Alice clicks "Spam" on four issues of a newsletter
// sent to her, bob "Not spam" on four sent to him: the next issue is
// junk for alice through the milter, and neither for bob nor for carol,
// who taught nothing and reads it as the site does.
func TestP1ClickRecipient(t *testing.T) {
	chromium := requireChromium(t)
	root, bin := e2eRoot(t, "mailwall-p1click-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t), extra: `checks:
  classifier:
    enabled: true
    source: store
    refresh: 1s
    per_recipient: true
    recipient_min_learns: 2
    autolearn:
      enabled: false
`})
	password := hlInitialPassword(t, d.said)
	st, err := store.Open(context.Background(), "sqlite", d.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const (
		alice, bob = "alice@rcpt.test", "bob@rcpt.test"
		spammy     = "Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n" +
			"details and the small processing fee. Limited time exclusive offer, act now.\r\n"
		news = "This week's garden deals: pruning shears, hose reels and raised beds at our members' prices.\r\n" +
			"Read the whole issue on our site. You receive Garden Weekly as a member; unsubscribe at any time.\r\n"
	)
	for i := range 4 {
		p1Learn(t, bin, d.cfg, "spam", "", p1Message(fmt.Sprintf("lot%d", i), "Prize Desk <desk@example.test>", "carol@rcpt.test",
			fmt.Sprintf("Claim your free prize now %d", i), fmt.Sprintf("%sTicket %d.\r\n", spammy, i)))
		p1Learn(t, bin, d.cfg, "ham", "", p1Message(fmt.Sprintf("meet%d", i), "Alice <alice@example.test>", "carol@rcpt.test",
			fmt.Sprintf("Meeting %d", i), fmt.Sprintf("Hi Carol, the release schedule and the test plan for the team meeting %d. Thanks, Alice\r\n", i)))
	}
	for i := range 2 {
		p1Learn(t, bin, d.cfg, "ham", alice, p1Message(fmt.Sprintf("lunch%d", i), "Carol <carol@example.test>", alice,
			fmt.Sprintf("Lunch %d", i), fmt.Sprintf("Hi Alice, lunch on Friday at the usual place, table %d? Carol\r\n", i)))
		p1Learn(t, bin, d.cfg, "spam", bob, p1Message(fmt.Sprintf("blot%d", i), "Prize Desk <desk@example.test>", bob,
			fmt.Sprintf("You are a winner %d", i), fmt.Sprintf("%sTicket %d.\r\n", spammy, 20+i)))
	}
	b := browser(t, chromium)
	base := "http://" + d.web
	if err := chromedp.Do(b, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("user"), "admin"), chromedp.SendKeys(chromedp.ID("password"), password)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.ID("login"))); err != nil {
		t.Fatal(err)
	}
	// Four issues to each: alice clicks "Spam", bob "Not spam". The
	// site learns four of each, and says neither.
	for i := range 4 {
		for _, c := range []struct{ rcpt, button, done string }{{alice, "#learn-spam", "Learnt as spam."}, {bob, "#learn-ham", "Learnt as not spam."}} {
			subject := fmt.Sprintf("Garden Weekly, issue 2%d p1c%s", i, c.rcpt[:1])
			p1Send(t, d, fmt.Sprintf("P1C%s%d", c.rcpt[:1], i), c.rcpt, subject, news)
			v := w2Verdict(t, st, subject)
			page := w2Click(t, b, base, fmt.Sprintf("/verdicts/%d", v.ID), c.button)
			if !strings.Contains(page, c.done) {
				t.Fatalf("after the click on %s:\n%s", subject, page)
			}
		}
	}
	// Carol taught nothing: she has the site's view.
	forAlice := p1Until(t, d, "AFTER", alice, "Garden Weekly, issue 30", news, func(s string) bool { return strings.Contains(s, "classifier=") })
	forBob := p1Send(t, d, "P1CBOB", bob, "Garden Weekly, issue 30", news)
	forCarol := p1Send(t, d, "P1CCAROL", "carol@rcpt.test", "Garden Weekly, issue 30", news)
	t.Logf("after the clicks, the newsletter: for alice X-Mailwall-Score:%s, for bob X-Mailwall-Score:%s, for carol X-Mailwall-Score:%s", forAlice, forBob, forCarol)
	if strings.Contains(forBob, "classifier") || strings.Contains(forCarol, "classifier") || p1Score(forAlice) <= p1Score(forBob) {
		t.Errorf("after the clicks: %q for alice, %q for bob, %q for carol; want the classifier's hit for alice only", forAlice, forBob, forCarol)
	}
	d.alive(t)
}
