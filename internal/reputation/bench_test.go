package reputation_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/reputation"
)

// BenchmarkAnalyze is the analyzer's cost per message: "cached" is a
// sender seen before (every identity and the From address in memory),
// the common case; "miss" a new DKIM domain and network each message,
// one read of a SQLite store (and of its correspondents) apiece.
func BenchmarkAnalyze(b *testing.B) {
	ctx := context.Background()
	st := openStore(b)
	rep := reputation.New(st, reputation.DefaultConfig(), nil)
	a := &reputation.Analyzer{Rep: rep, Rules: reputation.DefaultRules()}
	rep.Add(reputation.Identities{FromDomain: "friend.example", DKIM: []string{"friend.example"}, Net: "192.0.2.0/24"}, 30, 0)
	rep.Wrote([]string{"alice@friend.example"})
	if err := rep.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		m := msg("alice@friend.example", "pass", []string{"friend.example"}, "192.0.2.1")
		a.Analyze(ctx, m)
		b.ReportAllocs()
		for b.Loop() {
			if out := a.Analyze(ctx, m); len(out.Hits) != 2 {
				b.Fatalf("hits %v", out.Hits)
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			d := fmt.Sprintf("d%d.example", i)
			m := msg("x@"+d, "pass", []string{d}, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), 1}).String())
			a.Analyze(ctx, m)
		}
	})
}

// BenchmarkObserve is an outcome turned into pending evidence, the
// milter's work after the reply ("memory"), and with the batches
// written to SQLite every 1,000 messages, as the writer does in its own
// goroutine ("sqlite").
func BenchmarkObserve(b *testing.B) {
	ctx := context.Background()
	for _, flush := range []bool{false, true} {
		b.Run(map[bool]string{false: "memory", true: "sqlite"}[flush], func(b *testing.B) {
			st := openStore(b)
			rep := reputation.New(st, reputation.DefaultConfig(), nil)
			a := &reputation.Analyzer{Rep: rep, Rules: reputation.DefaultRules()}
			var reports []*reputation.Report
			for i := range 1000 {
				d := fmt.Sprintf("d%d.example", i)
				out := a.Analyze(ctx, msg("x@"+d, "pass", []string{d}, "192.0.2.1"))
				reports = append(reports, out.Report.(*reputation.Report))
			}
			hits := []analysis.Hit{{Rule: "auth_none", Weight: 5}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rep.Observe(reputation.Outcome{Action: "accept", Hits: hits, Report: reports[i%len(reports)], Probability: -1})
				i++
				if flush && i%1000 == 0 {
					if err := rep.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
