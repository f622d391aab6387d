package config

import (
	"strings"
	"testing"
)

// TestRcptViaAndZoneActions: greylist.via and dnsbl.rcpt_via are policy
// or milter (policy by default); greylisting in the milter keeps its
// tarpit under Postfix's milter_command_timeout; dnsbl.zone_actions
// names list zones with reject or defer.
func TestRcptViaAndZoneActions(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || c.Greylist.Via != "policy" || c.DNSBL.RcptVia != "policy" || len(c.DNSBL.ZoneActions) != 0 {
		t.Fatalf("defaults: %v %q %q %v", err, c.Greylist.Via, c.DNSBL.RcptVia, c.DNSBL.ZoneActions)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"greylist:\n  via: milter\n  tarpit: 20s\n", ""},
		{"dnsbl:\n  rcpt_via: milter\n", ""},
		{"dnsbl:\n  zone_actions: {\"zen.example.org\": reject, \"bl.example.org.\": defer}\n", ""},
		{"greylist:\n  via: both\n", "greylist.via"},
		{"greylist:\n  via: milter\n  tarpit: 30s\n", "milter_command_timeout"},
		{"dnsbl:\n  rcpt_via: postscreen\n", "dnsbl.rcpt_via"},
		{"dnsbl:\n  zone_actions: {\"zen.example.org\": none}\n", "dnsbl.zone_actions"},
		{"dnsbl:\n  zone_actions: {\"bad zone\": reject}\n", "dnsbl.zone_actions"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
