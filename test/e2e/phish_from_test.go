package e2e

// Issue 24, item 1: malformed From fields, as phishing kits write them,
// read through the real binary's check-message. Helpers here are
// prefixed "pf".

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pfReport is what the test reads of check-message --json.
type pfReport struct {
	Action string `json:"action"`
	Phish  struct {
		Score int `json:"score"`
		Hits  []struct {
			Rule, Detail string
		} `json:"hits"`
		From *struct {
			Name, Local, Domain string
			Malformed           []string
		} `json:"from"`
	} `json:"phish"`
}

// TestPhishMalformedFrom: before issue 24 a From that net/mail could not
// parse ran no From rule at all; now it is read as a client shows it,
// the brand in its name counts, and from_malformed says what was wrong.
func TestPhishMalformedFrom(t *testing.T) {
	_, bin := e2eRoot(t, "mailwall-e2e-pf-")
	dnsAddr, _ := startLabDNS(t, bin)
	for _, tc := range []struct {
		name, from string
		wantRules  []string
		wantShown  string // name <local@domain> as read
		detail     string
	}{
		{"kit comma and underscore", "Microsoft account team ,_<no-reply@access-security.test>", []string{"from_malformed", "brand_display_name"}, "Microsoft account team <no-reply@access-security.test>", `"," in the display name, unquoted`},
		{"space inside the brackets", "PayPal <service@notice-center.test >", []string{"from_malformed", "brand_display_name"}, "PayPal <service@notice-center.test>", "spaces inside <service@notice-center.test>"},
		{"no @", "Bradesco Prime", []string{"from_malformed"}, "Bradesco Prime <@>", "no address (no @)"},
		{"well formed", `"Shop News" <news@shop.test>`, nil, "Shop News <news@shop.test>", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := "From: " + tc.from + "\r\nTo: rcpt@rcpt.test\r\nSubject: account\r\nMessage-ID: <1@shop.test>\r\nDate: Sun, 6 Dec 2026 07:00:00 +0000\r\n\r\nPlease confirm your account.\r\n"
			cmd := exec.Command(bin, "check-message", "--json", "--dns", dnsAddr, "--ip", "192.0.2.9", "--helo", "mail.shop.test", "--sender", "bounce@shop.test")
			cmd.Stdin = strings.NewReader(msg)
			out, err := cmd.Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); !ok || len(out) == 0 {
					t.Fatalf("check-message: %v: %s", err, ee.Stderr)
				}
			}
			var r pfReport
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			var rules []string
			detail := ""
			for _, h := range r.Phish.Hits {
				if strings.HasPrefix(h.Rule, "auth_") || h.Rule == "dmarc_none_brand" || h.Rule == "first_seen_domain" {
					continue // authentication of a lab message, not the point here
				}
				rules = append(rules, h.Rule)
				if h.Rule == "from_malformed" {
					detail = h.Detail
				}
			}
			slices.Sort(rules)
			want := slices.Clone(tc.wantRules)
			slices.Sort(want)
			if !slices.Equal(rules, want) {
				t.Errorf("rules %v, want %v\n%s", rules, want, out)
			}
			if !strings.Contains(detail, tc.detail) {
				t.Errorf("from_malformed says %q, want %q", detail, tc.detail)
			}
			if f := r.Phish.From; f == nil || f.Name+" <"+f.Local+"@"+f.Domain+">" != tc.wantShown {
				t.Errorf("From read as %+v, want %s", f, tc.wantShown)
			}
		})
	}
}
