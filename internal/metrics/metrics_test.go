package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
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
