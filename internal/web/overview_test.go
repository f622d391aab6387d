package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has

	"mailwall/internal/dmarc"
	"mailwall/internal/store"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestOverviewRanges: each range starts and ends where the admin's clock
// has whole hours and days, also in a zone half an hour off UTC, and
// today has its 23 hours on the day summer time starts.
func TestOverviewRanges(t *testing.T) {
	kolkata, berlin := mustZone(t, "Asia/Kolkata"), mustZone(t, "Europe/Berlin")
	now := time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC) // 21:00 in Kolkata
	for _, c := range []struct {
		rng          string
		now          time.Time
		since, until string
		bars         int
	}{
		{"today", now.In(kolkata), "2026-11-22 00:00 +0530", "2026-11-23 00:00 +0530", 24},
		{"24h", now.In(kolkata), "2026-11-21 22:00 +0530", "2026-11-22 22:00 +0530", 24},
		{"7d", now.In(kolkata), "2026-11-16 00:00 +0530", "2026-11-23 00:00 +0530", 28},
		{"30d", now.In(kolkata), "2026-10-24 00:00 +0530", "2026-11-23 00:00 +0530", 30},
		{"today", time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), "2026-03-29 00:00 +0100", "2026-03-30 00:00 +0200", 23},
	} {
		for _, r := range overviewRanges {
			if r.Name != c.rng {
				continue
			}
			since, until, bars := r.bounds(c.now)
			if got := since.Format("2006-01-02 15:04 -0700"); got != c.since {
				t.Errorf("%s at %v: since %s, want %s", c.rng, c.now, got, c.since)
			}
			if got := until.Format("2006-01-02 15:04 -0700"); got != c.until || bars != c.bars {
				t.Errorf("%s at %v: until %s with %d bars, want %s with %d", c.rng, c.now, got, bars, c.until, c.bars)
			}
		}
	}
}

// TestOverviewToday: the front page in the admin's zone (Tokyo, where it
// is already tomorrow): today's mail only, the time axis in local hours,
// the scale, top reasons and rules, a failed reload and a failed report
// delivery; the config page shows the config a reload put in effect and
// says the last reload failed.
func TestOverviewToday(t *testing.T) {
	tokyo := mustZone(t, "Asia/Tokyo")
	var run Running
	s := newSite(t, func(d *Dashboard) {
		d.Location = tokyo
		d.Running = func() Running { return run }
	})
	// 15:30 UTC is 00:30 on the 23rd in Tokyo.
	run = Running{YAML: []byte("hostname: reloaded.rcpt.test\n"), Path: "/etc/mailwall/mailwall.yaml", Loaded: s.now.Add(-20 * time.Minute),
		Reloads: []Reload{
			{At: s.now.Add(-48 * time.Hour), Error: "an old failure"},
			{At: s.now.Add(-20 * time.Minute), OK: true},
			{At: s.now.Add(-10 * time.Minute), Error: "checks.phish.brands_file: /etc/mailwall/brands.yaml: no such file"},
		}}
	ctx := context.Background()
	mk := func(at time.Time, action, stage string, rules ...string) store.Verdict {
		return store.Verdict{At: at, Node: "mx1", QueueID: "Q", ClientIP: "192.0.2.7", Helo: "h.test", MailFrom: "a@bank.test", FromDomain: "bank.test",
			Rcpts: []string{"bob@rcpt.test"}, Action: action, Stage: stage, Verdict: "fail", DMARC: "fail", Rules: rules,
			Reasons: []string{stage + ": the reason " + strings.Repeat("long-", 60)}}
	}
	if err := s.st.InsertVerdicts(ctx, []store.Verdict{
		mk(s.now.Add(-5*time.Minute), "reject", "dmarc", "brand_from_domain=45"),
		mk(s.now.Add(-6*time.Minute), "quarantine", "score", "brand_from_domain=45", "fresh_domain=10"),
		mk(s.now.Add(-40*time.Minute), "reject", "spf"), // 23:50 on the 22nd in Tokyo: yesterday
	}); err != nil {
		t.Fatal(err)
	}
	r := &store.ReportOut{PolicyDomain: "bank.test", Begin: s.now.Add(-25 * time.Hour), End: s.now.Add(-time.Hour), ReportID: "r1", Filename: "f.xml.gz",
		Created: s.now.Add(-10 * time.Minute), GZ: []byte{1}}
	if _, err := s.st.SaveReport(ctx, r, []dmarc.URI{{URI: "mailto:rua@bank.test"}}); err != nil {
		t.Fatal(err)
	}
	due, err := s.st.DueDeliveries(ctx, time.Time{})
	if err != nil || len(due) != 1 {
		t.Fatal(due, err)
	}
	due[0].State, due[0].Attempts, due[0].LastError = store.Failed, 3, "550 5.1.1 <rua@bank.test>: no such user"
	if err := s.st.FinishDelivery(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	c := s.client()
	s.login(t, c)

	code, body, _ := fetch(t, c, "GET", s.URL+"/", nil)
	if code != http.StatusOK {
		t.Fatalf("overview: %d\n%s", code, body)
	}
	for _, want := range []string{
		`<span id="period">2026-11-23 00:00 to 2026-11-24 00:00</span> <small id="zone">times in JST (UTC&#43;09:00)</small>`,
		`data-action="reject"><a href="/verdicts?action=reject">1</a>`, `data-action="all">2<`, // today's two only
		`<div class="yaxis" aria-hidden="true"><span>2</span><span>1</span><span>0</span></div>`,
		`<div class="xaxis" aria-hidden="true"><span>00:00</span><span>06:00</span><span>12:00</span><span>18:00</span><span>00:00</span></div>`,
		`<p class="unit">messages per hour</p>`,
		`<title>2026-11-23 00:00 to 01:00: 0 accept 0 tag 1 quarantine 1 reject 0 tempfail 0 other</title>`, // the actions chart
		`<span class="key reject"></span> reject <b class="n-reject">1</b>`,
		`<title>2026-11-23 00:00 to 01:00: 0 pass, 2 fail, 0 other, 0 none</title>`,
		`· total <b class="n-total">2</b>`,
		`<td>dmarc</td><td><a href="/verdicts?action=reject">reject</a></td><td>1</td><td class="wrap">dmarc: the reason long-`,
		`<a href="/verdicts?rule=brand_from_domain">brand_from_domain</a></td><td>2</td><td>2</td><td>45</td>`,
		`<a href="/verdicts?rule=fresh_domain">fresh_domain</a></td><td>1</td><td>1</td><td>10</td>`,
		`id="failed-reloads"`, `2026-11-23 00:20:00</span>: <span class="wrap">checks.phish.brands_file: /etc/mailwall/brands.yaml: no such file</span>`,
		`id="failed-deliveries"`, `1 DMARC report delivery was given up`, `<a href="/deliveries">`,
		`550 5.1.1 &lt;rua@bank.test&gt;: no such user`,
		`Config in effect since 2026-11-23 00:10:00.`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	for _, not := range []string{"an old failure", `<td>spf</td>`} {
		if strings.Contains(body, not) {
			t.Errorf("overview shows %q, outside today", not)
		}
	}
	if n := strings.Count(body, `<g class="bar"`); n != 5*24 {
		t.Errorf("%d bars, want 24 for each of 5 stages", n)
	}
	if n := strings.Count(body, `<g class="mbar"`); n != 24 {
		t.Errorf("%d bars of actions, want 24", n)
	}
	// The last 24 hours take yesterday's reject in.
	_, body, _ = fetch(t, c, "GET", s.URL+"/?range=24h", nil)
	if !strings.Contains(body, `data-action="all">3<`) || !strings.Contains(body, `<td>spf</td>`) {
		t.Errorf("24h range lacks yesterday's reject")
	}

	_, body, _ = fetch(t, c, "GET", s.URL+"/config", nil)
	for _, want := range []string{`hostname: reloaded.rcpt.test`, `<code class="wrap">/etc/mailwall/mailwall.yaml</code>`,
		`in effect since <span id="config-loaded">2026-11-23 00:10:00</span>`, `(3 reloads since start)`,
		`id="reload-failed">The last reload, at 2026-11-23 00:20:00, failed`} {
		if !strings.Contains(body, want) {
			t.Errorf("config page lacks %s", want)
		}
	}
	if strings.Contains(body, "mx.rcpt.test") {
		t.Error("config page shows the config of the start, not the one in effect")
	}
}

// TestConfigPageWithoutRunning: without Running, the config given at the
// start is shown, with no reload line.
func TestConfigPageWithoutRunning(t *testing.T) {
	s := newSite(t)
	c := s.client()
	s.login(t, c)
	_, body, _ := fetch(t, c, "GET", s.URL+"/config", nil)
	if !strings.Contains(body, "hostname: mx.rcpt.test") || !strings.Contains(body, "the embedded defaults") || strings.Contains(body, "reload") {
		t.Errorf("config page:\n%s", body)
	}
}
