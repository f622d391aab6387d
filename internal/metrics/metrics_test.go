package metrics

import (
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/netguard"
	"mailwall/internal/phish"
	"mailwall/internal/verdict"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMessageCounts(t *testing.T) {
	m := New()
	r := &verdict.Result{Action: verdict.Reject, Stage: "dmarc", Phish: &phish.Report{Score: 45}}
	r.SPF.Result = "fail"
	r.DMARC.Result = "fail"
	r.IPRev.Result = "pass"
	r.DKIM = []dkim.Result{{Status: "fail"}, {Status: "pass"}}
	m.Message(r, 3*time.Millisecond)
	m.Message(r, 40*time.Millisecond)
	m.StoreErrors(2)
	m.Report("sent")
	m.WatchCache(func() dnsx.CacheStats { return dnsx.CacheStats{Entries: 7, Hits: 30, Misses: 10} })
	out := scrape(t, m)
	for _, want := range []string{
		`mailwall_messages_total{action="reject",stage="dmarc"} 2`,
		`mailwall_stage_results_total{result="fail",stage="spf"} 2`,
		`mailwall_stage_results_total{result="fail",stage="dkim"} 2`,
		`mailwall_stage_results_total{result="pass",stage="dkim"} 2`,
		`mailwall_stage_results_total{result="30-59",stage="phish"} 2`,
		`mailwall_check_duration_seconds_count{interface="milter"} 2`,
		`mailwall_check_duration_seconds_bucket{interface="milter",le="0.005"} 1`,
		`mailwall_store_errors_total 2`,
		`mailwall_dmarc_reports_total{outcome="sent"} 1`,
		`mailwall_dns_cache_lookups_total{outcome="hit"} 30`,
		`mailwall_dns_cache_entries 7`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestListenerCounts: the listeners' netguard counters, one family each
// with the listener label; functions watched under one name are summed
// (the milter listening on two sockets). Before, only the policy server's
// were exported, under names of its own.
func TestListenerCounts(t *testing.T) {
	m := New()
	m.WatchListener("milter", func() netguard.Stats {
		return netguard.Stats{Open: 3, TemporaryErrors: 7, Evicted: 5, PerPeerRefused: 2}
	})
	m.WatchListener("milter", func() netguard.Stats { return netguard.Stats{Open: 1, TemporaryErrors: 1} })
	m.WatchListener("web", func() netguard.Stats { return netguard.Stats{Open: 2, PerPeerRefused: 9} })
	out := scrape(t, m)
	for _, want := range []string{
		`mailwall_listener_connections_open{listener="milter"} 4`,
		`mailwall_listener_accept_errors_total{listener="milter"} 8`,
		`mailwall_listener_connections_evicted_total{listener="milter"} 5`,
		`mailwall_listener_connections_refused_total{listener="milter"} 2`,
		`mailwall_listener_connections_open{listener="web"} 2`,
		`mailwall_listener_accept_errors_total{listener="web"} 0`,
		`mailwall_listener_connections_refused_total{listener="web"} 9`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestReportOutcomesDocumented: every outcome counted under
// mailwall_dmarc_reports_total is named in its help text (received_-
// unauthenticated and refused came with issue 23, and were not).
func TestReportOutcomesDocumented(t *testing.T) {
	m := New()
	m.Report("sent")
	var help string
	for line := range strings.SplitSeq(scrape(t, m), "\n") {
		if strings.HasPrefix(line, "# HELP mailwall_dmarc_reports_total ") {
			help = line
		}
	}
	// What cmd/mailwall's report inbox and internal/report count.
	for _, outcome := range []string{"sent", "retry", "failed", "dropped", "failure_sent", "failure_failed", "failure_dropped",
		"failure_rate_limited", "received", "received_unauthenticated", "malformed", "refused"} {
		if !regexp.MustCompile(`[ (]` + outcome + `[,;:)]`).MatchString(help) {
			t.Errorf("help does not name %s: %s", outcome, help)
		}
	}
}

// TestGreylistOutcomes: greylisting decisions counted by outcome, each
// outcome greylist.Check gives named in the help.
func TestGreylistOutcomes(t *testing.T) {
	m := New()
	m.Greylist("deferred")
	m.Greylist("deferred")
	m.Greylist("passed")
	out := scrape(t, m)
	for _, want := range []string{`mailwall_greylist_total{outcome="deferred"} 2`, `mailwall_greylist_total{outcome="passed"} 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, outcome := range []string{"deferred", "passed", "auto_allowed", "error", "not_subject", "exempt"} {
		if !strings.Contains(out, " "+outcome+" (") && !strings.Contains(out, " "+outcome+".") && !strings.Contains(out, " "+outcome+",") {
			t.Errorf("help does not name %s", outcome)
		}
	}
}

// TestDNSBLCounts: blocklist lookups by zone and outcome, and the action
// of each check.
func TestDNSBLCounts(t *testing.T) {
	m := New()
	m.DNSBL(map[string]string{"bl.example.test": "listed", "slow.example.test": "error"}, "reject")
	m.DNSBL(map[string]string{"bl.example.test": "not_listed", "slow.example.test": "error"}, "none")
	out := scrape(t, m)
	for _, want := range []string{
		`mailwall_dnsbl_lookups_total{outcome="listed",zone="bl.example.test"} 1`,
		`mailwall_dnsbl_lookups_total{outcome="not_listed",zone="bl.example.test"} 1`,
		`mailwall_dnsbl_lookups_total{outcome="error",zone="slow.example.test"} 2`,
		`mailwall_dnsbl_actions_total{action="reject"} 1`,
		`mailwall_dnsbl_actions_total{action="none"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
