package config

import (
	"strings"
	"testing"
)

func TestDNSBLDefaultsOff(t *testing.T) {
	d := Default().DNSBL
	if len(d.IPSites) != 0 || len(d.DomainSites) != 0 {
		t.Errorf("default lists zones: %v %v (their operators' terms apply: the admin must choose)", d.IPSites, d.DomainSites)
	}
	if d.RejectThreshold != 1 || d.AllowlistThreshold != 0 || d.Action != "reject" || d.ScoreWeight != 20 {
		t.Errorf("defaults = %+v, want postscreen's threshold 1, allow list off, reject", d)
	}
}

func TestDNSBLValidate(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string // want: part of the error, "" for valid
	}{
		{"dnsbl: {ip_sites: [\"zen.example.test=127.0.0.[2..11]*3\", \"list.dnswl.example=127.0.[0..255].[2..3]*-4\"], allowlist_threshold: -1, greylist_threshold: 1, reject_threshold: 3}", ""},
		{"dnsbl: {ip_sites: [\"zen.example.test=127.0.0.[2..11\"]}", "dnsbl.ip_sites"},
		{"dnsbl: {ip_sites: [\"zen.example.test.\"]}", "dnsbl.ip_sites"},
		{"dnsbl: {ip_sites: [\"zen.example.test*x\"]}", "dnsbl.ip_sites"},
		{"dnsbl: {domain_sites: [\"-bad-.example\"]}", "dnsbl.domain_sites"},
		{"dnsbl: {reject_threshold: 0}", "reject_threshold"},
		{"dnsbl: {allowlist_threshold: 1}", "allowlist_threshold"},
		{"dnsbl: {greylist_threshold: -1}", "greylist_threshold"},
		{"dnsbl: {action: drop}", "dnsbl.action"},
		{"dnsbl: {timeout: 5s, budget: 1s}", "budget"},
		{"dnsbl: {budget: 60s}", "budget"},
		{"dnsbl: {timeout: 0s}", "timeout"},
		{"dnsbl: {reply: \" \"}", "dnsbl.reply"},
		{"dnsbl: {reply_names: {\"k.zen.example\": \"a\\nb\"}}", "reply_names"},
		{"dnsbl: {no_such_key: 1}", "no_such_key"},
		{"dnsbl: {score_weight: 0}", "dnsbl.score_weight"},
		{"dnsbl: {score_weight: 101}", "dnsbl.score_weight"},
		{"checks: {analyzers: [dnsbl, dnsbl]}", "checks.analyzers"},
		{"checks: {analyzers: [dnsbl, phish]}", ""},
	} {
		_, err := Parse([]byte(tc.yaml))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want one naming %s", tc.yaml, err, tc.want)
		}
	}
}
