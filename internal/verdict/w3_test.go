package verdict

import (
	"net/netip"
	"strings"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
)

// TestNotChecked: mail from checks.not_checked (OpenDMARC's IgnoreHosts)
// is accepted with nothing checked and nothing signed, its HELO is not
// refused, and the reason says why; the same client outside the list is
// checked (a spoof of a p=reject domain: rejected), and an internal host
// is still signed.
func TestNotChecked(t *testing.T) {
	c, signer := world(t)
	c.Signers = map[string]*dkim.Signer{"example.test": signer}
	c.NotChecked = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	spoof := Envelope{ClientIP: netip.MustParseAddr("198.51.100.7"), Helo: "mail.desctrl.com", MailFrom: "alice@example.test"}
	if act, _, _ := c.CheckHeloClient(spoof.ClientIP, spoof.Helo); act != Accept {
		t.Errorf("HELO of a not-checked client: %s, want accept (the table refuses others)", act)
	}
	r := check(t, c, spoof, msg)
	if r.Action != Accept || !r.NotChecked || r.Internal || r.Signed || r.SPF.Result != "" || r.DMARC.Result != "" ||
		len(r.Reasons) != 1 || !strings.HasPrefix(r.Reasons[0], "not checked:") || header(r, "DKIM-Signature") != "" {
		t.Errorf("not checked: action %s, not_checked %v, internal %v, signed %v, spf %q, dmarc %q, reasons %q", r.Action, r.NotChecked, r.Internal, r.Signed, r.SPF.Result, r.DMARC.Result, r.Reasons)
	}
	spoof.ClientIP = netip.MustParseAddr("198.51.101.7")
	if r := check(t, c, spoof, msg); r.Action != Reject || r.NotChecked {
		t.Errorf("outside the list: %s (not_checked %v), want the spoof rejected", r.Action, r.NotChecked)
	}
	// Internal wins when a host is in both: signed.
	c.NotChecked = append(c.NotChecked, netip.MustParsePrefix("10.0.0.0/8"))
	if r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("10.1.2.3"), Helo: "pc.example.test", MailFrom: "alice@example.test"}, msg); !r.Internal || !r.Signed {
		t.Errorf("internal and not checked: internal %v signed %v, want signed", r.Internal, r.Signed)
	}
}

// TestScoreRejectText: a rejection by the score tells the sender the
// configured text and no rule; the rules stay in the reasons.
func TestScoreRejectText(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"", "550 5.7.1 " + DefaultScoreRejectText},
		{"Message refused by content policy", "550 5.7.1 Message refused by content policy"},
	} {
		c, _ := world(t)
		c.Policy.ScoreRejectText = tc.text
		c.Analyzers = []analysis.Analyzer{&fixed{name: "f", hits: []analysis.Hit{{Rule: "brand_from_domain", Weight: 110}}}}
		r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, msg)
		if r.Action != Reject || r.Reply != tc.want || strings.Contains(r.Reply, "brand_from_domain") {
			t.Errorf("text %q: %s %q, want reject with %q", tc.text, r.Action, r.Reply, tc.want)
		}
		if !strings.Contains(strings.Join(r.Reasons, "\n"), "brand_from_domain=110") {
			t.Errorf("the rules are not in the reasons: %q", r.Reasons)
		}
	}
}
