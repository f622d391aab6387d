package dnsbl

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// rel is the record name of ip in a zone file whose origin is the list.
func rel(ip string) string {
	return strings.TrimSuffix(ipQueryName(netip.MustParseAddr(ip), "x"), ".x")
}

// labZones are the lists the tests ask, served by lab DNS on loopback.
func labZones(t testing.TB) []*labdns.Zone {
	return []*labdns.Zone{
		labtest.Zone(t, "zen.example.test",
			rel("127.0.0.2")+" A 127.0.0.2", // RFC 5782 §5 test point
			rel("127.0.0.2")+` TXT "test point"`,
			rel("192.0.2.1")+" A 127.0.0.2",
			rel("192.0.2.1")+" A 127.0.0.4",
			rel("192.0.2.1")+` TXT "Listed by SBL and XBL, see https://example.test/lookup?ip=192.0.2.1"`,
			rel("192.0.2.2")+" A 127.0.0.10", // PBL only
			rel("192.0.2.3")+" A 127.0.0.20", // a code no site wants
			rel("192.0.2.4")+" A 127.255.255.254",
			rel("192.0.2.5")+" A 192.0.2.99",
			rel("192.0.2.6")+" A 127.0.0.1",
			rel("192.0.2.12")+" A 127.255.255.252",
			rel("192.0.2.13")+" A 127.255.255.255",
			rel("192.0.2.14")+" A 127.255.255.100",
			rel("192.0.2.15")+" A 127.0.0.2",
			rel("192.0.2.15")+" A 10.0.0.1", // one bogus answer spoils all
			rel("2001:db8::1")+" A 127.0.0.3",
			rel("::ffff:127.0.0.2")+" A 127.0.0.2", // the IPv6 test point
		),
		labtest.Zone(t, "bl2.example.test",
			rel("127.0.0.2")+" A 127.0.0.2",
			rel("192.0.2.1")+" A 127.0.0.2",
			rel("192.0.2.1")+` TXT "bad \007bell\001 and `+strings.Repeat("x", 300)+`"`,
		),
		labtest.Zone(t, "wl.example.test",
			rel("127.0.0.2")+" A 127.0.10.2",
			rel("192.0.2.7")+" A 127.0.10.3",
			rel("192.0.2.8")+" A 127.0.5.1",
			rel("192.0.2.9")+" A 127.0.0.255", // dnswl.org: over the limit
		),
		labtest.Zone(t, "dbl.example.test",
			"test A 127.0.1.2", // RFC 5782 §5 test point for domain lists
			"evil.example A 127.0.1.2",
			"evil.example TXT \"phishing domain\"",
			"xn--bcher-kva.example A 127.0.1.5",
			"host.cdn.example A 127.0.1.12",
			"refuse.example A 127.0.1.255",
		),
		labtest.Zone(t, "broken.example.test", // answers everything
			"* A 127.0.0.2",
		),
	}
}

var labSites = "zen.example.test=127.0.0.[2..9]*3, zen.example.test=127.0.0.[10;11]*1, bl2.example.test, " +
	"wl.example.test=127.0.[0..255].[2..3]*-4 wl.example.test=127.0.[0..255].1*-2"

func labChecker(t testing.TB, opts Options) (*Checker, *labdns.Server) {
	t.Helper()
	srv := labtest.Serve(t, labZones(t)...)
	client := &dnsx.Client{Servers: []string{srv.Addr()}, Timeout: time.Second, Attempts: 1}
	if opts.IPSites == nil {
		opts.IPSites = mustSites(t, labSites)
	}
	if opts.DomainSites == nil {
		opts.DomainSites = mustSites(t, "dbl.example.test=127.0.1.[2..99]*5")
	}
	return New(client, opts), srv
}

func mustSites(t testing.TB, s string) []Site {
	t.Helper()
	sites, err := ParseSites(s)
	if err != nil {
		t.Fatal(err)
	}
	return sites
}

func explanations(r *Result) []string {
	var out []string
	for _, h := range r.Hits {
		out = append(out, h.Explanation())
	}
	return out
}

func errorKinds(r *Result) []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Zone+":"+e.Kind.String())
	}
	return out
}

func TestCheckIP(t *testing.T) {
	c, _ := labChecker(t, Options{})
	for _, tc := range []struct {
		name  string
		ip    string
		score int
		hits  []string
		errs  []string
		why   string // a piece of the first error's text
	}{
		{name: "listed in two zones, two answers in one",
			ip: "192.0.2.1", score: 4,
			hits: []string{
				"192.0.2.1 is listed in zen.example.test (127.0.0.2, 127.0.0.4): weight 3",
				"192.0.2.1 is listed in bl2.example.test (127.0.0.2): weight 1",
			}},
		{name: "second site of a zone", ip: "192.0.2.2", score: 1,
			hits: []string{"192.0.2.2 is listed in zen.example.test (127.0.0.10): weight 1"}},
		{name: "answer filtered out by every site", ip: "192.0.2.3"},
		{name: "not listed anywhere", ip: "198.51.100.1"},
		{name: "allow list", ip: "192.0.2.7", score: -4,
			hits: []string{"192.0.2.7 is listed in wl.example.test (127.0.10.3): weight -4"}},
		{name: "allow list, other site", ip: "192.0.2.8", score: -2,
			hits: []string{"192.0.2.8 is listed in wl.example.test (127.0.5.1): weight -2"}},
		{name: "Spamhaus public resolver code", ip: "192.0.2.4",
			errs: []string{"zen.example.test:refused"}, why: "public or open resolver"},
		{name: "Spamhaus typing error code", ip: "192.0.2.12",
			errs: []string{"zen.example.test:refused"}, why: "typing error"},
		{name: "Spamhaus excessive queries code", ip: "192.0.2.13",
			errs: []string{"zen.example.test:refused"}, why: "excessive"},
		{name: "Spamhaus error range", ip: "192.0.2.14",
			errs: []string{"zen.example.test:refused"}, why: "127.255.255.0/24"},
		{name: "answer outside 127/8", ip: "192.0.2.5",
			errs: []string{"zen.example.test:bogus"}, why: "outside 127.0.0.0/8"},
		{name: "one bogus answer among good ones", ip: "192.0.2.15",
			errs: []string{"zen.example.test:bogus"}, why: "10.0.0.1"},
		{name: "URIBL/SURBL refusal code", ip: "192.0.2.6",
			errs: []string{"zen.example.test:refused"}, why: "127.0.0.1"},
		{name: "dnswl.org refusal code", ip: "192.0.2.9",
			errs: []string{"wl.example.test:refused"}, why: "dnswl.org"},
		{name: "IPv6 by nibbles", ip: "2001:db8::1", score: 3,
			hits: []string{"2001:db8::1 is listed in zen.example.test (127.0.0.3): weight 3"}},
		{name: "IPv4-mapped client asked as IPv4", ip: "::ffff:192.0.2.2", score: 1,
			hits: []string{"192.0.2.2 is listed in zen.example.test (127.0.0.10): weight 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.CheckIP(context.Background(), netip.MustParseAddr(tc.ip))
			if r.Score != tc.score || !slices.Equal(explanations(r), tc.hits) || !slices.Equal(errorKinds(r), tc.errs) {
				t.Errorf("score %d hits %q errors %q; want %d %q %q", r.Score, explanations(r), errorKinds(r), tc.score, tc.hits, tc.errs)
			}
			if r.Queries != 3 {
				t.Errorf("%d queries, want 3 (one per zone, not per site)", r.Queries)
			}
			if tc.why != "" && (len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Error(), tc.why)) {
				t.Errorf("errors %v; want one saying %q", r.Errors, tc.why)
			}
		})
	}
	st := c.Stats()
	if st.Refused != 6 || st.Bogus != 2 || st.TempErrors != 0 {
		t.Errorf("stats %+v: want 6 refused, 2 bogus", st)
	}
}

func TestCheckTXTReason(t *testing.T) {
	c, _ := labChecker(t, Options{TXT: true, MaxReason: 60})
	r := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.1"))
	if len(r.Hits) != 2 {
		t.Fatalf("hits %q", explanations(r))
	}
	if got := r.Hits[0].Reason; got != "Listed by SBL and XBL, see https://example.test/lookup?ip=19" {
		t.Errorf("reason %q: want the TXT cut to 60 octets", got)
	}
	// Control characters become '?', the length is bounded.
	if got := r.Hits[1].Reason; !strings.HasPrefix(got, "bad ?bell? and xxx") || len(got) != 60 {
		t.Errorf("reason %q (%d octets): want sanitized and cut to 60", got, len(got))
	}
	if !strings.Contains(r.Hits[0].Explanation(), `weight 3: "Listed by SBL`) {
		t.Errorf("explanation %q lacks the reason", r.Hits[0].Explanation())
	}
	// A listing without TXT is still a listing, with no reason.
	r = c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.2"))
	if len(r.Hits) != 1 || r.Hits[0].Reason != "" || len(r.Errors) != 0 {
		t.Errorf("hits %q errors %v", explanations(r), r.Errors)
	}
	if st := c.Stats(); st.TXTLookups != 3 {
		t.Errorf("TXT lookups %d, want 3 (one per listed zone and subject)", st.TXTLookups)
	}
}

func TestCheckDomains(t *testing.T) {
	c, _ := labChecker(t, Options{})
	for _, tc := range []struct {
		name  string
		hosts []string
		score int
		hits  []string
		errs  []string
	}{
		{name: "registered domain of a host", hosts: []string{"www.evil.example"}, score: 5,
			hits: []string{"evil.example is listed in dbl.example.test (127.0.1.2): weight 5"}},
		{name: "host listed, registered domain not", hosts: []string{"HOST.cdn.example."}, score: 5,
			hits: []string{"host.cdn.example is listed in dbl.example.test (127.0.1.12): weight 5"}},
		{name: "same domain many times is asked once", hosts: []string{"evil.example", "Evil.Example", "evil.example."}, score: 5,
			hits: []string{"evil.example is listed in dbl.example.test (127.0.1.2): weight 5"}},
		{name: "IDNA to A-labels", hosts: []string{"shop.BÜCHER.example"}, score: 5,
			hits: []string{"xn--bcher-kva.example is listed in dbl.example.test (127.0.1.5): weight 5"}},
		{name: "not listed", hosts: []string{"good.example", "mail.good.example"}},
		{name: "refusal code for an address asked of DBL", hosts: []string{"refuse.example"},
			errs: []string{"dbl.example.test:refused"}},
		{name: "IP literal goes to the IP lists", hosts: []string{"[192.0.2.2]"}, score: 1,
			hits: []string{"192.0.2.2 is listed in zen.example.test (127.0.0.10): weight 1"}},
		{name: "IPv6 literal", hosts: []string{"[IPv6:2001:db8::1]"}, score: 3,
			hits: []string{"2001:db8::1 is listed in zen.example.test (127.0.0.3): weight 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.CheckDomains(context.Background(), tc.hosts)
			if r.Score != tc.score || !slices.Equal(explanations(r), tc.hits) || !slices.Equal(errorKinds(r), tc.errs) {
				t.Errorf("score %d hits %q errors %q; want %d %q %q", r.Score, explanations(r), errorKinds(r), tc.score, tc.hits, tc.errs)
			}
		})
	}
}

func TestCheckDomainsBounded(t *testing.T) {
	c, _ := labChecker(t, Options{MaxNames: 4})
	hosts := []string{"a.one.example", "b.one.example", "a.two.example", "evil.example", "x.three.example", "not a domain", "-bad-.example"}
	r := c.CheckDomains(context.Background(), hosts)
	// Registered domains first: one, two, evil, three; the hosts dropped.
	if r.Queries != 4 || r.Dropped != 4 {
		t.Errorf("queries %d dropped %d; want 4 and 4 (4 registered domains kept, 4 hosts dropped)", r.Queries, r.Dropped)
	}
	if r.Score != 5 {
		t.Errorf("score %d: the listed registered domain must be among those kept", r.Score)
	}
	if !slices.Equal(r.Invalid, []string{"not a domain", "-bad-.example"}) {
		t.Errorf("invalid %q", r.Invalid)
	}
	many := make([]string, 1000)
	for i := range many {
		many[i] = strings.Repeat("a", i%50+1) + ".example"
	}
	r = c.CheckDomains(context.Background(), many)
	if r.Queries != 4 {
		t.Errorf("1000 domains made %d queries, want 4", r.Queries)
	}
}

func TestNormalizeDomain(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "Example.COM.", want: "example.com"},
		{in: "bücher.example", want: "xn--bcher-kva.example"},
		{in: "ＥＸＡＭＰＬＥ．ｃｏｍ", want: "example.com"}, // full-width, mapped by UTS #46
		{in: "_dmarc.example.com", want: "_dmarc.example.com"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "", err: "empty"},
		{in: "localhost", err: "single label"},
		{in: "a..example", err: "empty label"},
		{in: "a b.example", err: "character"},
		{in: strings.Repeat("a", 64) + ".example", err: "63"},
		{in: strings.Repeat("abcdefg.", 40) + "example", err: "253"},
	} {
		got, err := NormalizeDomain(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeDomain(%q) = %q, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestQueryNames(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		// RFC 5782 §2.1 and §2.4's examples.
		{"192.0.2.99", "99.2.0.192.bl.example"},
		{"2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"},
		{"::ffff:7f00:2", "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.example"},
	} {
		if got := ipQueryName(netip.MustParseAddr(tc.ip), "bl.example"); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.ip, got, tc.want)
		}
	}
}

// routed sends each zone's questions to its own resolver: one list can time
// out while the others answer, all over real packets.
type routed map[string]dnsx.Resolver

func (r routed) Query(ctx context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	for zone, res := range r {
		if strings.HasSuffix(strings.TrimSuffix(name, "."), "."+zone) {
			return res.Query(ctx, name, qtype)
		}
	}
	return nil, errors.New("no route")
}

// rcodeServer answers every query with rcode.
func rcodeServer(t *testing.T, rcode int) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetRcode(m, rcode)
		w.WriteMsg(resp)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestCheckDNSFailures(t *testing.T) {
	lab := labtest.Serve(t, labZones(t)...)
	good := &dnsx.Client{Servers: []string{lab.Addr()}, Timeout: time.Second, Attempts: 1}
	silent := &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 5 * time.Second, Attempts: 3}
	servfail := &dnsx.Client{Servers: []string{rcodeServer(t, dns.RcodeServerFailure)}, Timeout: time.Second, Attempts: 1}
	c := New(routed{
		"zen.example.test":  good,
		"slow.example.test": silent,
		"fail.example.test": servfail,
		"nope.example.test": good, // not served by lab DNS: REFUSED
	}, Options{
		IPSites: mustSites(t, "zen.example.test*3 slow.example.test*10 fail.example.test*10 nope.example.test*10"),
		Timeout: 150 * time.Millisecond, Budget: time.Second,
	})
	start := time.Now()
	r := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.1"))
	took := time.Since(start)
	if r.Score != 3 || len(r.Hits) != 1 {
		t.Errorf("score %d hits %q: the zone that answered must still count", r.Score, explanations(r))
	}
	want := []string{"slow.example.test:temperror", "fail.example.test:temperror", "nope.example.test:refused"}
	if !slices.Equal(errorKinds(r), want) {
		t.Errorf("errors %q, want %q", errorKinds(r), want)
	}
	if !r.TempErrors() || !dnsx.IsTemporary(r.Errors[0].Err) {
		t.Errorf("a timeout must be a temporary error: %v", r.Errors[0])
	}
	// The silent server's client would wait 15 s; the per-query timeout
	// ends it at 150 ms.
	if took > 600*time.Millisecond {
		t.Errorf("took %v, want about the per-query timeout of 150ms", took)
	}
	if st := c.Stats(); st.TempErrors != 2 || st.Refused != 1 || st.Listed != 1 || st.NotListed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCheckBudget(t *testing.T) {
	silent := &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 5 * time.Second, Attempts: 3}
	var sites []string
	for _, z := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		sites = append(sites, z+".example.test")
	}
	c := New(silent, Options{
		IPSites: mustSites(t, strings.Join(sites, " ")),
		Timeout: 2 * time.Second, Budget: 300 * time.Millisecond, Concurrency: 2,
	})
	start := time.Now()
	r := c.Check(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}, nil)
	took := time.Since(start)
	if took > 800*time.Millisecond {
		t.Errorf("16 questions to a silent server took %v; the budget is 300ms", took)
	}
	if len(r.Errors) != 16 || r.Score != 0 {
		t.Fatalf("errors %d score %d; want 16 temporary errors", len(r.Errors), r.Score)
	}
	unasked := 0
	for _, e := range r.Errors {
		if e.Kind != TempError {
			t.Errorf("%v: want temperror", e)
		}
		if strings.Contains(e.Error(), "budget") {
			unasked++
		}
	}
	// Two in flight at a time: two asked, the rest never sent.
	if unasked != 14 {
		t.Errorf("%d questions left unasked when the budget ran out, want 14", unasked)
	}
	// The caller's own deadline is honoured too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	c.CheckIP(ctx, netip.MustParseAddr("192.0.2.1"))
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("caller's 100ms deadline: took %v", took)
	}
}

func TestCheckConcurrencyBound(t *testing.T) {
	res := &countingResolver{}
	c := New(res, Options{IPSites: mustSites(t, "a.test b.test c.test d.test e.test"), DomainSites: mustSites(t, "d.test"), Concurrency: 3})
	r := c.Check(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}, []string{"x.example", "y.example"})
	if r.Queries != 12 || res.peak != 3 {
		t.Errorf("queries %d peak in flight %d; want 12 and 3", r.Queries, res.peak)
	}
}

func TestCheckCachedByTTL(t *testing.T) {
	lab := labtest.Serve(t, labZones(t)...)
	client := &dnsx.Client{Servers: []string{lab.Addr()}, Timeout: time.Second, Attempts: 1}
	cache := dnsx.NewCache(client, dnsx.CacheOptions{})
	c := New(cache, Options{IPSites: mustSites(t, labSites), TXT: true})
	first := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.1"))
	misses := cache.Stats().Misses
	second := c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.1"))
	if cache.Stats().Misses != misses {
		t.Errorf("second check missed the cache (%d misses, then %d)", misses, cache.Stats().Misses)
	}
	if second.Score != first.Score || !slices.Equal(explanations(first), explanations(second)) {
		t.Errorf("cached check differs: %q vs %q", explanations(first), explanations(second))
	}
	// Entries live for the zone's TTL (300 s in labtest zones).
	_, left, ok := cache.Peek("1.2.0.192.zen.example.test", dns.TypeA)
	if !ok || left <= 0 || left > 300*time.Second {
		t.Errorf("cache entry ok=%v left %v; want the record's TTL", ok, left)
	}
}

func TestSelfTest(t *testing.T) {
	c, _ := labChecker(t, Options{
		IPSites:     mustSites(t, "zen.example.test=127.0.0.10 wl.example.test broken.example.test absent.example.test"),
		DomainSites: mustSites(t, "dbl.example.test broken.example.test"),
	})
	got := map[string]string{}
	for _, h := range c.SelfTest(context.Background()) {
		s := "ok"
		if h.Err != nil {
			s = h.Err.Error()
		}
		key := h.Zone
		if h.Domain {
			key += "/domain"
		}
		got[key] = s
		if h.Zone == "zen.example.test" && h.IPv6Err != nil {
			t.Errorf("zen IPv6 test point: %v", h.IPv6Err)
		}
		if h.Zone == "wl.example.test" && (h.IPv6Err == nil || !strings.Contains(h.IPv6Err.Error(), "::FFFF:7F00:2 is not listed")) {
			t.Errorf("wl IPv6 test point: %v; want not listed", h.IPv6Err)
		}
	}
	for zone, want := range map[string]string{
		"zen.example.test":           "ok", // the site's filter does not apply to the test point
		"wl.example.test":            "ok",
		"broken.example.test":        "127.0.0.1 is listed",
		"absent.example.test":        "refused",
		"dbl.example.test/domain":    "ok",
		"broken.example.test/domain": "INVALID is listed",
	} {
		if !strings.Contains(got[zone], want) {
			t.Errorf("%s: %q, want %q", zone, got[zone], want)
		}
	}
}

// BenchmarkCheckIPCached is a client check against three lists with the
// answers in the cache: the cost the milter pays per connection once warm.
func BenchmarkCheckIPCached(b *testing.B) {
	srv := labtest.Serve(b, labZones(b)...)
	client := &dnsx.Client{Servers: []string{srv.Addr()}, Timeout: time.Second, Attempts: 1}
	cache := dnsx.NewCache(client, dnsx.CacheOptions{})
	c := New(cache, Options{IPSites: mustSites(b, labSites)})
	ip := netip.MustParseAddr("192.0.2.1")
	ctx := context.Background()
	if r := c.CheckIP(ctx, ip); r.Score != 4 {
		b.Fatalf("warm-up: score %d", r.Score)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := c.CheckIP(ctx, ip); r.Score != 4 {
			b.Fatalf("score %d", r.Score)
		}
	}
}

// countingResolver answers NXDOMAIN after a pause and records the peak
// number of questions in flight.
type countingResolver struct {
	mu             sync.Mutex
	inFlight, peak int
}

func (r *countingResolver) Query(ctx context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	r.mu.Lock()
	r.inFlight++
	r.peak = max(r.peak, r.inFlight)
	r.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	r.mu.Lock()
	r.inFlight--
	r.mu.Unlock()
	return &dnsx.Answer{Name: name, Type: qtype, Rcode: dns.RcodeNameError}, nil
}

func TestCheckMaxInFlight(t *testing.T) {
	res := &countingResolver{}
	c := New(res, Options{IPSites: mustSites(t, "a.test b.test c.test d.test e.test f.test"), Concurrency: 8, MaxInFlight: 4})
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.CheckIP(context.Background(), netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
			if len(r.Errors) != 0 {
				t.Errorf("errors %v", r.Errors)
			}
		}()
	}
	wg.Wait()
	if res.peak != 4 {
		t.Errorf("peak in flight over 10 concurrent checks %d, want 4", res.peak)
	}
	if st := c.Stats(); st.Queries != 60 || st.NotListed != 60 {
		t.Errorf("stats %+v, want 60 queries not listed", st)
	}
}

// recorder is a slog handler that keeps the records.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestCheckLogsRefusalOncePerInterval(t *testing.T) {
	rec := &recorder{}
	c, _ := labChecker(t, Options{Logger: slog.New(rec), LogEvery: 200 * time.Millisecond})
	for range 5 {
		c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.4"))
	}
	if len(rec.recs) != 1 || rec.recs[0].Level != slog.LevelWarn || !strings.Contains(rec.recs[0].Message, "refuses") {
		t.Fatalf("5 refusals logged %d lines, want 1 warning", len(rec.recs))
	}
	time.Sleep(250 * time.Millisecond)
	c.CheckIP(context.Background(), netip.MustParseAddr("192.0.2.4"))
	if len(rec.recs) != 2 {
		t.Fatalf("after the interval: %d lines, want 2", len(rec.recs))
	}
	var unlogged int64
	rec.recs[1].Attrs(func(a slog.Attr) bool {
		if a.Key == "unlogged" {
			unlogged = a.Value.Int64()
		}
		return true
	})
	if unlogged != 4 {
		t.Errorf("second line says %d unlogged, want 4", unlogged)
	}
	if st := c.Stats(); st.Refused != 6 {
		t.Errorf("refused %d, want 6: every refusal is counted, logged or not", st.Refused)
	}
}

func TestResultJSON(t *testing.T) {
	c, _ := labChecker(t, Options{})
	r := c.Check(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.4")}, nil)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"score":4`, `"zone":"zen.example.test"`, `"answers":["127.0.0.2","127.0.0.4"]`, `"kind":"refused"`, `"error":"query refused (Spamhaus code 127.255.255.254`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s\nlacks %s", b, want)
		}
	}
}
