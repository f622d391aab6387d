package web

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/store"
)

// w1Decisions are one client's HELO refusal, the policy server's SPF
// refusal of one recipient, then its accepted message, and another
// client's rejected message.
func w1Decisions(now time.Time) []store.Verdict {
	helo := store.Verdict{At: now.Add(-50 * time.Minute), Node: "mx1", Source: "helo", ClientIP: "192.0.2.7", ClientName: "mail.bank.test",
		Helo: "desctrl.com", Action: "reject", Stage: "helo", Verdict: "fail", Reply: "554 5.7.1 <desctrl.com>: Helo command rejected: Access denied",
		Reasons: []string{"helo: helo_access: REJECT"}, Details: store.Details{Stages: []store.StageResult{{Stage: "helo", Result: "fail", Reason: "helo_access: REJECT"}}}}
	policy := store.Verdict{At: now.Add(-45 * time.Minute), Node: "mx1", Source: "policy", ClientIP: "192.0.2.7", ClientName: "mail.bank.test",
		Helo: "mail.bank.test", MailFrom: "a@bank.test", Rcpts: []string{"carol@rcpt.test"}, Action: "reject", Stage: "spf", Verdict: "fail", SPF: "fail",
		Reply: "550 5.7.23 <carol@rcpt.test>: Recipient address rejected: Message rejected due to: SPF fail", Reasons: []string{"spf: fail for mailfrom bank.test"},
		Details: store.Details{Facts: []store.Fact{{Name: "protocol_state", Value: "RCPT"}}}}
	accepted := store.Verdict{At: now.Add(-40 * time.Minute), Node: "mx1", Source: "milter", QueueID: "4XyZ9", ClientIP: "192.0.2.7", ClientName: "mail.bank.test",
		Helo: "mail.bank.test", MailFrom: "a@bank.test", FromDomain: "bank.test", Rcpts: []string{"bob@rcpt.test"}, Action: "accept", Verdict: "pass",
		IPRev: "pass", SPF: "pass", DMARC: "pass", HeaderFrom: "a@bank.test", MessageID: "m1@bank.test", Subject: "Quarterly <b>report</b>", Size: 4321,
		Score: 12, Rules: []string{"reply_to_other_org=12"},
		Details: store.Details{
			Stages:  []store.StageResult{{Stage: "spf", Result: "pass", Reason: "domain bank.test; matched ip4:192.0.2.0/24"}, {Stage: "dmarc", Result: "pass", Reason: "policy domain bank.test, p=reject"}},
			Hits:    []store.Hit{{Rule: "reply_to_other_org", Weight: 12, Detail: "Reply-To elsewhere.test is outside bank.test's organization"}},
			Headers: []store.Header{{Name: "X-Mailwall-Verdict", Value: "pass"}, {Name: "Authentication-Results", Value: "mx1; spf=pass smtp.mailfrom=bank.test"}},
		}}
	other := store.Verdict{At: now.Add(-5 * time.Minute), Node: "mx1", Source: "milter", QueueID: "5AB", ClientIP: "198.51.100.9", MailFrom: "x@shop.test",
		Action: "reject", Stage: "dmarc", Verdict: "fail", Subject: store.SubjectHash("secret words"), Reply: "550 5.7.1 rejected", Rules: []string{"brand_from_domain=45"}}
	return []store.Verdict{helo, policy, accepted, other}
}

var w1RowIDs = regexp.MustCompile(`<tr data-id="(\d+)"`)

func TestVerdictSearchPage(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	s := newSite(t, func(d *Dashboard) { d.Location = tokyo })
	vs := w1Decisions(s.now)
	if err := s.st.InsertVerdicts(context.Background(), vs); err != nil {
		t.Fatal(err)
	}
	id := func(i int) string { return itoa(vs[i].ID) }
	c := s.client()
	s.login(t, c)
	for _, tc := range []struct {
		query string
		want  []string // ids, newest first
	}{
		{"queue=4XyZ9", []string{id(2)}},
		{"msgid=%3Cm1@bank.test%3E", []string{id(2)}},
		{"sender=a@bank.test", []string{id(2), id(1)}},
		{"sender=bank.test", []string{id(2), id(1)}},
		{"rcpt=carol", []string{id(1)}},
		{"from=a@bank.test", []string{id(2)}},
		{"subject=quarterly", []string{id(2)}},
		{"subject=secret+words", []string{id(3)}},
		{"client=192.0.2.7", []string{id(2), id(1), id(0)}},
		{"client=bank.test", []string{id(2), id(1), id(0)}},
		{"action=reject", []string{id(3), id(1), id(0)}},
		{"rule=brand_from_domain", []string{id(3)}},
		{"source=helo", []string{id(0)}},
		{"source=policy&action=reject", []string{id(1)}},
		// 2026-11-22 15:30 UTC is 2026-11-23 00:30 in Tokyo: the form's
		// times are the admin's.
		{"since=2026-11-23T00:20&until=2026-11-23T00:30", []string{id(3)}},
		{"since=2026-11-22T23:30&until=2026-11-22T23:48", []string{id(1), id(0)}},
		{"queue=nothing", nil},
	} {
		code, body, _ := fetch(t, c, "GET", s.URL+"/verdicts?"+tc.query, nil)
		var got []string
		for _, m := range w1RowIDs.FindAllStringSubmatch(body, -1) {
			got = append(got, m[1])
		}
		if code != http.StatusOK || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %d, rows %v, want %v", tc.query, code, got, tc.want)
		}
	}
	_, body, _ := fetch(t, c, "GET", s.URL+"/verdicts?queue=4XyZ9", nil)
	for _, want := range []string{`<th>time (JST)</th>`, `2026-11-22 23:50:00`, `<td>pass</td>`, `Quarterly &lt;b&gt;report&lt;/b&gt;`, `value="4XyZ9"`} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %s", want)
		}
	}
	if strings.Contains(body, ": pass") || strings.Contains(body, "<b>report") {
		t.Errorf("list shows \": pass\" or unescaped Subject:\n%s", body)
	}
	_, body, _ = fetch(t, c, "GET", s.URL+"/verdicts?since=yesterday", nil)
	if !strings.Contains(body, "since: a date and time such as 2026-11-23T00:30") {
		t.Errorf("a bad time is not explained:\n%s", body)
	}
	if code, _, _ := fetch(t, c, "GET", s.URL+"/verdicts?q="+strings.Repeat("x", 5000), nil); code != http.StatusRequestURITooLong {
		t.Errorf("a 5000-character search: %d", code)
	}
}

func TestVerdictDetailPage(t *testing.T) {
	s := newSite(t)
	vs := w1Decisions(s.now)
	if err := s.st.InsertVerdicts(context.Background(), vs); err != nil {
		t.Fatal(err)
	}
	c := s.client()
	s.login(t, c)
	code, body, _ := fetch(t, c, "GET", s.URL+"/verdicts/"+itoa(vs[2].ID), nil)
	if code != http.StatusOK {
		t.Fatalf("detail: %d", code)
	}
	for _, want := range []string{
		`id="v-decided">pass<`, `none: the message was accepted`,
		`<tr data-stage="spf"><td>spf</td><td class="r-pass">pass</td><td>domain bank.test; matched ip4:192.0.2.0/24</td>`,
		`<tr data-rule="reply_to_other_org"><td><a href="/verdicts?rule=reply_to_other_org">reply_to_other_org</a></td><td class="num">12</td><td>Reply-To elsewhere.test is outside bank.test&#39;s organization</td>`,
		`<td>X-Mailwall-Verdict</td><td class="wrap"><code>pass</code>`, `mx1; spf=pass smtp.mailfrom=bank.test`,
		`href="/verdicts?msgid=m1%40bank.test"`, `href="/verdicts?from=a%40bank.test"`, `4321 octets`, `Quarterly &lt;b&gt;report&lt;/b&gt;`,
		// joined: the HELO and policy refusals of its client before it
		`id="related"`, `<tr data-id="` + itoa(vs[0].ID) + `" data-source="helo"`, `<tr data-id="` + itoa(vs[1].ID) + `" data-source="policy"`,
		`550 5.7.23 &lt;carol@rcpt.test&gt;: Recipient address rejected`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("detail lacks %s", want)
		}
	}
	if strings.Contains(body, ": pass") {
		t.Error(`"decided by : pass" is back`)
	}
	if strings.Contains(body, `data-id="`+itoa(vs[3].ID)+`"`) {
		t.Error("another client's message shown as related")
	}
	_, body, _ = fetch(t, c, "GET", s.URL+"/verdicts/"+itoa(vs[1].ID), nil)
	for _, want := range []string{`id="v-source">policy`, `id="v-reply"><code>550 5.7.23 &lt;carol@rcpt.test&gt;: Recipient address rejected: Message rejected due to: SPF fail</code>`,
		`<th>protocol_state</th><td>RCPT</td>`, `data-source="milter"`} {
		if !strings.Contains(body, want) {
			t.Errorf("policy detail lacks %s", want)
		}
	}
	// The actions template gets the verdict as its page's Content.
	if strings.Contains(body, "verdict_actions") {
		t.Error("actions template not defined")
	}
	if code, _, _ := fetch(t, c, "GET", s.URL+"/verdicts/x1", nil); code != http.StatusNotFound {
		t.Errorf("a bad ID: %d", code)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
