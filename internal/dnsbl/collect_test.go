package dnsbl

import (
	"net/netip"
	"slices"
	"testing"
)

// TestCollect: the client's address comes first and once, whether or
// not a host repeats it as a literal (mapped or not); an address with a
// zone is no name to ask; domains come after their registered domains,
// once each; past max the rest is dropped and counted.
func TestCollect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ips     []string
		hosts   []string
		max     int
		wantIPs []string
		wantDom []string
		invalid []string
		dropped int
	}{
		{"client and its literal", []string{"::ffff:192.0.2.1"}, []string{"[192.0.2.1]", "192.0.2.1", "www.Example.test", "[IPv6:2001:db8::1]"}, 20,
			[]string{"192.0.2.1", "2001:db8::1"}, []string{"example.test", "www.example.test"}, nil, 0},
		{"zone", []string{"fe80::1%eth0"}, []string{"example.test"}, 20, nil, []string{"example.test"}, []string{"fe80::1%eth0"}, 0},
		{"over max", []string{"192.0.2.1"}, []string{"a.one.test", "b.two.test"}, 3,
			[]string{"192.0.2.1"}, []string{"one.test", "two.test"}, nil, 2},
	} {
		var ips []netip.Addr
		for _, s := range tc.ips {
			ips = append(ips, netip.MustParseAddr(s))
		}
		n := collect(ips, tc.hosts, tc.max)
		var got []string
		for _, ip := range n.ips {
			got = append(got, ip.String())
		}
		if !slices.Equal(got, tc.wantIPs) || !slices.Equal(n.domains, tc.wantDom) || !slices.Equal(n.invalid, tc.invalid) || n.dropped != tc.dropped {
			t.Errorf("%s: ips %q domains %q invalid %q dropped %d; want %q %q %q %d", tc.name, got, n.domains, n.invalid, n.dropped,
				tc.wantIPs, tc.wantDom, tc.invalid, tc.dropped)
		}
	}
}
