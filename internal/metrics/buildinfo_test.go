package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBuildInfoMetric(t *testing.T) {
	rec := httptest.NewRecorder()
	New().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var line string
	for l := range strings.SplitSeq(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "mailwall_build_info{") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("no mailwall_build_info in /metrics")
	}
	for _, want := range []string{`goversion="go1.`, `revision="`, `version="`} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %s", line, want)
		}
	}
	if !strings.HasSuffix(line, "} 1") {
		t.Errorf("%q is not 1", line)
	}
}

// TestAlertedSeriesStartAtZero: the alert rules' increase() sees the
// first failed reload or report delivery only if the series was 0 before.
func TestAlertedSeriesStartAtZero(t *testing.T) {
	rec := httptest.NewRecorder()
	New().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`mailwall_config_reloads_total{outcome="failed"} 0`,
		`mailwall_dmarc_reports_total{outcome="failed"} 0`,
		`mailwall_dmarc_reports_total{outcome="failure_failed"} 0`,
		`mailwall_store_errors_total 0`,
	} {
		if !strings.Contains(rec.Body.String(), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
