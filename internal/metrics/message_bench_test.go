package metrics

import (
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/phish"
	"mailwall/internal/verdict"
)

// zones is an analyzer report with ZoneOutcomes, as dnsbl's.
type zones map[string]string

func (z zones) ZoneOutcomes() map[string]string { return z }

// BenchmarkMessage is the counting of one message as serve's milter does
// it with everything on: the action, each stage's result, the phishing
// band and three blocklist zones' outcomes.
func BenchmarkMessage(b *testing.B) {
	m := New()
	r := &verdict.Result{Action: verdict.Accept, Phish: &phish.Report{}, DKIM: []dkim.Result{{Status: "pass"}},
		Analyses: []verdict.Analysis{{Name: "phish"}, {Name: "dnsbl"}}}
	r.Analyses[1].Report = zones{"zen.bl.test": "not_listed_cached", "bl2.bl.test": "not_listed_cached", "dbl.bl.test": "not_listed_cached"}
	r.SPF.Result, r.DMARC.Result, r.IPRev.Result, r.ARC.Result = "pass", "pass", "pass", "none"
	b.ReportAllocs()
	for b.Loop() {
		m.Message(r, time.Millisecond)
	}
}

// BenchmarkMessageParallel is BenchmarkMessage from as many goroutines
// as GOMAXPROCS, as serve's connections count at once.
func BenchmarkMessageParallel(b *testing.B) {
	m := New()
	r := &verdict.Result{Action: verdict.Accept, Phish: &phish.Report{}, DKIM: []dkim.Result{{Status: "pass"}},
		Analyses: []verdict.Analysis{{Name: "phish"}, {Name: "dnsbl"}}}
	r.Analyses[1].Report = zones{"zen.bl.test": "not_listed_cached", "bl2.bl.test": "not_listed_cached", "dbl.bl.test": "not_listed_cached"}
	r.SPF.Result, r.DMARC.Result, r.IPRev.Result, r.ARC.Result = "pass", "pass", "pass", "none"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Message(r, time.Millisecond)
		}
	})
}
