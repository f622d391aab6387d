package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestDebugPeers(t *testing.T) {
	many := make([]string, MaxDebugPeers+1)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.%d.0/24", i)
	}
	for _, tc := range []struct {
		name, yaml, err string
		want            []netip.Prefix
	}{
		{"default", "", "", []netip.Prefix{}},
		{"addresses and networks", "log:\n  debug_peers: [192.0.2.7, 198.51.100.0/24, \"2001:db8::/32\"]\n", "",
			[]netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")}},
		{"not an address", "log:\n  debug_peers: [mail.example.test]\n", "log.debug_peers", nil},
		{"too many", "log:\n  debug_peers: [" + strings.Join(many, ", ") + "]\n", "at most 64", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Log.DebugPeerPrefixes()
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("%v %v, want %v", got, err, tc.want)
			}
		})
	}
}
