package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailwall/internal/labtest"
)

// w3Login logs in to the dashboard at base in the browser.
func w3Login(t *testing.T, b context.Context, base, password string) {
	t.Helper()
	if err := chromedp.Do(b,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("user"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), password),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.ID("login"))); err != nil {
		t.Fatal(err)
	}
	if at, err := chromedp.Run(b, chromedp.Location()); err != nil || strings.Contains(at, "/login") {
		t.Fatalf("login: at %s (%v)", at, err)
	}
}

// w3Layout is how wide a page is laid out against its viewport, and the
// elements that stick out of it (none may: those in a scrolling box are
// clipped by it and do not count).
type w3Layout struct {
	Viewport    int      `json:"viewport"`
	ScrollWidth int      `json:"scrollWidth"`
	Overflowing []string `json:"overflowing"`
}

const w3MeasureLayout = `(() => {
	const vw = document.documentElement.clientWidth;
	const out = [];
	for (const el of document.querySelectorAll('main *, header *')) {
		const r = el.getBoundingClientRect();
		if (r.width === 0 || r.right <= vw + 1) continue;
		let clipped = false;
		for (let p = el.parentElement; p; p = p.parentElement) {
			const ox = getComputedStyle(p).overflowX;
			if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') { clipped = true; break; }
		}
		if (!clipped) out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className : '') + ' right=' + Math.round(r.right));
	}
	return {viewport: vw, scrollWidth: document.documentElement.scrollWidth, overflowing: out.slice(0, 10)};
})()`

// TestW3PhoneLayoutAndReloadedConfig: in Chromium at a phone's 375 px,
// the overview, the verdict list, a verdict's page (with a Subject and
// From of long unbroken words) and the configuration page lay out with
// no horizontal scroll; the overview's time axis has its labels side by
// side. After a SIGHUP the configuration page shows the config the
// reload put in effect (a section that waits for a restart as it runs,
// and says so), and after a broken one says it failed and keeps it; the
// overview lists the failed reload.
func TestW3PhoneLayoutAndReloadedConfig(t *testing.T) {
	chromium := requireChromium(t)
	root, bin := e2eRoot(t, "mailwall-w3-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t)})
	password := hlInitialPassword(t, d.said)

	long := strings.Repeat("Unbroken", 30)
	_, reply := milterSend(t, d.milter, 10*time.Second, milterMsg{host: "stranger.example.org", ip: "127.0.0.3", queueID: "W3LONG1",
		from: "alice@example.test", rcpt: "bob@rcpt.test",
		fields: [][2]string{{"From", " " + long + " <alice@example.test>"}, {"To", " bob@rcpt.test"}, {"Subject", " " + long},
			{"Message-ID", " <" + long + "@example.test>"}},
		body: "Hello.\r\n"})
	if reply.Code != 'y' {
		t.Fatalf("the spoof of a p=reject domain: reply %c %s, want a rejection", reply.Code, reply.Text)
	}
	if _, r, err := deliver(d.milter, "W3OK1"); err != nil || !accepted(r) {
		t.Fatalf("deliver: %v %v", r, err)
	}
	stored := waitStored(t, d.db, []string{"W3LONG1", "W3OK1"}, 30*time.Second)
	spoofID := stored["W3LONG1"].ID

	b := browser(t, chromium)
	base := "http://" + d.web
	if err := chromedp.Do(b, chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulatePortrait)); err != nil {
		t.Fatal(err)
	}
	w3Login(t, b, base, password)

	for _, page := range []struct{ path, wait string }{
		{"/", "chart-spf"},
		{"/?range=7d", "chart-spf"},
		{"/verdicts", "verdicts"},
		{fmt.Sprintf("/verdicts/%d", spoofID), "verdict"},
		{"/config", "config"},
	} {
		if err := chromedp.Do(b, chromedp.Navigate(base+page.path), chromedp.WaitVisible(chromedp.ID(page.wait))); err != nil {
			t.Fatalf("%s: %v", page.path, err)
		}
		l, err := chromedp.Run(b, chromedp.Evaluate[w3Layout](w3MeasureLayout))
		if err != nil {
			t.Fatal(err)
		}
		if l.Viewport != 375 || l.ScrollWidth > l.Viewport || len(l.Overflowing) > 0 {
			t.Errorf("%s at 375 px: viewport %d, laid out %d wide; sticking out: %v", page.path, l.Viewport, l.ScrollWidth, l.Overflowing)
		}
	}
	// The long Subject is on the verdict's page, wrapped, not cut.
	if err := chromedp.Do(b, chromedp.Navigate(fmt.Sprintf("%s/verdicts/%d", base, spoofID)), chromedp.WaitVisible(chromedp.ID("verdict"))); err != nil {
		t.Fatal(err)
	}
	if text, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('main').innerText`)); err != nil || !strings.Contains(strings.ReplaceAll(text, "\n", ""), long) {
		t.Errorf("the verdict page does not show the whole Subject (%v):\n%s", err, text)
	}

	// The time axis at phone width: its labels side by side, none over
	// another.
	type tick struct {
		Text  string  `json:"text"`
		Left  float64 `json:"left"`
		Right float64 `json:"right"`
	}
	if err := chromedp.Do(b, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("chart-spf"))); err != nil {
		t.Fatal(err)
	}
	ticks, err := chromedp.Run(b, chromedp.Evaluate[[]tick](`Array.from(document.querySelectorAll('#chart-spf .xaxis span')).map(s => {
		const r = s.getBoundingClientRect(); return {text: s.innerText, left: r.left, right: r.right}; })`))
	if err != nil || len(ticks) != 5 || ticks[0].Text != "00:00" || ticks[2].Text != "12:00" {
		t.Errorf("time axis: %+v %v, want 5 labels from 00:00", ticks, err)
	}
	for i := 1; i < len(ticks); i++ {
		if ticks[i].Left < ticks[i-1].Right {
			t.Errorf("axis labels %q and %q overlap: %+v", ticks[i-1].Text, ticks[i].Text, ticks)
		}
	}

	// A reload: the hostname changes (applied) and the log level (waits
	// for a restart, so the page shows the running one).
	base0, err := os.ReadFile(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(strings.Replace(string(base0), "hostname: mx.rcpt.test", "hostname: mx2.rcpt.test", 1), "level: info", "level: debug", 1)
	w3Reload(t, d, next, `mailwall_config_reloads_total{outcome="ok"}`)
	config := func() string {
		t.Helper()
		if err := chromedp.Do(b, chromedp.Navigate(base+"/config"), chromedp.WaitVisible(chromedp.ID("config"))); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	text := config()
	for _, want := range []string{"hostname: mx2.rcpt.test", "(1 reload since start)", "take effect only at a restart: log", "level: info"} {
		if !strings.Contains(text, want) {
			t.Errorf("config page after the reload lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "hostname: mx.rcpt.test") || strings.Contains(text, "level: debug") {
		t.Errorf("config page shows what is not in effect:\n%s", text)
	}

	// A broken file: the reload fails, the page says so and keeps mx2.
	w3Reload(t, d, "checks: [this is not a config\n", `mailwall_config_reloads_total{outcome="failed"}`)
	text = config()
	if !strings.Contains(text, "The last reload, at ") || !strings.Contains(text, "failed") || !strings.Contains(text, "hostname: mx2.rcpt.test") {
		t.Errorf("config page after a failed reload:\n%s", text)
	}
	if l, err := chromedp.Run(b, chromedp.Evaluate[w3Layout](w3MeasureLayout)); err != nil || l.ScrollWidth > 375 {
		t.Errorf("config page with the failure at 375 px: %+v %v", l, err)
	}
	if err := chromedp.Do(b, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("chart-spf"))); err != nil {
		t.Fatal(err)
	}
	failed, err := chromedp.Run(b, chromedp.Evaluate[string](`(document.getElementById('failed-reloads') || {innerText: ''}).innerText`))
	if err != nil || !strings.Contains(failed, "Failed config reloads") || !strings.Contains(failed, "kept running") {
		t.Errorf("overview's failed reloads: %q %v", failed, err)
	}
	d.alive(t)
}

// w3Reload writes cfg whole, sends SIGHUP and waits until sample grows.
func w3Reload(t *testing.T, d *daemon, cfg, sample string) {
	t.Helper()
	before := d.metric(t, sample)
	tmp := d.cfg + ".new"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Rename(tmp, d.cfg)
	d.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); d.metric(t, sample) <= before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not grow after SIGHUP:\n%s", sample, d.log())
		}
	}
}
