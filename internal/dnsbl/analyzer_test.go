package dnsbl

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/idna"

	"mailwall/internal/analysis"
	"mailwall/internal/debuglog"
	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// amsg is a message as the pipeline hands it to analyzers: the client,
// the header's From and Reply-To, the envelope domain, DKIM d=, and the
// links the pipeline decoded.
type amsg struct {
	client, from, replyTo, envelope string
	dkim                            []string
	links                           []string
}

func (a amsg) message() *analysis.Message {
	m := &analysis.Message{SPFDomain: a.envelope, DKIMPass: a.dkim}
	if a.client != "" {
		m.ClientIP = netip.MustParseAddr(a.client)
	}
	if a.from != "" {
		m.Fields = append(m.Fields, dkim.NewField("From", "Alice <alice@"+a.from+">"))
		m.HeaderFrom = a.from
	}
	if a.replyTo != "" {
		m.Fields = append(m.Fields, dkim.NewField("Reply-To", a.replyTo))
	}
	var links []analysis.Link
	for _, l := range a.links {
		links = append(links, analysis.Link{Href: l})
	}
	m.Decode = func([]dkim.Field, []byte) analysis.Content { return analysis.Content{Links: links} }
	return m
}

func labAnalyzer(t testing.TB, opts Options) *Analyzer {
	opts.TXT = true
	c, _ := labChecker(t, opts)
	return &Analyzer{C: c, Points: 20, Names: map[string]string{"bl2.example.test": "bl2.public.test"}}
}

// TestAnalyzer: each site that lists something is one hit of its weight
// times Points, explained with where the name came from; a site listing
// several names counts once; failures are problems, never hits.
func TestAnalyzer(t *testing.T) {
	a := labAnalyzer(t, Options{})
	for _, tc := range []struct {
		name     string
		m        amsg
		hits     []string // rule=weight: detail
		problems []string // pieces of the problems, in order
		zones    map[string]string
	}{
		{name: "nothing listed", m: amsg{client: "198.51.100.1", from: "example.org", envelope: "example.org", links: []string{"https://www.example.org/x"}},
			zones: map[string]string{"zen.example.test": "not_listed", "bl2.example.test": "not_listed", "wl.example.test": "not_listed", "dbl.example.test": "not_listed"}},
		{name: "listed client, two sites, a reply name", m: amsg{client: "192.0.2.1"},
			hits: []string{
				"dnsbl:zen.example.test=60: client 192.0.2.1 is listed in zen.example.test (127.0.0.2, 127.0.0.4): weight 3: \"Listed by SBL and XBL, see https://example.test/lookup?ip=192.0.2.1\"",
				"dnsbl:bl2.public.test=20: client 192.0.2.1 is listed in bl2.public.test (127.0.0.2): weight 1: \"bad ?bell? and " + strings.Repeat("x", 200-len("bad ?bell? and ")) + "\"",
			},
			zones: map[string]string{"zen.example.test": "listed", "bl2.example.test": "listed", "wl.example.test": "not_listed"}},
		{name: "allow-listed client", m: amsg{client: "192.0.2.7"},
			hits: []string{"dnswl:wl.example.test=-80: client 192.0.2.7 is listed in wl.example.test (127.0.10.3): weight -4"}},
		{name: "listed link host", m: amsg{client: "198.51.100.1", from: "example.org", links: []string{"https://evil.example/login?x=1", "http://www.example.org/"}},
			hits: []string{`dnsbl:dbl.example.test=100: link host evil.example is listed in dbl.example.test (127.0.1.2): weight 5: "phishing domain"`}},
		{name: "registered domain of a link host", m: amsg{links: []string{"https://login.evil.example/"}},
			hits: []string{`dnsbl:dbl.example.test=100: link domain evil.example is listed in dbl.example.test (127.0.1.2): weight 5: "phishing domain"`}},
		{name: "a listed subdomain", m: amsg{links: []string{"https://host.cdn.example/a"}},
			hits: []string{"dnsbl:dbl.example.test=100: link host host.cdn.example is listed in dbl.example.test (127.0.1.12): weight 5"}},
		{name: "a bare www link", m: amsg{links: []string{"www.evil.example/a"}},
			hits: []string{`dnsbl:dbl.example.test=100: link domain evil.example is listed in dbl.example.test (127.0.1.2): weight 5: "phishing domain"`}},
		{name: "From, DKIM and envelope domain at once, and a link: one hit", m: amsg{from: "evil.example", dkim: []string{"evil.example"}, envelope: "evil.example",
			links: []string{"https://xn--bcher-kva.example/", "https://bücher.example/", "mailto:someone@host.cdn.example?subject=x"}},
			hits: []string{`dnsbl:dbl.example.test=100: From domain evil.example (also DKIM d= domain, envelope domain) is listed in dbl.example.test (127.0.1.2): weight 5: "phishing domain"; also listed: link host xn--bcher-kva.example, link host host.cdn.example`}},
		{name: "Reply-To, even malformed", m: amsg{from: "example.org", replyTo: "Support ,_<help@evil.example >"},
			hits: []string{`dnsbl:dbl.example.test=100: Reply-To domain evil.example is listed in dbl.example.test (127.0.1.2): weight 5: "phishing domain"`}},
		{name: "refusal code is a problem", m: amsg{links: []string{"https://refuse.example/"}},
			problems: []string{"dnsbl: refuse.example in dbl.example.test: refused: query refused (Spamhaus DBL code 127.0.1.255"},
			zones:    map[string]string{"dbl.example.test": "refused"}},
		{name: "public resolver code for the client", m: amsg{client: "192.0.2.4"},
			problems: []string{"dnsbl: 192.0.2.4 in zen.example.test: refused: query refused (Spamhaus code 127.255.255.254"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.Analyze(context.Background(), tc.m.message())
			var got []string
			for _, h := range r.Hits {
				got = append(got, h.Rule+"="+strconv.Itoa(h.Weight)+": "+h.Detail)
			}
			if !slices.Equal(got, tc.hits) {
				t.Errorf("hits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.hits, "\n"))
			}
			if len(r.Problems) != len(tc.problems) {
				t.Errorf("problems %q, want %d", r.Problems, len(tc.problems))
			}
			for i, p := range tc.problems {
				if i < len(r.Problems) && !strings.Contains(r.Problems[i], p) {
					t.Errorf("problem %q, want %q in it", r.Problems[i], p)
				}
			}
			rep, ok := r.Report.(*Report)
			if !ok {
				t.Fatalf("report %T", r.Report)
			}
			for z, want := range tc.zones {
				if rep.ZoneOutcomes()[z] != want {
					t.Errorf("zone %s: %q, want %q (%v)", z, rep.Zones[z], want, rep.Zones)
				}
			}
		})
	}
}

// askCounter counts the questions it is asked.
type askCounter struct {
	n atomic.Int64
	r dnsx.Resolver
}

func (c *askCounter) Query(ctx context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	c.n.Add(1)
	if c.r == nil {
		return &dnsx.Answer{}, nil
	}
	return c.r.Query(ctx, name, qtype)
}

// TestAnalyzerNoZones: without lists the analyzer asks nothing and does
// not decode the message; with only IP lists it does not decode either.
func TestAnalyzerNoZones(t *testing.T) {
	r := &askCounter{}
	decoded := 0
	m := amsg{client: "192.0.2.1", from: "evil.example", envelope: "evil.example", links: []string{"https://evil.example/"}}.message()
	decode := m.Decode
	m.Decode = func(f []dkim.Field, b []byte) analysis.Content { decoded++; return decode(f, b) }
	a := &Analyzer{C: New(r, Options{}), Points: 20}
	if res := a.Analyze(context.Background(), m); len(res.Hits) != 0 || len(res.Problems) != 0 || res.Report != nil {
		t.Errorf("no zones: %+v", res)
	}
	if r.n.Load() != 0 || decoded != 0 {
		t.Errorf("no zones: %d queries, %d decodings, want none", r.n.Load(), decoded)
	}
	a = &Analyzer{C: New(r, Options{IPSites: mustSites(t, "zen.example.test")}), Points: 20}
	a.Analyze(context.Background(), m)
	if r.n.Load() != 1 || decoded != 0 {
		t.Errorf("IP lists only: %d queries, %d decodings, want 1 and none", r.n.Load(), decoded)
	}
}

// TestAnalyzerBounds: at most MaxLinks distinct link hosts are asked
// about, however many links a message has, and the header's domains
// are asked before them.
func TestAnalyzerBounds(t *testing.T) {
	r := &askCounter{}
	a := &Analyzer{C: New(r, Options{DomainSites: mustSites(t, "dbl.example.test")}), Points: 20, MaxLinks: 5}
	var links []string
	for i := range 500 {
		links = append(links, "https://h"+strconv.Itoa(i)+".example/", "https://h"+strconv.Itoa(i)+".example/again")
	}
	res := a.Analyze(context.Background(), amsg{from: "first.example", links: links}.message())
	// From's domain, then 5 link hosts: each its own registered domain.
	if r.n.Load() != 6 {
		t.Errorf("%d queries, want 6 (%+v)", r.n.Load(), res.Report)
	}
	got := res.Report.(*Report)
	if got.Queries != 6 {
		t.Errorf("report: %d questions", got.Queries)
	}
}

// TestAnalyzerTempError: a list that does not answer costs at most the
// budget, adds no hit and is a problem naming the zone.
func TestAnalyzerTempError(t *testing.T) {
	a := &Analyzer{C: New(stuck{}, Options{DomainSites: mustSites(t, "dbl.example.test*5"), Timeout: 50e6, Budget: 50e6}), Points: 20}
	res := a.Analyze(context.Background(), amsg{links: []string{"https://evil.example/"}}.message())
	if len(res.Hits) != 0 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "evil.example in dbl.example.test: temperror") {
		t.Errorf("hits %v problems %q", res.Hits, res.Problems)
	}
	if z := res.Report.(*Report).Zones["dbl.example.test"]; z != "error" {
		t.Errorf("zone outcome %q", z)
	}
}

// stuck never answers before the context ends.
type stuck struct{}

func (stuck) Query(ctx context.Context, _ string, _ uint16) (*dnsx.Answer, error) {
	<-ctx.Done()
	return nil, dnsx.ErrTimeout
}

// FuzzNormalizeDomainFastPath: the fast path for names already in
// lower-case LDH form gives what going through IDNA gave (its answer,
// or for an ASCII name it refuses, the name as it is).
func FuzzNormalizeDomainFastPath(f *testing.F) {
	for _, s := range []string{"example.test", "a-b.c0.example", "-bad.example", "a..b", "xn--bcher-kva.example", "xn--zz.example", "1.2.3.4", "a.b-", "000.0.", "00--0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !plainLDH(name) {
			return
		}
		got, err := NormalizeDomain(name)
		trimmed := strings.TrimSuffix(name, ".")
		want, werr := idna.Lookup.ToASCII(trimmed)
		if werr != nil {
			want = trimmed
		}
		if err == nil && got != want {
			t.Fatalf("%q: fast path %q, idna %q %v", name, got, want, werr)
		}
	})
}

// TestAnalyzerCachedOutcomes: a zone the resolver's cache answered in
// full (the client asked a moment ago, as the policy server does at
// RCPT) is counted as listed_cached or not_listed_cached, not as a
// second lookup; the check's Cached says how many questions the cache
// answered, and the hits are those of the first check.
func TestAnalyzerCachedOutcomes(t *testing.T) {
	lab := labtest.Serve(t, labZones(t)...)
	for _, wrapped := range []bool{false, true} {
		cache := dnsx.NewCache(&dnsx.Client{Servers: []string{lab.Addr()}, Timeout: time.Second, Attempts: 1}, dnsx.CacheOptions{})
		var res dnsx.Resolver = cache
		if wrapped {
			res = debuglog.Wrap(cache) // as serve's pipeline has it
		}
		t.Run(map[bool]string{false: "cache", true: "debuglog"}[wrapped], func(t *testing.T) {
			cachedOutcomes(t, res, context.Background())
		})
	}
	// A debug peer's message: the cached answers are asked through the
	// resolver (its detail log shows them), and still count as cached.
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{lab.Addr()}, Timeout: time.Second, Attempts: 1}, dnsx.CacheOptions{})
	var lines atomic.Int32
	logger := slog.New(countHandler{&lines})
	cachedOutcomes(t, debuglog.Wrap(cache), debuglog.With(context.Background(), logger))
	if lines.Load() == 0 {
		t.Error("a debug peer's detail log shows no DNS answer")
	}
}

// countHandler counts the records logged.
type countHandler struct{ n *atomic.Int32 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

func cachedOutcomes(t *testing.T, res dnsx.Resolver, ctx context.Context) {
	t.Helper()
	a := &Analyzer{C: New(res, Options{IPSites: mustSites(t, "zen.example.test*3 bl2.example.test"),
		DomainSites: mustSites(t, "dbl.example.test*2")}), Points: 10}
	// The policy server's check at RCPT: the client only, asked upstream.
	if r := a.C.CheckIP(ctx, netip.MustParseAddr("192.0.2.1")); r.Cached != 0 || r.ZoneCached("zen.example.test") {
		t.Fatalf("first check: %d cached, zen cached %v; want none", r.Cached, r.ZoneCached("zen.example.test"))
	}
	for _, tc := range []struct {
		name   string
		msg    amsg
		zones  map[string]string
		cached int
	}{
		{"client cached, domain new", amsg{client: "192.0.2.1", from: "evil.example"},
			map[string]string{"zen.example.test": "listed_cached", "bl2.example.test": "listed_cached", "dbl.example.test": "listed"}, 2},
		{"all cached", amsg{client: "192.0.2.1", from: "evil.example"},
			map[string]string{"zen.example.test": "listed_cached", "bl2.example.test": "listed_cached", "dbl.example.test": "listed_cached"}, 3},
		{"one name of a zone new", amsg{client: "192.0.2.1", from: "evil.example", replyTo: "x@clean.example"},
			map[string]string{"zen.example.test": "listed_cached", "bl2.example.test": "listed_cached", "dbl.example.test": "listed"}, 3},
		{"clean client, new then cached", amsg{client: "192.0.2.99"},
			map[string]string{"zen.example.test": "not_listed", "bl2.example.test": "not_listed"}, 0},
		{"clean client cached", amsg{client: "192.0.2.99"},
			map[string]string{"zen.example.test": "not_listed_cached", "bl2.example.test": "not_listed_cached"}, 2},
	} {
		res := a.Analyze(ctx, tc.msg.message())
		rep := res.Report.(*Report)
		if !maps.Equal(rep.ZoneOutcomes(), tc.zones) || rep.Cached != tc.cached {
			t.Errorf("%s: zones %v cached %d, want %v and %d", tc.name, rep.ZoneOutcomes(), rep.Cached, tc.zones, tc.cached)
		}
		if tc.msg.from != "" && (len(res.Hits) != 3 || rep.Score != 3+1+2) {
			t.Errorf("%s: hits %v score %d, want zen, bl2 and dbl (6)", tc.name, res.Hits, rep.Score)
		}
	}
}
