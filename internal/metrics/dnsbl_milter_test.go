package metrics

import (
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/dnsbl"
	"mailwall/internal/verdict"
)

// TestMessageCountsDNSBLZones: a milter message's dnsbl analyzer report
// adds each zone's outcome to the lookups the policy server counts.
func TestMessageCountsDNSBLZones(t *testing.T) {
	m := New()
	rep := &dnsbl.Report{Zones: map[string]string{"dbl.example.test": "listed", "zen.example.test": "not_listed", "slow.example.test": "error"}}
	r := &verdict.Result{Action: verdict.Tag, Stage: "score", Analyses: []verdict.Analysis{{Name: "dnsbl", Result: analysis.Result{Report: rep}}}}
	m.Message(r, time.Millisecond)
	m.Message(r, time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		`mailwall_dnsbl_lookups_total{outcome="listed",zone="dbl.example.test"} 2`,
		`mailwall_dnsbl_lookups_total{outcome="not_listed",zone="zen.example.test"} 2`,
		`mailwall_dnsbl_lookups_total{outcome="error",zone="slow.example.test"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(out, "mailwall_dnsbl_actions_total") && strings.Contains(out, `mailwall_dnsbl_actions_total{`) {
		t.Errorf("a milter message counted as a policy server action")
	}
}
