package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailwall/internal/dmarc"
	"mailwall/internal/labtest"
	"mailwall/internal/pgtest"
	"mailwall/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestReportSendCrash kills "mailwall report send-now" with SIGKILL in
// the middle of a report's SMTP transaction (the sink holds its answer to
// RCPT TO), starts it again, and counts at the receiving SMTP sink: every
// report arrives exactly once. On SQLite and
// on PostgreSQL (where the send lock is an advisory lock that dies with
// the killed process's connection).
// yesterdaysReportable is yesterday's mail, perDomain messages an hour
// apart from each of the domains d0.test, d1.test, ..., each domain asking
// for aggregate reports to dmarc@ itself; node names the MX of message i.
func yesterdaysReportable(domains, perDomain int, node func(i int) string) []store.Verdict {
	yesterday := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	var vs []store.Verdict
	for d := range domains {
		dom := fmt.Sprintf("d%d.test", d)
		uris, _ := dmarc.ParseURIs("mailto:dmarc@" + dom)
		for i := range perDomain {
			vs = append(vs, store.Verdict{At: yesterday.Add(time.Duration(i) * time.Hour), Node: node(i), ClientIP: "192.0.2.1", FromDomain: dom, Action: "accept",
				DMARCRow: &store.DMARCRow{RUA: uris, RI: -1, Row: dmarc.Row{SourceIP: netip.MustParseAddr("192.0.2.1"), HeaderFrom: dom, EnvelopeFrom: dom,
					PolicyDomain: dom, Published: dmarc.PublishedPolicy{Domain: dom, P: "reject"}, Disposition: dmarc.ReportPass,
					DKIMAligned: "pass", SPFAligned: "pass", SPFDomain: dom, SPFResult: "pass"}}})
		}
	}
	return vs
}

// oneReportEach checks that the sink holds exactly one report for each
// of yesterdaysReportable's domains, and nothing else.
func oneReportEach(t *testing.T, sink *labtest.Sink, domains int) {
	t.Helper()
	perRcpt := map[string]int{}
	for _, m := range sink.Messages() {
		perRcpt[m.To[0]]++
	}
	for d := range domains {
		if got := perRcpt[fmt.Sprintf("dmarc@d%d.test", d)]; got != 1 {
			t.Errorf("d%d.test got %d reports, want exactly 1", d, got)
		}
	}
	if len(sink.Messages()) != domains {
		t.Errorf("%d messages at the sink, want %d", len(sink.Messages()), domains)
	}
}

func TestReportSendCrash(t *testing.T) {
	root := t.TempDir()
	bin := buildMailwall(t, root)
	dns := labtest.Serve(t, labtest.Zone(t, "test"))
	const domains = 6
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			dir := t.TempDir()
			dsn := filepath.Join(dir, "mailwall.db")
			if driver == "postgres" {
				dsn = pgtest.DSN(t)
			}
			ctx := context.Background()
			st, err := store.Open(ctx, driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			// Yesterday's mail from six domains, each asking for reports.
			vs := yesterdaysReportable(domains, 10, func(int) string { return "mx" })
			if err := st.InsertVerdicts(ctx, vs); err != nil {
				t.Fatal(err)
			}
			sink := labtest.NewSink(t)
			cfg := filepath.Join(dir, "mailwall.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("hostname: mx.receiver.test\nlog:\n  level: debug\ndns:\n  servers: [%q]\nstore:\n  driver: %s\n  dsn: %q\nreports:\n  relay: %q\n",
				dns.Addr(), driver, dsn, sink.Addr())), 0o600)

			// The third message stalls at RCPT TO; then the sender is killed.
			var n atomic.Int32
			stalled, release := make(chan struct{}), make(chan struct{})
			sink.Stall(func() {
				if n.Add(1) == 3 {
					close(stalled)
					<-release
				}
			})
			cmd := exec.Command(bin, "report", "send-now", "--config", cfg)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-stalled:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("the sender never reached the third report:\n%s", stderr.String())
			}
			cmd.Process.Kill() // SIGKILL: no clean-up of any kind
			cmd.Wait()
			close(release)
			sink.Stall(nil)
			time.Sleep(100 * time.Millisecond) // the sink sees the connection drop
			if got := len(sink.Messages()); got != 2 {
				t.Fatalf("%d messages at the sink after the crash, want 2", got)
			}

			// Restarted: the interrupted delivery is recovered and the rest sent.
			for run := range 2 {
				out, err := exec.Command(bin, "report", "send-now", "--config", cfg).CombinedOutput()
				if err != nil {
					t.Fatalf("send-now after the crash: %v\n%s", err, out)
				}
				if run == 0 && !strings.Contains(string(out), "made 0 reports; sent 4") || !strings.Contains(string(out), "recovered after a crash: "+map[int]string{0: "1", 1: "0"}[run]) {
					t.Errorf("run %d: %s", run, out)
				}
			}
			oneReportEach(t, sink, domains)
			reports, _ := st.Reports(ctx, store.ReportFilter{})
			for _, r := range reports {
				if d := r.Deliveries[0]; d.State != store.Sent {
					t.Errorf("%s: %+v", r.PolicyDomain, d)
				}
			}
		})
	}
}
