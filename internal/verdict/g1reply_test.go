package verdict

import (
	"net/netip"
	"testing"

	"mailwall/internal/analysis"
)

// TestBlocklistRejectReply: a rejection by the score says "listed on DNS
// blocklists" when the blocklists' hits decided it (the rest of the
// score is under the reject threshold), and "likely phishing" when the
// other rules reach it on their own; an allow list's negative hit is
// not a listing.
func TestBlocklistRejectReply(t *testing.T) {
	const (
		listed   = "550 5.7.1 Message rejected: listed on DNS blocklists ("
		phishing = "550 5.7.1 Message rejected as likely phishing" // the rules only in the log (checks.score.reject_text)
	)
	for _, tc := range []struct {
		name string
		hits []analysis.Hit
		want string // the reply's start; "" for no rejection
	}{
		{"client listed alone", []analysis.Hit{{Rule: "dnsbl:zen.lists.test", Weight: 100}}, listed + "dnsbl:zen.lists.test=100)"},
		{"list tips the score", []analysis.Hit{{Rule: "brand_from_domain", Weight: 60}, {Rule: "dnsbl:zen.lists.test", Weight: 60}},
			listed + "brand_from_domain=60, dnsbl:zen.lists.test=60)"},
		{"rules reject on their own", []analysis.Hit{{Rule: "brand_from_domain", Weight: 100}, {Rule: "dnsbl:dbl.lists.test", Weight: 40}},
			phishing},
		{"no list", []analysis.Hit{{Rule: "brand_from_domain", Weight: 110}}, phishing},
		{"allow list hit is no listing", []analysis.Hit{{Rule: "brand_from_domain", Weight: 140}, {Rule: "dnswl:wl.lists.test", Weight: -40}},
			phishing},
		{"under the threshold", []analysis.Hit{{Rule: "dnsbl:zen.lists.test", Weight: 60}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := world(t)
			c.Analyzers = []analysis.Analyzer{&fixed{name: "f", hits: tc.hits}}
			r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, msg)
			if tc.want == "" {
				if r.Action == Reject {
					t.Errorf("rejected: %q", r.Reply)
				}
				return
			}
			if r.Action != Reject || r.Stage != "score" || r.Reply != tc.want {
				t.Errorf("action %s stage %s reply %q, want reject by the score with %q", r.Action, r.Stage, r.Reply, tc.want)
			}
		})
	}
}
