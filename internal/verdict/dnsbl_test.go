package verdict

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/dnsbl"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/phish"
)

// dnsblLists serves block lists on loopback: zen.lists.test lists the
// client 192.0.2.66, dbl.lists.test the domain evil-link.test.
func dnsblLists(t testing.TB) dnsx.Resolver {
	s := labtest.Serve(t,
		labtest.Zone(t, "zen.lists.test", "66.2.0.192 A 127.0.0.2"),
		labtest.Zone(t, "bl2.lists.test", "66.2.0.192 A 127.0.0.3"),
		labtest.Zone(t, "dbl.lists.test", "evil-link.test A 127.0.1.2"),
	)
	return dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})
}

func dnsblAnalyzer(t testing.TB, res dnsx.Resolver, ip, dom string) *dnsbl.Analyzer {
	parse := func(s string) []dnsbl.Site {
		sites, err := dnsbl.ParseSites(s)
		if err != nil {
			t.Fatal(err)
		}
		return sites
	}
	return &dnsbl.Analyzer{C: dnsbl.New(res, dnsbl.Options{IPSites: parse(ip), DomainSites: parse(dom)}), Points: 20}
}

// TestDNSBLAnalyzerVerdict: a message linking to a listed domain gets
// the list's hit, its points in the score and X-Mailwall-Score, and the
// action the score leads to; a listed client weighs its site's weight
// the same way; with the phishing rules beside it the weights add up.
func TestDNSBLAnalyzerVerdict(t *testing.T) {
	c, _ := world(t)
	c.Analyzers = []analysis.Analyzer{dnsblAnalyzer(t, dnsblLists(t), "zen.lists.test*3", "dbl.lists.test*2")}
	link := strings.Replace(msg, "Hi Bob.", "Hi Bob, see https://www.evil-link.test/invoice and https://example.test/.", 1)
	r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, link)
	if r.Score() != 40 || !slices.Equal(r.Rules(), []string{"dnsbl:dbl.lists.test=40"}) || r.Action != Tag || r.Stage != "score" {
		t.Errorf("listed link: score %d rules %v action %s stage %s %v", r.Score(), r.Rules(), r.Action, r.Stage, r.Reasons)
	}
	if h := header(r, "X-Mailwall-Score"); h != " 40 (dnsbl:dbl.lists.test=40)" {
		t.Errorf("X-Mailwall-Score:%s", h)
	}
	if len(r.Hits) == 1 && r.Hits[0].Detail != "link domain evil-link.test is listed in dbl.lists.test (127.0.1.2): weight 2" {
		t.Errorf("detail %q", r.Hits[0].Detail)
	}
	// check-message --json: the analyzer's report under "dnsbl".
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		DNSBL struct {
			Score int               `json:"score"`
			Zones map[string]string `json:"zones"`
		} `json:"dnsbl"`
	}
	if err := json.Unmarshal(data, &got); err != nil || got.DNSBL.Score != 2 || got.DNSBL.Zones["dbl.lists.test"] != "listed" || got.DNSBL.Zones["zen.lists.test"] != "not_listed" {
		t.Errorf("JSON report %+v (%v) in %s", got.DNSBL, err, data)
	}

	// 192.0.2.66 fails example.test's SPF: a domain without a DMARC
	// policy, so that the score decides.
	r = check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.66"), Helo: "mail.desctrl.test", MailFrom: "alice@desctrl.test"},
		strings.ReplaceAll(msg, "example.test", "desctrl.test"))
	if r.Score() != 60 || !slices.Equal(r.Rules(), []string{"dnsbl:zen.lists.test=60"}) || r.Action != Quarantine {
		t.Errorf("listed client: score %d rules %v action %s %v", r.Score(), r.Rules(), r.Action, r.Reasons)
	}
	if len(r.Hits) == 1 && r.Hits[0].Detail != "client 192.0.2.66 is listed in zen.lists.test (127.0.0.2): weight 3" {
		t.Errorf("detail %q", r.Hits[0].Detail)
	}

	// Not listed: no hit, no score, accepted.
	r = check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, msg)
	if r.Score() != 0 || len(r.Hits) != 0 || r.Action != Accept {
		t.Errorf("clean: score %d hits %v action %s", r.Score(), r.Hits, r.Action)
	}
}

// TestDNSBLAnalyzerNoZones: with the analyzer listed but no lists
// configured, a message costs no DNS question at all.
func TestDNSBLAnalyzerNoZones(t *testing.T) {
	c, _ := world(t)
	asked := &dnsblAsked{}
	c.Analyzers = []analysis.Analyzer{&dnsbl.Analyzer{C: dnsbl.New(asked, dnsbl.Options{}), Points: 20}}
	link := strings.Replace(msg, "Hi Bob.", "Hi Bob, see https://www.evil-link.test/invoice.", 1)
	r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.66"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, link)
	if asked.n != 0 || r.Score() != 0 {
		t.Errorf("%d questions, score %d: want none", asked.n, r.Score())
	}
}

// BenchmarkMessageDNSBL is BenchmarkMessage with the default analyzers:
// "none" is the phishing rules alone, as serve runs without lists (it
// builds no dnsbl analyzer then); "3zones" adds the dnsbl analyzer with
// two IP lists and a domain list, answered from the cache (the client
// and example.test not listed: four questions a message).
func BenchmarkMessageDNSBL(b *testing.B) {
	for _, bc := range []struct{ name, ip, dom string }{
		{"none", "", ""},
		{"3zones", "zen.lists.test*3 bl2.lists.test", "dbl.lists.test*2"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, signer := world(b)
			p, err := phish.New(phish.DefaultBrands(), nil)
			if err != nil {
				b.Fatal(err)
			}
			c.Analyzers = []analysis.Analyzer{p}
			if bc.ip != "" {
				c.Analyzers = append(c.Analyzers, dnsblAnalyzer(b, dnsblLists(b), bc.ip, bc.dom))
			}
			benchMessage(b, c, signer)
		})
	}
}

// dnsblAsked counts the questions it is asked and answers none.
type dnsblAsked struct{ n int }

func (a *dnsblAsked) Query(ctx context.Context, _ string, _ uint16) (*dnsx.Answer, error) {
	a.n++
	return &dnsx.Answer{}, nil
}
