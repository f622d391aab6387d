package dnsbl

import (
	"net/netip"
	"testing"
)

// FuzzParseSites: no panic; what parses prints back to a list that parses
// to the same sites; a filter matches only 127/8-free IPv4 values it was
// built from (checked by re-parsing), and a weight stays within MaxWeight.
func FuzzParseSites(f *testing.F) {
	for _, s := range []string{
		"zen.spamhaus.org=127.0.0.[2..11]*3",
		"list.dnswl.org=127.0.[0..255].[2..3]*-4, b.barracudacentral.org*2",
		"wl.mailspike.net=127.0.0.[17;18]*-1 bl.spamcop.net",
		"x.example=[127.0.0.2]*+5",
		"x.example=127.0.[0.0].1",
		"x.example=[[127.0.0.2]]",
	} {
		f.Add(s, uint32(0x7f000002))
	}
	f.Fuzz(func(t *testing.T, list string, addr uint32) {
		sites, err := ParseSites(list)
		if err != nil {
			return
		}
		var text string
		for _, s := range sites {
			if s.Weight > MaxWeight || s.Weight < -MaxWeight {
				t.Fatalf("weight %d out of bounds", s.Weight)
			}
			text += s.String() + " "
		}
		again, err := ParseSites(text)
		if err != nil || len(again) != len(sites) {
			t.Fatalf("%q printed as %q: %v", list, text, err)
		}
		ip := netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)})
		for i, s := range sites {
			if again[i].String() != s.String() {
				t.Fatalf("%q: round trip %q -> %q", list, s.String(), again[i].String())
			}
			if (s.Filter == nil) != (again[i].Filter == nil) {
				t.Fatalf("%q: filter lost", list)
			}
			if s.Filter != nil && s.Filter.Match(ip) != again[i].Filter.Match(ip) {
				t.Fatalf("%q: %s matches %s differently after a round trip", list, s.Filter, ip)
			}
		}
	})
}
