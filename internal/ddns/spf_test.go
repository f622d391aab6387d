package ddns

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestRewriteSPF(t *testing.T) {
	long := "v=spf1 " + strings.Repeat("include:a.example.com ", 100) + "-all"
	near := "v=spf1 ip4:1.2.3.4 " + strings.Repeat("x", 230) + " -all" // 250 octets
	for _, tc := range []struct {
		name    string
		txts    [][]string
		old     []netip.Addr
		cur     string
		want    []string // nil: unchanged
		wantIdx int
		err     error
	}{
		{"plain", [][]string{{"v=spf1 mx ip4:1.2.3.4 -all"}}, addrs("1.2.3.4"), "5.6.7.8",
			[]string{"v=spf1 mx ip4:5.6.7.8 -all"}, 0, nil},
		{"other TXT kept apart", [][]string{{"google-site-verification=abc"}, {"v=spf1  mx  +ip4:1.2.3.4/32 ~all"}}, addrs("1.2.3.4"), "5.6.7.8",
			[]string{"v=spf1  mx  +ip4:5.6.7.8/32 ~all"}, 1, nil},
		{"case and qualifier", [][]string{{"V=SPF1 ~IP4:1.2.3.4 ?all"}}, addrs("1.2.3.4"), "9.9.9.9",
			[]string{"V=SPF1 ~IP4:9.9.9.9 ?all"}, 0, nil},
		{"range left alone", [][]string{{"v=spf1 ip4:1.2.3.0/24 -all"}}, addrs("1.2.3.4"), "1.2.3.9", nil, 0, nil},
		{"similar address left alone", [][]string{{"v=spf1 ip4:1.2.3.40 ip4:11.2.3.4 -all"}}, addrs("1.2.3.4"), "5.6.7.8", nil, 0, nil},
		{"already current", [][]string{{"v=spf1 ip4:5.6.7.8 ip4:1.2.3.4 -all"}}, addrs("1.2.3.4"), "5.6.7.8", nil, 0, nil},
		{"no old term", [][]string{{"v=spf1 a mx -all"}}, addrs("1.2.3.4"), "5.6.7.8", nil, 0, nil},
		{"ip6 other form", [][]string{{"v=spf1 ip4:1.2.3.4 ip6:2001:DB8:0:0::1 -all"}}, addrs("2001:db8::1"), "2a01:4f8::7",
			[]string{"v=spf1 ip4:1.2.3.4 ip6:2a01:4f8::7 -all"}, 0, nil},
		{"ip6 term untouched by ip4 change", [][]string{{"v=spf1 ip6:2001:db8::1 ip4:1.2.3.4 -all"}}, addrs("1.2.3.4"), "5.6.7.8",
			[]string{"v=spf1 ip6:2001:db8::1 ip4:5.6.7.8 -all"}, 0, nil},
		{"second string edited in place", [][]string{{"v=spf1 mx ", "ip4:1.2.3.4 -all"}}, addrs("1.2.3.4"), "10.20.30.40",
			[]string{"v=spf1 mx ", "ip4:10.20.30.40 -all"}, 0, nil},
		{"term across strings resplit", [][]string{{"v=spf1 ip4:1.2", ".3.4 -all"}}, addrs("1.2.3.4"), "5.6.7.8",
			[]string{"v=spf1 ip4:5.6.7.8 -all"}, 0, nil},
		{"string outgrows 255: resplit", [][]string{{near}}, addrs("1.2.3.4"), "100.200.100.200",
			splitStrings(strings.Replace(near, "1.2.3.4", "100.200.100.200", 1)), 0, nil},
		{"several old addresses", [][]string{{"v=spf1 ip4:1.1.1.1 ip4:2.2.2.2 -all"}}, addrs("1.1.1.1", "2.2.2.2"), "5.6.7.8",
			[]string{"v=spf1 ip4:5.6.7.8 ip4:5.6.7.8 -all"}, 0, nil},
		{"not spf1", [][]string{{"v=spf10 ip4:1.2.3.4"}}, addrs("1.2.3.4"), "5.6.7.8", nil, -1, ErrNoSPF},
		{"none", nil, addrs("1.2.3.4"), "5.6.7.8", nil, -1, ErrNoSPF},
		{"two SPF records", [][]string{{"v=spf1 ip4:1.2.3.4 -all"}, {"v=spf1 mx -all"}}, addrs("1.2.3.4"), "5.6.7.8", nil, -1, ErrMultipleSPF},
		{"too long", [][]string{splitStrings(long)}, addrs("1.2.3.4"), "5.6.7.8", nil, -1, ErrSPFTooLong},
		{"too many strings", [][]string{append([]string{"v=spf1"}, slices.Repeat([]string{" mx"}, 20)...)}, addrs("1.2.3.4"), "5.6.7.8", nil, -1, ErrSPFTooLong},
		{"escaped bytes kept", [][]string{{`v=spf1 ip4:1.2.3.4 exp=\"x\" \255 -all`}}, addrs("1.2.3.4"), "5.6.7.8",
			[]string{`v=spf1 ip4:5.6.7.8 exp=\"x\" \255 -all`}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ed, err := RewriteSPF(tc.txts, tc.old, netip.MustParseAddr(tc.cur))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if ed.Index != tc.wantIdx {
				t.Errorf("index %d, want %d", ed.Index, tc.wantIdx)
			}
			if tc.want == nil {
				if ed.Changed {
					t.Errorf("changed to %q", ed.Strings)
				}
				return
			}
			if !ed.Changed || !slices.Equal(ed.Strings, tc.want) {
				t.Errorf("got %q (changed %v), want %q", ed.Strings, ed.Changed, tc.want)
			}
			for _, s := range ed.Strings {
				if wireLen(s) > 255 {
					t.Errorf("string of %d octets", wireLen(s))
				}
			}
		})
	}
}

// FuzzRewriteSPF: whatever the record, the rewrite never panics, keeps
// every string within 255 octets, and changes nothing but the address
// text: putting the old address back gives the record it started from.
func FuzzRewriteSPF(f *testing.F) {
	f.Add("v=spf1 mx ip4:1.2.3.4 -all", "", "1.2.3.4", "5.6.7.8")
	f.Add("v=spf1 ip4:1.2", ".3.4/32 -all", "1.2.3.4", "5.6.7.8")
	f.Add("v=spf1 ip6:2001:db8::1 ~all", "v=spf1", "2001:db8::1", "2a01::1")
	f.Add(`v=spf1 \"ip4:1.2.3.4\" ip4:1.2.3.4`, `\255\`, "1.2.3.4", "255.255.255.255")
	f.Fuzz(func(t *testing.T, s1, s2, oldS, curS string) {
		old, err1 := netip.ParseAddr(oldS)
		cur, err2 := netip.ParseAddr(curS)
		if err1 != nil || err2 != nil || old.Is4() != cur.Is4() || old.Zone() != "" || cur.Zone() != "" {
			return
		}
		strs := []string{s1}
		if s2 != "" {
			strs = append(strs, s2)
		}
		ed, err := RewriteSPF([][]string{strs}, []netip.Addr{old}, cur)
		if err != nil || !ed.Changed {
			return
		}
		for _, s := range ed.Strings {
			if wireLen(s) > 255 {
				t.Fatalf("string of %d octets: %q", wireLen(s), s)
			}
		}
		orig, got := strings.Split(strings.Join(strs, ""), " "), strings.Split(strings.Join(ed.Strings, ""), " ")
		if len(orig) != len(got) {
			t.Fatalf("%q became %q: spacing changed", strs, ed.Strings)
		}
		for i := range orig {
			if orig[i] == got[i] {
				continue
			}
			a, ok1 := mechAddr(orig[i])
			b, ok2 := mechAddr(got[i])
			if !ok1 || !ok2 || a != old || b != cur || strings.Replace(orig[i], addrText(orig[i]), cur.String(), 1) != got[i] {
				t.Fatalf("term %q became %q", orig[i], got[i])
			}
		}
	})
}

// mechAddr parses an ip4:/ip6: term of one address.
func mechAddr(term string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(addrText(term))
	return a, err == nil
}

func addrText(term string) string {
	_, rest, ok := strings.Cut(term, ":")
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "/")
	return rest
}
