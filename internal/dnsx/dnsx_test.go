package dnsx_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

func zone(t *testing.T, records ...string) *labdns.Zone {
	return labtest.Zone(t, "example.test", records...)
}

func labServer(t *testing.T, zones ...*labdns.Zone) *labdns.Server {
	return labtest.Serve(t, zones...)
}

// fakeClock is a settable clock for the cache's TTL arithmetic; the DNS
// traffic stays real.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTCPFallbackOnTruncation(t *testing.T) {
	long := "v=spf1 " + strings.Repeat("ip4:192.0.2.1 ", 60) + "-all" // ~850 octets
	var parts []string
	for i := 0; i < len(long); i += 200 {
		parts = append(parts, `"`+long[i:min(i+200, len(long))]+`"`)
	}
	s := labServer(t, zone(t, "@ IN TXT "+strings.Join(parts, " ")))
	for _, size := range []uint16{512, 0} {
		c := &dnsx.Client{Servers: []string{s.Addr()}, UDPSize: size}
		if size == 512 {
			// A client advertising only 512 octets gets TC over UDP.
			a, err := c.Query(context.Background(), "example.test", dns.TypeTXT)
			if err != nil {
				t.Fatal(err)
			}
			if !a.TCP {
				t.Error("answer over 512 octets was not fetched over TCP")
			}
			txts, _ := dnsx.TXT(context.Background(), c, "example.test")
			if len(txts) != 1 || txts[0] != long {
				t.Errorf("TXT over TCP = %q", txts)
			}
		} else {
			a, err := c.Query(context.Background(), "example.test", dns.TypeTXT)
			if err != nil || a.TCP {
				t.Errorf("EDNS 1232 should fit %d octets in UDP: tcp=%v err=%v", len(long), a != nil && a.TCP, err)
			}
		}
	}
}

func TestCacheHonoursTTL(t *testing.T) {
	s := labServer(t, zone(t, "www 60 IN A 127.0.0.1"))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}}, dnsx.CacheOptions{Now: clock.Now})
	ctx := context.Background()
	ip := func() string {
		ips, err := dnsx.IPs(ctx, cache, "www.example.test", dns.TypeA)
		if err != nil || len(ips) != 1 {
			t.Fatalf("lookup: %v %v", ips, err)
		}
		return ips[0].String()
	}
	if got := ip(); got != "127.0.0.1" {
		t.Fatalf("first answer %s", got)
	}
	s.SetZones(zone(t, "www 60 IN A 127.0.0.2"))
	clock.Advance(20 * time.Second)
	// Peek shows what the cache believes and for how long, and is no hit.
	if a, left, ok := cache.Peek("www.example.test", dns.TypeA); !ok || left != 40*time.Second || a.Records[0].(*dns.A).A.String() != "127.0.0.1" {
		t.Errorf("Peek after 20s: %v %v %v", a, left, ok)
	}
	if _, _, ok := cache.Peek("other.example.test", dns.TypeA); ok {
		t.Error("Peek found a name never asked")
	}
	clock.Advance(39 * time.Second)
	if got := ip(); got != "127.0.0.1" {
		t.Errorf("within TTL the cache answered %s, want the cached 127.0.0.1", got)
	}
	clock.Advance(2 * time.Second)
	if got := ip(); got != "127.0.0.2" {
		t.Errorf("after TTL the cache answered %s, want the new 127.0.0.2", got)
	}
	if st := cache.Stats(); st.Hits != 1 || st.Misses != 2 {
		t.Errorf("stats %+v, want 1 hit and 2 misses", st)
	}
}

func TestNegativeCaching(t *testing.T) {
	s := labServer(t, zone(t))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}}, dnsx.CacheOptions{Now: clock.Now})
	ctx := context.Background()
	a, err := cache.Query(ctx, "new.example.test", dns.TypeA)
	if err != nil || !a.NXDomain() || a.TTL != 30 {
		t.Fatalf("NXDOMAIN: %+v %v (want TTL 30 from SOA MINIMUM)", a, err)
	}
	s.SetZones(zone(t, "new IN A 127.0.0.3"))
	clock.Advance(29 * time.Second)
	if a, _ := cache.Query(ctx, "new.example.test", dns.TypeA); !a.NXDomain() {
		t.Error("negative answer not cached for the SOA MINIMUM")
	}
	clock.Advance(2 * time.Second)
	if a, _ := cache.Query(ctx, "new.example.test", dns.TypeA); a.Empty() {
		t.Error("negative answer outlived its TTL")
	}
}

func TestFlush(t *testing.T) {
	s := labServer(t, zone(t, `@ IN TXT "v=spf1 -all"`))
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}}, dnsx.CacheOptions{})
	ctx := context.Background()
	dnsx.TXT(ctx, cache, "example.test")
	dnsx.TXT(ctx, cache, "nx.example.test")
	s.SetZones(zone(t, `@ IN TXT "v=spf1 mx -all"`, `nx IN TXT "x"`))
	if txt, _ := dnsx.TXT(ctx, cache, "example.test"); txt[0] != "v=spf1 -all" {
		t.Fatalf("cache did not hold the record: %q", txt)
	}
	if n := cache.FlushName("EXAMPLE.test."); n != 1 {
		t.Errorf("FlushName dropped %d entries, want 1", n)
	}
	if txt, _ := dnsx.TXT(ctx, cache, "example.test"); txt[0] != "v=spf1 mx -all" {
		t.Errorf("after FlushName: %q", txt)
	}
	if txt, _ := dnsx.TXT(ctx, cache, "nx.example.test"); len(txt) != 0 {
		t.Fatalf("negative entry not cached before Flush: %q", txt)
	}
	cache.Flush()
	if st := cache.Stats(); st.Entries != 0 {
		t.Errorf("%d entries after Flush", st.Entries)
	}
	if txt, _ := dnsx.TXT(ctx, cache, "nx.example.test"); len(txt) != 1 {
		t.Errorf("after Flush: %q", txt)
	}
}

func TestCacheBounded(t *testing.T) {
	s := labServer(t, zone(t, "a IN A 127.0.0.1", "b IN A 127.0.0.1", "c IN A 127.0.0.1"))
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}}, dnsx.CacheOptions{MaxEntries: 2})
	for _, n := range []string{"a", "b", "a", "c"} {
		cache.Query(context.Background(), n+".example.test", dns.TypeA)
	}
	st := cache.Stats()
	if st.Entries != 2 || st.Evictions != 1 {
		t.Errorf("stats %+v, want 2 entries and 1 eviction", st)
	}
	// "b" was least recently used, so it went; "a" is still cached.
	before := cache.Stats().Hits
	cache.Query(context.Background(), "a.example.test", dns.TypeA)
	if cache.Stats().Hits != before+1 {
		t.Error("recently used entry was evicted")
	}
}

func TestTimeoutIsTemporaryAndNotCached(t *testing.T) {
	c := &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 100 * time.Millisecond, Attempts: 2}
	cache := dnsx.NewCache(c, dnsx.CacheOptions{})
	start := time.Now()
	_, err := cache.Query(context.Background(), "example.test", dns.TypeTXT)
	if err == nil || !dnsx.IsTemporary(err) || !errors.Is(err, dnsx.ErrTimeout) {
		t.Fatalf("err = %v, want a temporary timeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("two 100ms attempts took %v", el)
	}
	if st := cache.Stats(); st.Entries != 0 {
		t.Error("a timeout was cached")
	}
}

func TestNextServerAfterFailure(t *testing.T) {
	good := labServer(t, zone(t, "www IN A 127.0.0.1"))
	// A lab server for another zone REFUSES example.test: the client must
	// move on to the next server, as it must after a silent one.
	refusing := labServer(t)
	c := &dnsx.Client{Servers: []string{labtest.Silent(t), refusing.Addr(), good.Addr()}, Timeout: 100 * time.Millisecond, Attempts: 1}
	a, err := c.Query(context.Background(), "www.example.test", dns.TypeA)
	if err != nil || len(a.Records) != 1 || a.Server != good.Addr() {
		t.Fatalf("answer %+v err %v, want one from %s", a, err, good.Addr())
	}
	c.Servers = c.Servers[:2]
	if _, err := c.Query(context.Background(), "www.example.test", dns.TypeA); !dnsx.IsTemporary(err) || !errors.Is(err, dnsx.ErrServFail) {
		t.Errorf("all servers failing: err %v, want a temporary server failure", err)
	}
}

func TestContextCancelStopsQuery(t *testing.T) {
	c := &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 5 * time.Second, Attempts: 3}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Query(ctx, "example.test", dns.TypeA)
	if !dnsx.IsTemporary(err) {
		t.Errorf("err %v, want temporary", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("cancelled query ran %v", el)
	}
}

func TestTXTEscapesRoundTrip(t *testing.T) {
	raw := "v=spf1 \"quoted\" back\\slash \x00\x7f\xff end"
	s := labServer(t, zone(t))
	z := zone(t)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: "bin.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{dnsx.EscapeTXT(raw)}}
	z2, err := labdns.NewZone(append(z.Records(), rr))
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(z2)
	txt, err := dnsx.TXT(context.Background(), &dnsx.Client{Servers: []string{s.Addr()}}, "bin.example.test")
	if err != nil || len(txt) != 1 || txt[0] != raw {
		t.Errorf("TXT = %q, %v; want %q", txt, err, raw)
	}
}

func TestCacheEntries(t *testing.T) {
	s := labServer(t, zone(t, `@ IN TXT "v=spf1 -all"`, "mx IN A 127.0.0.9"))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}}, dnsx.CacheOptions{Now: clock.Now})
	ctx := context.Background()
	dnsx.TXT(ctx, cache, "example.test")
	cache.Query(ctx, "nx.example.test", dns.TypeA)
	cache.Query(ctx, "mx.example.test", dns.TypeA)
	got := cache.Entries("", 10)
	if len(got) != 3 || got[0].Name != "mx.example.test." || got[0].Type != dns.TypeA || len(got[0].Records) != 1 ||
		!strings.Contains(got[0].Records[0], "127.0.0.9") || got[1].Rcode != dns.RcodeNameError || got[2].Records[0] == "" {
		t.Fatalf("entries, most recent first: %+v", got)
	}
	if got := cache.Entries("NX.", 10); len(got) != 1 || got[0].Name != "nx.example.test." {
		t.Errorf("filtered: %+v", got)
	}
	if got := cache.Entries("", 1); len(got) != 1 {
		t.Errorf("limit: %+v", got)
	}
	clock.Advance(time.Hour)
	if got := cache.Entries("", 10); len(got) != 0 {
		t.Errorf("expired entries listed: %+v", got)
	}
}

// TestOnServerErrorNamesEachServer: the hook hears of every server that
// failed, with the kind of failure, even when a later one answered, and
// of none that answered.
func TestOnServerErrorNamesEachServer(t *testing.T) {
	good := labServer(t, zone(t, "www IN A 127.0.0.1"))
	refusing, silent := labServer(t), labtest.Silent(t)
	var mu sync.Mutex
	got := map[string]error{}
	c := &dnsx.Client{Servers: []string{silent, refusing.Addr(), good.Addr()}, Timeout: 100 * time.Millisecond, Attempts: 1,
		OnServerError: func(server string, err error) { mu.Lock(); got[server] = err; mu.Unlock() }}
	if _, err := c.Query(context.Background(), "www.example.test", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		server string
		kind   error
	}{{silent, dnsx.ErrTimeout}, {refusing.Addr(), dnsx.ErrServFail}} {
		if !errors.Is(got[w.server], w.kind) {
			t.Errorf("%s: hook heard %v, want %v", w.server, got[w.server], w.kind)
		}
	}
	if err, ok := got[good.Addr()]; ok || len(got) != 2 {
		t.Errorf("hook heard %d servers (%v), the answering one %v", len(got), got, err)
	}
}
