package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailwall/internal/store"
)

// TestW1FindInBrowser: a real Postfix with mailwall as both its policy
// server and its milter refuses a HELO (milter), refuses a recipient for
// SPF (policy server) and accepts a message; each decision is in the
// store with the reply the client really got, and in headless Chromium
// the verdict list finds them by each search key and their pages say
// why.
func TestW1FindInBrowser(t *testing.T) {
	requirePostfix(t)
	chromium := requireChromium(t)
	root, bin := e2eRoot(t, "mailwall-e2e-w1-")
	dnsAddr, _ := startLabDNS(t, bin)
	policyPort, milterPort, smtpPort, webPort := freePort(t), freePort(t), freePort(t), freePort(t)
	dbPath := filepath.Join(root, "mailwall.db")
	heloTable := filepath.Join(root, "helo_checks")
	os.WriteFile(heloTable, []byte("/^(.+\\.)?desctrl\\.com$/ REJECT\n"), 0o644)
	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`hostname: mx.rcpt.test
dns:
  servers: [%q]
  timeout: 500ms
  attempts: 1
policyd:
  listen: ["inet:127.0.0.1:%d"]
  skip_addresses: []
milter:
  listen: ["inet:127.0.0.1:%d"]
checks:
  helo_regexp_tables: [%q]
admin:
  socket: ""
store:
  dsn: %q
web:
  listen: 127.0.0.1:%d
`, dnsAddr, policyPort, milterPort, heloTable, dbPath, webPort)), 0o644)
	_, said := startProcessOutput(t, "mailwall: web on http://", bin, "serve", "--config", cfg)
	password := hlInitialPassword(t, said)
	startPostfix(t, root, smtpPort, fmt.Sprintf(`smtpd_milters = inet:127.0.0.1:%d
milter_default_action = tempfail
milter_protocol = 6
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:%d
smtpd_policy_service_timeout = 30s
`, milterPort, policyPort))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	start := time.Now()

	// 1. The milter refuses the HELO (net/smtp tries EHLO, then HELO).
	heloErr := sendMessage(smtpAddr, "127.0.0.4", "mail.desctrl.com", "x@desctrl.com", "bob@rcpt.test", "Subject: no\r\n\r\nno\r\n")
	if heloErr == nil || !strings.Contains(heloErr.Error(), "Helo command rejected") {
		t.Fatalf("HELO mail.desctrl.com: %v, want a refusal", heloErr)
	}
	// 2. The policy server refuses the recipient: SPF fail for a -all
	// domain from a host it does not list.
	spfErr := sendMessage(smtpAddr, "127.0.0.3", "stranger.example.org", "alice@example.test", "carol@rcpt.test", "Subject: no\r\n\r\nno\r\n")
	if smtpCode(spfErr) != 550 || !strings.Contains(spfErr.Error(), "5.7.23") {
		t.Fatalf("SPF fail: %v, want 550 5.7.23", spfErr)
	}
	// 3. A message from the SPF-listed host, accepted, with a Reply-To
	// elsewhere for a rule to fire.
	msgID := fmt.Sprintf("w1-%d@example.test", time.Now().UnixNano())
	msg := "From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nReply-To: billing@elsewhere.example.org\r\n" +
		"Subject: =?UTF-8?Q?Quarterly_r=C3=A9port?= w1\r\nMessage-ID: <" + msgID + ">\r\n\r\nHello Bob.\r\n"
	if err := sendMessage(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", msg); err != nil {
		t.Fatalf("send: %v", err)
	}

	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var helo, policy, accepted []store.Verdict
	for range 100 { // the recorder writes in the background
		helo, _ = st.Verdicts(ctx, store.VerdictFilter{Source: "helo"})
		policy, _ = st.Verdicts(ctx, store.VerdictFilter{Source: "policy"})
		accepted, _ = st.Verdicts(ctx, store.VerdictFilter{Source: "milter", MessageID: msgID})
		if len(helo) > 0 && len(policy) > 0 && len(accepted) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(helo) == 0 || len(policy) != 1 || len(accepted) != 1 {
		t.Fatalf("in the store: %d HELO refusals, %d policy refusals, %d accepted with Message-ID %s; want >0, 1, 1", len(helo), len(policy), len(accepted), msgID)
	}
	// What the store says the client was told is what it was told.
	heloReply, spfReply := w1Reply(heloErr), w1Reply(spfErr)
	if h := helo[0]; h.Reply != heloReply || h.ClientIP != "127.0.0.4" || h.Helo != "mail.desctrl.com" || h.Action != "reject" {
		t.Errorf("HELO refusal stored as %+v; the client got %q", h, heloErr)
	}
	p := policy[0]
	if p.Reply != spfReply || p.Stage != "spf" || p.SPF != "fail" || p.MailFrom != "alice@example.test" || !slices.Equal(p.Rcpts, []string{"carol@rcpt.test"}) {
		t.Errorf("policy refusal stored as %+v; the client got %q", p, spfErr)
	}
	a := accepted[0]
	if a.QueueID == "" || a.HeaderFrom != "alice@example.test" || a.Subject != "Quarterly réport w1" || a.Size < int64(len(msg)) || a.ClientName != "unknown" ||
		a.Action != "accept" || len(a.Details.Stages) == 0 || len(a.Details.Headers) == 0 || len(a.Rules) == 0 || len(a.Details.Hits) == 0 || a.Details.Hits[0].Detail == "" {
		t.Fatalf("accepted message stored as %+v", a)
	}
	rule, _, _ := strings.Cut(a.Rules[0], "=")

	b := browser(t, chromium)
	base := fmt.Sprintf("http://127.0.0.1:%d", webPort)
	if err := chromedp.Do(b,
		chromedp.Navigate(base+"/verdicts"),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("user"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), password),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.ID("login"))); err != nil {
		t.Fatal(err)
	}

	heloIDs := func() []int64 {
		var ids []int64
		for _, v := range helo {
			ids = append(ids, v.ID)
		}
		return ids
	}
	// The times the form takes are the server's zone (web.timezone
	// unset: the system's).
	local := func(t time.Time) string { return t.Local().Format("2006-01-02T15:04") }
	for _, c := range []struct {
		name   string
		fields map[string]string
		want   []int64 // any order
	}{
		{"queue ID", map[string]string{"queue": a.QueueID}, []int64{a.ID}},
		{"Message-ID", map[string]string{"msgid": "<" + msgID + ">"}, []int64{a.ID}},
		{"envelope sender", map[string]string{"sender": "Alice@Example.test"}, []int64{a.ID, p.ID}},
		{"recipient", map[string]string{"rcpt": "carol@rcpt.test"}, []int64{p.ID}},
		{"header From", map[string]string{"from": "alice@example.test"}, []int64{a.ID}},
		{"Subject", map[string]string{"subject": "réport"}, []int64{a.ID}},
		{"client IP", map[string]string{"client": "127.0.0.4"}, heloIDs()},
		{"client name", map[string]string{"client": "unknown", "source": "policy"}, []int64{p.ID}},
		{"action", map[string]string{"action": "reject", "client": "127.0.0.3"}, []int64{p.ID}},
		{"rule", map[string]string{"rule": rule}, []int64{a.ID}},
		{"source", map[string]string{"source": "helo"}, heloIDs()},
		{"time range", map[string]string{"since": local(start.Add(-time.Minute)), "until": local(time.Now().Add(2 * time.Minute)), "source": "policy"}, []int64{p.ID}},
		{"time range before", map[string]string{"until": local(start.Add(-2 * time.Minute))}, nil},
	} {
		got := w1Search(t, b, base, c.fields)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("search by %s %v: verdicts %v, want %v", c.name, c.fields, got, want)
		}
	}

	// The policy server's refusal: its page gives the reply the client
	// saw, the check and why, and links to the same client's message.
	detail := w1Detail(t, b, base, p.ID)
	for _, want := range []string{"policy", spfReply, "spf: fail", "protocol_state", "RCPT"} {
		if !strings.Contains(detail, want) {
			t.Errorf("policy refusal's page lacks %q:\n%s", want, detail)
		}
	}
	// The HELO refusal's page.
	detail = w1Detail(t, b, base, helo[0].ID)
	for _, want := range []string{"helo", heloReply, "mail.desctrl.com", "helo_checks"} {
		if !strings.Contains(detail, want) {
			t.Errorf("HELO refusal's page lacks %q:\n%s", want, detail)
		}
	}
	// The accepted message: no "decided by : pass", every rule with its
	// weight and explanation, the headers added.
	detail = w1Detail(t, b, base, a.ID)
	for _, want := range []string{"none: the message was accepted", rule, a.Details.Hits[0].Detail, "X-Mailwall-Verdict", "Authentication-Results", msgID} {
		if !strings.Contains(detail, want) {
			t.Errorf("accepted message's page lacks %q:\n%s", want, detail)
		}
	}
	if strings.Contains(detail, ": pass") {
		t.Errorf(`accepted message's page says "decided by : pass":\n%s`, detail)
	}
}

// w1Reply is the SMTP reply an SMTP command's error carries, as the
// server sent it: "554 5.7.1 text".
func w1Reply(err error) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("%03d %s", te.Code, te.Msg)
	}
	return err.Error()
}

// w1Search fills the verdict search form with fields, submits it as a
// user would, and returns the IDs of the rows listed.
func w1Search(t *testing.T, b context.Context, base string, fields map[string]string) []int64 {
	t.Helper()
	actions := []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/verdicts"), chromedp.WaitVisible(chromedp.ID("search"))}
	for name, value := range fields {
		actions = append(actions, chromedp.SetValue(chromedp.CSS(`#search [name="`+name+`"]`), value))
	}
	if err := chromedp.Do(b, actions...); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.CSS(`#search button`))); err != nil {
		t.Fatal(err)
	}
	ids, err := chromedp.Run(b, chromedp.Evaluate[[]int64](`Array.from(document.querySelectorAll('#verdicts tr[data-id]')).map(r => parseInt(r.dataset.id, 10))`))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// w1Detail opens a verdict from the list, by its link, and returns the
// page's main text.
func w1Detail(t *testing.T, b context.Context, base string, id int64) string {
	t.Helper()
	if err := chromedp.Do(b, chromedp.Navigate(base+"/verdicts?before="+fmt.Sprint(id+1)), chromedp.WaitVisible(chromedp.ID("verdicts"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#verdicts tr[data-id="%d"] td a`, id)))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	return text
}
