package dnsbl

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseSite(t *testing.T) {
	for _, tc := range []struct {
		in     string
		zone   string
		filter string
		weight int
		err    string
	}{
		// The forms postconf(5) and common configurations use.
		{in: "zen.spamhaus.org=127.0.0.[2..11]*3", zone: "zen.spamhaus.org", filter: "127.0.0.[2..11]", weight: 3},
		{in: "list.dnswl.org=127.0.[0..255].[2..3]*-4", zone: "list.dnswl.org", filter: "127.0.[0..255].[2..3]", weight: -4},
		{in: "b.barracudacentral.org*2", zone: "b.barracudacentral.org", weight: 2},
		{in: "bl.spamcop.net", zone: "bl.spamcop.net", weight: 1}, // default weight 1
		{in: "example.com=127.0.0.4", zone: "example.com", filter: "127.0.0.4", weight: 1},
		{in: "wl.mailspike.net=127.0.0.[17;18]*-1", zone: "wl.mailspike.net", filter: "127.0.0.[17;18]", weight: -1},
		{in: "x.example=127.0.0.[2;4..6;9]*+2", zone: "x.example", filter: "127.0.0.[2;4..6;9]", weight: 2},
		{in: "x.example=[127.0.0.2]", zone: "x.example", filter: "127.0.0.2", weight: 1}, // [] around the whole, as ip_match
		{in: "X.Example=127.000.0.2", zone: "x.example", filter: "127.000.0.2", weight: 1},
		{in: "x.example.", err: "empty label"}, // Postfix: "misplaced delimiter"
		{in: "_dmarc-ish.example", zone: "_dmarc-ish.example", weight: 1},
		{in: "x.example*0", zone: "x.example", weight: 0},
		// Errors, each as Postfix refuses it.
		{in: "", err: "empty"},
		{in: "x.example*", err: "bad weight"},
		{in: "x.example*3x", err: "bad weight"},
		{in: "x.example*3.5", err: "bad weight"},
		{in: "x.example*--3", err: "bad weight"},
		{in: "x.example*99999999999999999999", err: "bad weight"},
		{in: "x.example*1000001", err: "bad weight"},
		{in: "x.example=", err: "empty address pattern"},
		{in: "x.example=127.0.0", err: "four fields"},
		{in: "x.example=127.0.0.2.1", err: "four fields"},
		{in: "x.example=127.0.0.256", err: "0..255"},
		{in: "x.example=127.0.0.-1", err: "0..255"},
		{in: "x.example=127.0.0.[3..2]", err: "range"},
		{in: "x.example=127.0.0.[2..]", err: "0..255"},
		{in: "x.example=127.0.0.[]", err: "0..255"},
		{in: "x.example=127.0.0.[2;]", err: "0..255"},
		{in: "x.example=127.0.0.[2", err: "need"},
		{in: "x.example=127.0.[0.0].1", err: "0..255"},       // a sequence cannot span fields
		{in: "x.example=127.0.0.3[6..9]", err: "bad filter"}, // number and sequence in one field
		{in: "x.example=127.0.0.[2...3]", err: "0..255"},
		{in: "x.example=[127.0.0.2", err: "missing"},
		{in: "x.example=127.0.0.*", err: "bad weight"},
		{in: "=127.0.0.2", err: "bad domain"},
		{in: "-x.example", err: "bad domain"},
		{in: "x..example", err: "bad domain"},
		{in: "x.example/24", err: "bad domain"},
		{in: "127.0.0.1", err: "numeric"},
		{in: strings.Repeat("a", 64) + ".example", err: "63"},
	} {
		s, err := ParseSite(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSite(%q) = %v, %v; want error with %q", tc.in, s, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSite(%q): %v", tc.in, err)
			continue
		}
		f := ""
		if s.Filter != nil {
			f = s.Filter.String()
		}
		if s.Zone != tc.zone || f != tc.filter || s.Weight != tc.weight {
			t.Errorf("ParseSite(%q) = %q %q %d, want %q %q %d", tc.in, s.Zone, f, s.Weight, tc.zone, tc.filter, tc.weight)
		}
		// String gives back a site that parses the same.
		again, err := ParseSite(s.String())
		if err != nil || again.String() != s.String() {
			t.Errorf("ParseSite(%q).String() = %q does not round-trip: %v %v", tc.in, s.String(), again, err)
		}
	}
}

func TestParseSites(t *testing.T) {
	sites, err := ParseSites("zen.spamhaus.org=127.0.0.[2..11]*3, list.dnswl.org=127.0.[0..255].0*-2\n\tlist.dnswl.org=127.0.[0..255].[2..3]*-4 ,, bl.spamcop.net")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sites {
		got = append(got, s.String())
	}
	want := "zen.spamhaus.org=127.0.0.[2..11]*3 list.dnswl.org=127.0.[0..255].0*-2 list.dnswl.org=127.0.[0..255].[2..3]*-4 bl.spamcop.net*1"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q\nwant %q", strings.Join(got, " "), want)
	}
	if zs := group(sites); len(zs) != 3 || len(zs[1].sites) != 2 {
		t.Errorf("group: %+v; want list.dnswl.org's two sites under one zone", zs)
	}
	if _, err := ParseSites("ok.example, bad.example=1.2.3"); err == nil {
		t.Error("a bad site among good ones: no error")
	}
}

func TestFilterMatch(t *testing.T) {
	for _, tc := range []struct {
		filter string
		addr   string
		want   bool
	}{
		{"127.0.0.[2..11]", "127.0.0.2", true},
		{"127.0.0.[2..11]", "127.0.0.11", true},
		{"127.0.0.[2..11]", "127.0.0.12", false},
		{"127.0.0.[2..11]", "127.0.0.1", false},
		{"127.0.0.[2..11]", "127.0.1.2", false},
		{"127.0.[0..255].[2..3]", "127.0.15.3", true},
		{"127.0.[0..255].[2..3]", "127.0.15.1", false},
		{"127.0.0.[17;18]", "127.0.0.18", true},
		{"127.0.0.[17;18]", "127.0.0.19", false},
		{"127.0.0.[2;4..6]", "127.0.0.5", true},
		{"127.0.0.[2;4..6]", "127.0.0.3", false},
		{"127.0.0.[0..255]", "127.0.0.255", true},
		{"127.0.0.4", "127.0.0.4", true},
		{"127.0.0.4", "::ffff:127.0.0.4", true},
		{"127.0.0.4", "::1", false},
	} {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", tc.filter, err)
		}
		if got := f.Match(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s matches %s = %v, want %v", tc.filter, tc.addr, got, tc.want)
		}
	}
}
