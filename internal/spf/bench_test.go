package spf

import (
	"context"
	"net/netip"
	"testing"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// benchChecker serves the lab zones on loopback and returns a checker
// using them through a cache, and the cache.
func benchChecker(b *testing.B) (*Checker, *dnsx.Cache) {
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{labtest.Lab(b)}}, dnsx.CacheOptions{})
	return &Checker{Resolver: cache}, cache
}

// BenchmarkCheckWarm is one MAIL FROM evaluation ("a" mechanism of
// mail.example.test's record: TXT and A lookups) with a warm cache.
func BenchmarkCheckWarm(b *testing.B) {
	c, _ := benchChecker(b)
	ip := netip.MustParseAddr("127.0.0.2")
	ctx := context.Background()
	if o := c.CheckMailFrom(ctx, ip, "a@mail.example.test", "mail.example.test"); o.Result != Pass {
		b.Fatalf("warm-up: %+v", o)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if o := c.CheckMailFrom(ctx, ip, "a@mail.example.test", "mail.example.test"); o.Result != Pass {
				b.Fatalf("%+v", o)
			}
		}
	})
}

// BenchmarkCheckCold is the same evaluation with an empty cache each time:
// every lookup is a UDP exchange with the lab server.
func BenchmarkCheckCold(b *testing.B) {
	c, cache := benchChecker(b)
	ip := netip.MustParseAddr("127.0.0.2")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		cache.Flush()
		if o := c.CheckMailFrom(ctx, ip, "a@mail.example.test", "mail.example.test"); o.Result != Pass {
			b.Fatalf("%+v", o)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	rec := "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx/24 include:_spf.example.com exists:%{ir}.%{l1r+-}._spf.%{d} ~all"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(rec); err != nil {
			b.Fatal(err)
		}
	}
}
