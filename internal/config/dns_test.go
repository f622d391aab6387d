package config

import (
	"strings"
	"testing"
)

func TestDNSSECConfig(t *testing.T) {
	if v, err := Default().DNS.Validator(); v != nil || err != nil || Default().DNS.DNSSEC != "off" {
		t.Errorf("default: dnssec %q validator %v err %v, want off", Default().DNS.DNSSEC, v, err)
	}
	for _, tc := range []struct {
		yaml, want string // want: part of the error, "" for valid
	}{
		{`dns: {dnssec: validate}`, ""},
		{`dns: {dnssec: trust_ad, trust_ad_servers: ["192.0.2.53", "2001:db8::/64"]}`, ""},
		{`dns: {dnssec: validate, trust_anchors: [". IN DS 12345 13 2 ` + strings.Repeat("AB", 32) + `"]}`, ""},
		{`dns: {dnssec: on}`, "dns.dnssec"},
		{`dns: {dnssec: validate, trust_anchors: ["example.test. IN A 192.0.2.1"]}`, "neither DS nor DNSKEY"},
		{`dns: {dnssec: validate, trust_anchors: ["not a record"]}`, "trust anchors"},
		{`dns: {dnssec: trust_ad, trust_ad_servers: ["resolver.example"]}`, "dns.trust_ad_servers"},
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
