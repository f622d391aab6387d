package reputation_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/phish"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
)

// openStore is a real SQLite store in the test's directory.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDecay(t *testing.T) {
	hl := 30 * 24 * time.Hour
	for _, c := range []struct {
		d    time.Duration
		want float64
	}{{0, 1}, {-time.Hour, 1}, {hl, 0.5}, {2 * hl, 0.25}, {hl / 2, math.Sqrt2 / 2}} {
		if got := reputation.Decay(c.d, hl); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Decay(%s) = %g, want %g", c.d, got, c.want)
		}
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c := reputation.Counts{Ham: 8, Spam: 2, Updated: t0}.At(t0.Add(3*hl), hl)
	if c.Ham != 1 || c.Spam != 0.25 || !c.Updated.Equal(t0.Add(3*hl)) || c.SpamRatio() != 0.2 {
		t.Errorf("three half-lives on: %+v", c)
	}
}

func TestIdentities(t *testing.T) {
	for _, c := range []struct {
		ip, want string
	}{
		{"192.0.2.77", "192.0.2.0/24"},
		{"::ffff:192.0.2.77", "192.0.2.0/24"},
		{"2001:db8:1:2345::1", "2001:db8:1:2300::/56"},
		{"0.0.0.0", ""},
	} {
		if got := reputation.Network(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Network(%s) = %q, want %q", c.ip, got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		ids  reputation.Identities
		want []string
	}{
		{"verdict fields, DMARC pass", reputation.ParseIdentities("192.0.2.7", "pass", "b@Bounce.Example", "mx.example", "pass", "example.org", "pass:example.org fail:x.example pass:esp.example"),
			[]string{"from_domain=example.org", "dkim=example.org", "dkim=esp.example", "spf=bounce.example", "net=192.0.2.0/24"}},
		{"nothing authenticated: only the network", reputation.ParseIdentities("192.0.2.7", "softfail", "b@bounce.example", "", "fail", "example.org", "fail:example.org"),
			[]string{"net=192.0.2.0/24"}},
		{"a bounce: SPF checked HELO", reputation.ParseIdentities("", "pass", "", "mx.example", "none", "", ""), []string{"spf=mx.example"}},
		{"duplicates and case", reputation.Identities{DKIM: []string{"A.example", "a.example."}}, []string{"dkim=a.example"}},
	} {
		var got []string
		for _, k := range c.ids.Keys() {
			got = append(got, k.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// msg is a message as the pipeline hands it to analyzers.
func msg(from, dmarc string, dkim []string, ip string, hits ...analysis.Hit) *analysis.Message {
	raw := fmt.Sprintf("From: Someone <%s>\r\nTo: bob@our.test\r\nSubject: hello\r\nMessage-ID: <%s.%d@x>\r\n\r\nHello Bob, the minutes are attached.\r\n", from, from, len(hits))
	fields, body := classify.ParseMessage([]byte(raw))
	_, dom, _ := cutAt(from)
	return &analysis.Message{Fields: fields, Body: body, Rcpts: []string{"bob@our.test"}, ClientIP: netip.MustParseAddr(ip),
		SPF: "none", DMARC: dmarc, HeaderFrom: dom, DKIMPass: dkim, Hits: hits, Decode: phish.Extract}
}

func cutAt(a string) (string, string, bool) {
	for i := range a {
		if a[i] == '@' {
			return a[:i], a[i+1:], true
		}
	}
	return a, "", false
}

func rules(hits []analysis.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, fmt.Sprintf("%s=%d", h.Rule, h.Weight))
	}
	return out
}

// TestAnalyzerRules: the history the store holds, read through the
// cache, gives the rules mox's order and thresholds describe.
func TestAnalyzerRules(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	rep := reputation.New(st, reputation.DefaultConfig(), nil)
	history := []struct {
		ids       reputation.Identities
		ham, spam float64
	}{
		{reputation.Identities{DKIM: []string{"bulk.example"}}, 0.2, 12},
		{reputation.Identities{FromDomain: "friend.example", DKIM: []string{"friend.example"}}, 30, 0.5},
		{reputation.Identities{FromDomain: "mixed.example"}, 5, 5},
		{reputation.Identities{Net: "198.51.100.0/24"}, 0, 5},            // too little for a network
		{reputation.Identities{Net: "203.0.113.0/24"}, 0, 15},            // enough
		{reputation.Identities{DKIM: []string{"esp.example"}}, 8, 0},     // good DKIM
		{reputation.Identities{Net: "198.18.0.0/24"}, 25, 0},             // a good network
		{reputation.Identities{FromDomain: "a.brand-bad.example"}, 0, 5}, // spam from one subdomain
	}
	for _, h := range history {
		rep.Add(h.ids, h.ham, h.spam)
	}
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rep.Wrote([]string{"Alice@Friend.example"})
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	brand := analysis.Hit{Rule: "brand_from_domain", Weight: 45, Detail: "looks like paypal"}
	a := &reputation.Analyzer{Rep: reputation.New(st, reputation.DefaultConfig(), nil), Rules: reputation.DefaultRules()}
	for _, c := range []struct {
		name string
		m    *analysis.Message
		want []string
	}{
		{"spam history of a DKIM domain", msg("x@bulk.example", "none", []string{"bulk.example"}, "192.0.2.1"), []string{"reputation_bad=40"}},
		{"good From domain, a correspondent", msg("alice@friend.example", "pass", []string{"friend.example"}, "192.0.2.1"),
			[]string{"reputation_good=-15", "known_correspondent=-20"}},
		{"good From domain, another address", msg("bob@friend.example", "pass", []string{"friend.example"}, "192.0.2.1"), []string{"reputation_good=-15"}},
		{"a strong hit stands: the good history is capped", msg("bob@friend.example", "pass", []string{"friend.example"}, "192.0.2.1", brand),
			[]string{}},
		{"a strong hit with more beside: capped to what is above it", msg("alice@friend.example", "pass", []string{"friend.example"}, "192.0.2.1", brand,
			analysis.Hit{Rule: "url_ip_literal", Weight: 25}), []string{"reputation_good=-15", "known_correspondent=-10"}},
		{"the From domain's mixed history says nothing, the DKIM domain is not asked", msg("x@mixed.example", "pass", []string{"bulk.example"}, "192.0.2.1"), nil},
		{"DMARC failed: no good history, no correspondent", msg("alice@friend.example", "fail", []string{"esp.example"}, "192.0.2.1"), nil},
		{"good DKIM alone, DMARC none", msg("x@other.example", "none", []string{"esp.example"}, "192.0.2.1"), []string{"reputation_good=-15"}},
		{"a fresh From domain does not borrow its mail service's good DKIM", msg("x@fresh2.example", "pass", []string{"fresh2.example", "esp.example"}, "192.0.2.1"), nil},
		{"a fresh subdomain of an organization with spam history", msg("x@b.brand-bad.example", "pass", nil, "192.0.2.1"), []string{"reputation_bad=40"}},
		{"a fresh subdomain of a good organization", msg("x@news.friend.example", "pass", nil, "192.0.2.1"), []string{"reputation_good=-15"}},
		{"DKIM good and bad disagree", msg("x@other.example", "none", []string{"esp.example", "bulk.example"}, "192.0.2.1"), nil},
		{"a network needs more evidence", msg("x@other.example", "none", nil, "198.51.100.9"), nil},
		{"a network with enough spam", msg("x@other.example", "none", nil, "203.0.113.9"), []string{"reputation_bad=20"}},
		{"a network with a good name, nothing else authenticated", msg("x@other.example", "none", nil, "198.18.0.9"), []string{"reputation_good=-15"}},
		{"a new domain does not inherit its network's good name", msg("x@fresh.example", "pass", []string{"fresh.example"}, "198.18.0.9"), nil},
		{"new identities imitating a brand", msg("x@paypa1.example", "pass", []string{"paypa1.example"}, "192.0.2.200", brand), []string{"reputation_new_brand=40"}},
		{"a new domain imitating a brand from a network seen before", msg("x@paypa2.example", "pass", []string{"paypa2.example"}, "198.51.100.9", brand),
			[]string{"reputation_new_brand=40"}},
		{"nothing authenticated, a new network, a brand", msg("x@paypa3.example", "fail", nil, "192.0.2.210", brand), []string{"reputation_new_brand=40"}},
		{"nothing authenticated, a network seen, a brand", msg("x@paypa3.example", "fail", nil, "198.51.100.9", brand), nil},
		{"new identities, no brand", msg("x@new.example", "pass", []string{"new.example"}, "192.0.2.200"), nil},
		{"a brand rule from a known identity", msg("x@mixed.example", "pass", nil, "192.0.2.200", brand), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := a.Analyze(ctx, c.m)
			if len(out.Problems) > 0 {
				t.Errorf("problems: %v", out.Problems)
			}
			if got := rules(out.Hits); !slices.Equal(got, c.want) && len(got)+len(c.want) > 0 {
				t.Errorf("hits %v, want %v", got, c.want)
			}
			for _, h := range out.Hits {
				if h.Detail == "" {
					t.Errorf("%s has no explanation", h.Rule)
				}
			}
		})
	}
}

// TestOwnDomainsNotCorrespondents: mail to our own domains records no
// correspondent.
func TestOwnDomainsNotCorrespondents(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg := reputation.DefaultConfig()
	cfg.OwnDomains = []string{"our.test"}
	rep := reputation.New(st, cfg, nil)
	rep.Observe(reputation.Outcome{Internal: true, Signed: true, Rcpts: []string{"<Bob@Our.test>", "carol@partner.example"}})
	rep.Observe(reputation.Outcome{Internal: true, Signed: false, Rcpts: []string{"dave@unsigned.example"}})
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := st.KnownCorrespondents(ctx, []string{"bob@our.test", "carol@partner.example", "dave@unsigned.example"})
	if err != nil || len(got) != 1 || !got["carol@partner.example"] {
		t.Errorf("correspondents %v %v, want carol only (bob is ours, dave's mail was not signed)", got, err)
	}
}

// TestObserve: outcomes become evidence for the message's identities;
// reputation's own hits do not count towards the score judged.
func TestObserve(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name           string
		action, stage  string
		hits           []analysis.Hit
		prob           float64
		wantHam, wantS float64
	}{
		{"rejected on the score", "reject", "score", []analysis.Hit{{Rule: "url_userinfo", Weight: 120}}, -1, 0, 1},
		{"quarantined on the score", "quarantine", "score", []analysis.Hit{{Rule: "brand_from_domain", Weight: 65}}, -1, 0, 1},
		{"rejected by DMARC: not spam evidence", "reject", "dmarc", nil, -1, 0, 0},
		{"quarantined only with reputation's own hit", "quarantine", "score", []analysis.Hit{{Rule: "url_ip_literal", Weight: 25}, {Rule: "reputation_bad", Weight: 40}}, -1, 0, 0},
		{"the classifier's hit alone, delivered: nothing", "accept", "", []analysis.Hit{{Rule: "classifier", Weight: 15}}, 0.995, 0, 0},
		{"delivered with a low score", "accept", "", []analysis.Hit{{Rule: "auth_none", Weight: 5}, {Rule: "reputation_good", Weight: -15}}, 0.1, 0.25, 0},
		{"delivered but tagged", "tag", "score", []analysis.Hit{{Rule: "brand_display_name", Weight: 30}}, -1, 0, 0},
		{"tempfail", "tempfail", "dns", nil, -1, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t)
			rep := reputation.New(st, reputation.DefaultConfig(), nil)
			a := &reputation.Analyzer{Rep: rep, Rules: reputation.DefaultRules()}
			m := msg("x@sender.example", "pass", []string{"sender.example"}, "192.0.2.1")
			r := a.Analyze(ctx, m)
			rep.Observe(reputation.Outcome{Action: c.action, Stage: c.stage, Hits: c.hits, Report: r.Report.(*reputation.Report), Probability: c.prob})
			if err := rep.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			got, _ := st.ReputationCounts(ctx, []reputation.Key{{Kind: reputation.FromDomain, Identity: "sender.example"}, {Kind: reputation.Net, Identity: "192.0.2.0/24"}})
			for k, cnt := range got {
				if math.Abs(cnt.Ham-c.wantHam) > 1e-6 || math.Abs(cnt.Spam-c.wantS) > 1e-6 {
					t.Errorf("%s: ham %g spam %g, want %g %g", k, cnt.Ham, cnt.Spam, c.wantHam, c.wantS)
				}
			}
			if n := map[bool]int{true: 2, false: 0}[c.wantHam+c.wantS > 0]; len(got) != n {
				t.Errorf("%d identities written, want %d", len(got), n)
			}
		})
	}
}

// TestCacheBounded: a flood of identities never holds more than
// CacheSize in memory, and what was written stays readable.
func TestCacheBounded(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg := reputation.DefaultConfig()
	cfg.CacheSize = 100
	rep := reputation.New(st, cfg, nil)
	for i := range 1000 {
		k := reputation.Key{Kind: reputation.DKIM, Identity: fmt.Sprintf("d%d.example", i)}
		if _, _, err := rep.Lookup(ctx, []reputation.Key{k}); err != nil {
			t.Fatal(err)
		}
		if n := rep.CacheLen(); n > cfg.CacheSize {
			t.Fatalf("after %d identities the cache holds %d, over %d", i+1, n, cfg.CacheSize)
		}
	}
}

// TestStoreDown: a store that does not answer costs a message a
// problem, never a hit, and evidence waits for it.
func TestStoreDown(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	rep := reputation.New(st, reputation.DefaultConfig(), nil)
	a := &reputation.Analyzer{Rep: rep, Rules: reputation.DefaultRules()}
	st.Close()
	m := msg("x@paypa1.example", "pass", []string{"paypa1.example"}, "192.0.2.200", analysis.Hit{Rule: "brand_from_domain", Weight: 45})
	out := a.Analyze(ctx, m)
	if len(out.Hits) != 0 || len(out.Problems) == 0 {
		t.Errorf("store closed: hits %v problems %v, want no hit (not seen is not known) and a problem", rules(out.Hits), out.Problems)
	}
	// The next message does not ask the store that just failed.
	m = msg("y@other.example", "pass", []string{"other.example"}, "192.0.2.201")
	if out := a.Analyze(ctx, m); len(out.Problems) == 0 || !strings.Contains(out.Problems[0], "not asked") {
		t.Errorf("right after a failure: problems %v, want the store not asked", out.Problems)
	}
	rep.Add(reputation.Identities{DKIM: []string{"x.example"}}, 0, 1)
	if err := rep.Flush(ctx); err == nil {
		t.Error("flush into a closed store: no error")
	}
	if rep.PendingLen() != 1 {
		t.Errorf("pending after a failed flush: %d, want 1 (kept for the next try)", rep.PendingLen())
	}
}

// TestPurge: a history faded past twelve half-lives and a
// correspondent not written to for two years are forgotten; fresher
// ones stay.
func TestPurge(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	rep := reputation.New(st, reputation.DefaultConfig(), nil)
	rep.Now = func() time.Time { return now }
	rep.Add(reputation.Identities{DKIM: []string{"old.example"}}, 1, 0)
	rep.Wrote([]string{"old@partner.example"})
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(700 * 24 * time.Hour)
	rep.Add(reputation.Identities{DKIM: []string{"new.example"}}, 1, 0)
	rep.Wrote([]string{"new@partner.example"})
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(800 * 24 * time.Hour)
	if err := rep.Purge(ctx, now); err != nil {
		t.Fatal(err)
	}
	got, _ := st.ReputationCounts(ctx, []reputation.Key{{Kind: reputation.DKIM, Identity: "old.example"}, {Kind: reputation.DKIM, Identity: "new.example"}})
	if len(got) != 1 || got[reputation.Key{Kind: reputation.DKIM, Identity: "new.example"}].Ham != 1 {
		t.Errorf("identities after the purge: %v, want new.example only (old.example is 800 days, 26 half-lives, old)", got)
	}
	known, _ := st.KnownCorrespondents(ctx, []string{"old@partner.example", "new@partner.example"})
	if len(known) != 1 || !known["new@partner.example"] {
		t.Errorf("correspondents after the purge: %v, want new@ only", known)
	}
}
