package dnsbl

import (
	"context"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// BenchmarkAnalyzeCached is the analyzer on bench/milter -all's shape of
// mail and lists, the answers in the cache: two IP lists (one of weight
// 3), one domain list of weight 2, a message from example.test signed by
// it, one link; nothing listed. The cost every message pays once warm.
func BenchmarkAnalyzeCached(b *testing.B) {
	srv := labtest.Serve(b, labZones(b)...)
	client := &dnsx.Client{Servers: []string{srv.Addr()}, Timeout: time.Second, Attempts: 1}
	cache := dnsx.NewCache(client, dnsx.CacheOptions{})
	a := &Analyzer{C: New(cache, Options{IPSites: mustSites(b, "zen.example.test*3 bl2.example.test"),
		DomainSites: mustSites(b, "dbl.example.test*2")}), Points: 20}
	m := amsg{client: "198.51.100.10", from: "example.test", envelope: "example.test", dkim: []string{"example.test"},
		links: []string{"https://www.example.test/account/statement?id=4711"}}
	ctx := context.Background()
	want := map[string]string{"zen.example.test": "not_listed_cached", "bl2.example.test": "not_listed_cached", "dbl.example.test": "not_listed_cached"}
	msg := m.message() // its content decoded once, as the pipeline shares it
	check := func() {
		r := a.Analyze(ctx, msg)
		rep := r.Report.(*Report)
		if len(r.Hits) != 0 || len(r.Problems) != 0 || len(rep.Zones) != 3 {
			b.Fatalf("hits %v problems %v zones %v", r.Hits, r.Problems, rep.Zones)
		}
		for z, o := range want {
			if rep.Zones[z] != o {
				b.Fatalf("zones %v, want %v", rep.Zones, want)
			}
		}
	}
	a.Analyze(ctx, msg) // warm the cache
	check()
	b.ReportAllocs()
	for b.Loop() {
		check()
	}
}
