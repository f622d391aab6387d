package spf

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// Outcome.DNSSEC is the weakest status of the answers the evaluation
// used: a signed record that includes an unsigned domain's is insecure;
// a tampered one is a temperror naming the failing link, with no status.
func TestD4OutcomeDNSSEC(t *testing.T) {
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"plain.test": {Unsigned: true}, "tamper.test": {TamperRRSIG: true}}},
		labtest.Zone(t, "good.test", `@ IN TXT "v=spf1 ip4:192.0.2.10 -all"`, `inc IN TXT "v=spf1 include:plain.test -all"`),
		labtest.Zone(t, "plain.test", `@ IN TXT "v=spf1 ip4:192.0.2.10 -all"`),
		labtest.Zone(t, "tamper.test", `@ IN TXT "v=spf1 ip4:192.0.2.10 -all"`))
	ip := netip.MustParseAddr("192.0.2.10")
	for _, tc := range []struct {
		domain  string
		result  Result
		dnssec  string
		problem string
	}{
		{"good.test", Pass, "secure", ""},
		{"plain.test", Pass, "insecure", ""},
		{"inc.good.test", Pass, "insecure", ""}, // the include is unsigned
		{"tamper.test", TempError, "", "DNSSEC bogus: tamper.test TXT: RRSIG"},
	} {
		o := (&Checker{Resolver: client}).CheckHost(context.Background(), ip, tc.domain, "a@"+tc.domain, "mail.example.test")
		if o.Result != tc.result || o.DNSSEC != tc.dnssec || !strings.Contains(o.Problem, tc.problem) {
			t.Errorf("%s: %s dnssec %q problem %q, want %s %q %q", tc.domain, o.Result, o.DNSSEC, o.Problem, tc.result, tc.dnssec, tc.problem)
		}
	}
}
