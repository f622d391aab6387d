package dmarc

import (
	"context"
	"strings"
	"testing"

	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// Result.PolicyDNSSEC is the status of the policy record's answer, the
// organizational domain's when the author's has none; a tampered one is
// a temperror naming the failing link.
func TestD4PolicyDNSSEC(t *testing.T) {
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"plain.test": {Unsigned: true}, "tamper.test": {TamperRRSIG: true}}},
		labtest.Zone(t, "good.test", `_dmarc IN TXT "v=DMARC1; p=reject"`, `news IN A 192.0.2.1`),
		labtest.Zone(t, "plain.test", `_dmarc IN TXT "v=DMARC1; p=reject"`),
		labtest.Zone(t, "tamper.test", `_dmarc IN TXT "v=DMARC1; p=reject"`))
	e := &Evaluator{Resolver: client}
	for _, tc := range []struct {
		from, result, dnssec, reason string
	}{
		{"good.test", Fail, "secure", ""},
		{"news.good.test", Fail, "secure", ""}, // the organizational domain's policy
		{"plain.test", Fail, "insecure", ""},
		{"tamper.test", TempError, "", "DNSSEC bogus: _dmarc.tamper.test TXT: RRSIG"},
	} {
		r := e.Evaluate(context.Background(), Input{FromDomains: []string{tc.from}, SPFResult: "none"})
		if r.Result != tc.result || r.PolicyDNSSEC != tc.dnssec || !strings.Contains(r.Reason, tc.reason) {
			t.Errorf("%s: %s dnssec %q reason %q, want %s %q %q", tc.from, r.Result, r.PolicyDNSSEC, r.Reason, tc.result, tc.dnssec, tc.reason)
		}
	}
}
