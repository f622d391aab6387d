package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mailwall/internal/store"
)

// requireChromium finds Debian's chromium, as requirePostfix finds
// Postfix.
func requireChromium(t *testing.T) string {
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatal("MAILWALL_E2E=1 but chromium is not installed")
		}
		t.Skip("chromium not installed (apt-get install chromium, or sudo make test-deps)")
	}
	return path
}

// browser starts a headless Chromium that reaches loopback only: every
// other name resolves to nothing, and the background services that call
// home are off.
func browser(t *testing.T, path string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// TestDashboardInBrowser sends mail through real Postfix and mailwall,
// then logs in to the dashboard with the first-run password in headless
// Chromium: the verdicts are there, and the charts' figures are the
// store's.
func TestDashboardInBrowser(t *testing.T) {
	requirePostfix(t)
	chromium := requireChromium(t)
	root, bin := e2eRoot(t, "mailwall-e2e-web-")
	dnsAddr, _ := startLabDNS(t, bin)
	milterPort, smtpPort, webPort := freePort(t), freePort(t), freePort(t)
	dbPath := filepath.Join(root, "mailwall.db")
	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(milterConfig(dnsAddr, milterPort)+fmt.Sprintf(`admin:
  socket: ""
store:
  dsn: %q
web:
  listen: 127.0.0.1:%d
`, dbPath, webPort)), 0o644)
	_, said := startProcessOutput(t, "mailwall: web on http://", bin, "serve", "--config", cfg)
	password := hlInitialPassword(t, said)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:127.0.0.1:%d\nmilter_default_action = tempfail\nmilter_protocol = 6\n", milterPort))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	body := func(subject string) string {
		return fmt.Sprintf("From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: %s\r\nMessage-ID: <%d@example.test>\r\n\r\nHello Bob.\r\n", subject, time.Now().UnixNano())
	}
	// From example.test's SPF-listed host: accepted (DMARC pass by SPF).
	if err := sendMessage(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", body("web-pass")); err != nil {
		t.Fatalf("send: %v", err)
	}
	// A spoof of the p=reject domain from elsewhere: 550.
	if err := sendMessage(smtpAddr, "127.0.0.3", "stranger.example.org", "alice@example.test", "bob@rcpt.test", body("web-spoof")); smtpCode(err) != 550 {
		t.Fatalf("spoof: %v, want 550", err)
	}

	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var spoof *store.Verdict
	for range 100 { // the recorder writes in the background
		vs, _ := st.Verdicts(ctx, store.VerdictFilter{Action: "reject", ClientIP: "127.0.0.3"})
		if len(vs) == 1 {
			spoof = &vs[0]
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if spoof == nil || spoof.QueueID == "" {
		t.Fatalf("the spoof's verdict is not in the store: %+v", spoof)
	}

	b := browser(t, chromium)
	base := fmt.Sprintf("http://127.0.0.1:%d", webPort)

	t.Run("login, then the verdict of the spoof is listed", func(t *testing.T) {
		type row struct {
			QueueID string   `json:"queue"`
			Cells   []string `json:"cells"`
		}
		const listRows = `Array.from(document.querySelectorAll('#verdicts tr[data-id]')).map(r =>
			({queue: r.dataset.queueId, cells: Array.from(r.cells).map(c => c.innerText.trim())}))`
		err := chromedp.Do(b,
			chromedp.Navigate(base+"/verdicts"),
			chromedp.WaitVisible(chromedp.ID("password")),
			chromedp.SendKeys(chromedp.ID("user"), "admin"),
			chromedp.SendKeys(chromedp.ID("password"), password),
		)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.ID("login"))); err != nil {
			t.Fatal(err)
		}
		at, err := chromedp.Run(b, chromedp.Location())
		if err != nil || !strings.HasSuffix(at, "/verdicts") {
			text, _ := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
			t.Fatalf("after login at %s (%v), want the page asked for; the page says:\n%s", at, err, text)
		}
		rows, err := chromedp.Run(b, chromedp.Evaluate[[]row](listRows))
		if err != nil {
			t.Fatal(err)
		}
		var seen *row
		for i := range rows {
			if rows[i].QueueID == spoof.QueueID {
				seen = &rows[i]
			}
		}
		// Columns: time, action, decided by, From domain, MAIL FROM,
		// client, iprev, SPF, DKIM, DMARC, ARC, score, queue ID, then
		// source, header From, Subject, recipients (w1_find_test.go).
		if seen == nil || len(seen.Cells) != 17 || seen.Cells[13] != "milter" || seen.Cells[15] != "web-spoof" || seen.Cells[1] != "reject" || seen.Cells[2] != "dmarc: fail" || seen.Cells[3] != "example.test" ||
			!strings.HasPrefix(seen.Cells[5], "127.0.0.3") || seen.Cells[7] != "fail" || seen.Cells[9] != "fail" || seen.Cells[12] != spoof.QueueID ||
			seen.Cells[0] != spoof.At.UTC().Format("2006-01-02 15:04:05") {
			t.Fatalf("the spoof (queue ID %s) as shown: %+v\nall rows: %+v", spoof.QueueID, seen, rows)
		}
		if len(rows) != 2 {
			t.Errorf("%d verdicts listed, want the 2 sent", len(rows))
		}

		// The filter form, used as a user would: only the rejection.
		if err := chromedp.Do(b, chromedp.SetValue(chromedp.CSS(`select[name="action"]`), "reject")); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.CSS(`form.filters button`))); err != nil {
			t.Fatal(err)
		}
		filtered, err := chromedp.Run(b, chromedp.Evaluate[[]row](listRows))
		if err != nil || len(filtered) != 1 || filtered[0].QueueID != spoof.QueueID {
			t.Errorf("filtered by action=reject: %+v %v", filtered, err)
		}

		// Its page gives the reasons.
		if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.CSS(`#verdicts tr[data-id] td a`))); err != nil {
			t.Fatal(err)
		}
		detail, err := chromedp.Run(b, chromedp.Text(chromedp.ID("verdict")))
		if err != nil || !strings.Contains(detail, spoof.Reasons[0]) || !strings.Contains(detail, "stranger.example.org") {
			t.Errorf("verdict page: %v\n%s", err, detail)
		}
	})

	t.Run("the charts show the store's figures", func(t *testing.T) {
		type figure struct {
			Stage   string           `json:"stage"`
			Shown   map[string]int64 `json:"shown"` // the visible figures
			Rate    string           `json:"rate"`
			Starts  []string         `json:"starts"`
			Bars    [][4]int64       `json:"bars"`    // pass, fail, other, none per bar
			Heights [][4]float64     `json:"heights"` // drawn heights, same order
		}
		if err := chromedp.Do(b, chromedp.Navigate(base+"/?range=24h"), chromedp.WaitVisible(chromedp.ID("chart-spf"))); err != nil {
			t.Fatal(err)
		}
		figs, err := chromedp.Run(b, chromedp.Evaluate[[]figure](`Array.from(document.querySelectorAll('figure.chart')).map(f => {
			const shown = {};
			for (const k of ['pass', 'fail', 'other', 'none']) shown[k] = parseInt(f.querySelector('b.n-' + k).innerText, 10);
			const bars = Array.from(f.querySelectorAll('g.bar'));
			const h = (g, c) => { const r = g.querySelector('rect.' + c); return r ? r.getBoundingClientRect().height : 0; };
			return {stage: f.dataset.stage, shown, rate: f.querySelector('b.rate').innerText,
				starts: bars.map(g => g.dataset.start),
				bars: bars.map(g => ['pass', 'fail', 'other', 'none'].map(c => parseInt(g.dataset[c], 10))),
				heights: bars.map(g => ['pass', 'fail', 'other', 'none'].map(c => h(g, c)))};
		})`))
		if err != nil {
			t.Fatal(err)
		}
		if len(figs) != len(store.Stages) || len(figs[0].Starts) != 24 {
			t.Fatalf("%d charts of %d bars", len(figs), len(figs[0].Starts))
		}
		since, err := time.Parse("2006-01-02 15:04:05", figs[0].Starts[0])
		if err != nil {
			t.Fatal(err)
		}
		want, err := st.StageRates(ctx, since, since.Add(24*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range figs {
			w := want[i]
			if f.Stage != w.Stage {
				t.Fatalf("chart %d is %s, want %s", i, f.Stage, w.Stage)
			}
			tot := w.Total
			if f.Shown["pass"] != tot.Pass || f.Shown["fail"] != tot.Fail || f.Shown["other"] != tot.Other || f.Shown["none"] != tot.None {
				t.Errorf("%s: shown %v, store %+v", f.Stage, f.Shown, tot)
			}
			if ev := tot.Total() - tot.None; ev > 0 {
				if rate := fmt.Sprintf("%.0f%%", 100*float64(tot.Pass)/float64(ev)); f.Rate != rate {
					t.Errorf("%s: pass rate %s, store says %s", f.Stage, f.Rate, rate)
				}
			}
			for j, got := range f.Bars {
				c := w.Buckets[j]
				if got != [4]int64{c.Pass, c.Fail, c.Other, c.None} {
					t.Errorf("%s bar %s: %v, store %+v", f.Stage, f.Starts[j], got, c)
				}
				for k, n := range got {
					if (n > 0) != (f.Heights[j][k] > 0) {
						t.Errorf("%s bar %s: count %d drawn %.1f px high", f.Stage, f.Starts[j], n, f.Heights[j][k])
					}
				}
			}
		}
		// Both messages were judged: SPF passed one and failed the other.
		if s := want[1].Total; want[1].Stage != "spf" || s.Pass != 1 || s.Fail != 1 {
			t.Errorf("spf in the store: %+v", want[1])
		}
	})

	t.Run("the DNS cache is shown and flushed from the browser", func(t *testing.T) {
		if err := chromedp.Do(b, chromedp.Navigate(base+"/dns")); err != nil {
			t.Fatal(err)
		}
		entries, err := chromedp.Run(b, chromedp.Text(chromedp.ID("dns-entries")))
		if err != nil || !strings.Contains(entries, "_dmarc.example.test.") || !strings.Contains(entries, "v=DMARC1") {
			t.Errorf("cache entries shown (%v):\n%s", err, entries)
		}
		if _, err := chromedp.RunResponse(b, chromedp.Click(chromedp.ID("flush"))); err != nil {
			t.Fatal(err)
		}
		notice, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(".notice")))
		if err != nil || !strings.HasPrefix(notice, "Flushed: everything (") || strings.HasPrefix(notice, "Flushed: everything (0 ") {
			t.Errorf("after flush: %q %v", notice, err)
		}
		after, err := chromedp.Run(b, chromedp.Text(chromedp.ID("cache-stats")))
		if err != nil || !strings.HasPrefix(after, "0 answers cached") {
			t.Errorf("cache after flush: %q %v", after, err)
		}
	})
}
