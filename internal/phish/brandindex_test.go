package phish

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"
)

// matchInEvery is matchIn as it was before the gram index: every name
// tried on every token. TestMatchInIndex holds the index to it.
func (ix *brandIndex) matchInEvery(out []brandMatch, s string, near, common bool) []brandMatch {
	add := func(m brandMatch) {
		if !slices.ContainsFunc(out, func(o brandMatch) bool { return o.brand == m.brand }) {
			out = append(out, m)
		}
	}
	folded := Normalize(s)
	for _, tk := range compoundTokens(nil, folded) {
		tok := tk.text
		skel := skeleton(tok)
		lookAlike := near && len(skel) <= maxNearToken && !ordinaryWords[tok] && !ordinaryWords[skel] && !ix.exact[tok]
		for _, bn := range ix.names {
			if how := bn.how(tk, skel, common, lookAlike); how != "" {
				add(brandMatch{brand: bn.brand, how: how, token: tok})
			}
		}
	}
	ascii := isLatin(folded)
	for _, p := range ix.phrases {
		if (isLatin(p.word) || !ascii) && strings.Contains(folded, p.word) {
			add(brandMatch{brand: p.brand, how: "name", token: p.word})
		}
	}
	return out
}

// TestMatchInIndex: matchIn with its gram index finds what trying every
// name finds, in the same order with the same how and token, on every
// one-edit look-alike of every default name (deleted, doubled and
// replaced letters, digits and Cyrillic for letters, rn for m), inside
// words and host labels and alone, with near and common on and off.
func TestMatchInIndex(t *testing.T) {
	ix := newBrandIndex(append(DefaultBrands(), Brand{Name: "minatobank", Domains: []string{"minato.test"}, Words: []string{"みなと銀行", "minato bank"}}))
	var texts []string
	for _, bn := range ix.names {
		w := bn.word
		variants := []string{w, strings.ToUpper(w), strings.ReplaceAll(w, "m", "rn"), strings.ReplaceAll(w, "o", "0"), strings.ReplaceAll(w, "a", "а")}
		for i := range len(w) {
			variants = append(variants, w[:i]+w[i+1:], w[:i]+w[i:i+1]+w[i:])
			for _, c := range []string{"x", "0", "1", "о", "é"} {
				variants = append(variants, w[:i]+c+w[i+1:], w[:i]+c+w[i:])
			}
		}
		for _, v := range variants {
			texts = append(texts, v, "secure"+v, v+"jp", "my-"+v+"-login", "start-"+v, v+" support team", "www."+v+"-account.example")
		}
	}
	texts = append(texts, "", "the quick brown fox", "yahoofinance", "amazing offers", "みなと銀行からのお知らせ", "Bank of America alerts",
		"outlook.4team", "pineapple", "follow-ups", "ＰａｙＰａｌ", "pay\u200bpal", strings.Repeat("amazon", 20))
	n := 0
	for _, s := range texts {
		for _, near := range []bool{true, false} {
			for _, common := range []bool{true, false} {
				got, want := ix.matchIn(nil, s, near, common), ix.matchInEvery(nil, s, near, common)
				if !slices.Equal(got, want) {
					t.Errorf("%q near=%v common=%v: %v, every name finds %v", s, near, common, got, want)
				}
				if len(want) > 0 {
					n++
				}
			}
		}
	}
	if n < len(texts) {
		t.Errorf("only %d of %d texts match a brand: the look-alikes are not look-alikes", n, 4*len(texts))
	}
}

// TestIsIPLiteral: the shortcut for names answers as the parsers do.
func TestIsIPLiteral(t *testing.T) {
	parsed := func(host string) bool {
		h := strings.Trim(host, "[]")
		if _, err := netip.ParseAddr(h); err == nil {
			return true
		}
		_, err := strconv.ParseUint(h, 0, 32)
		return err == nil
	}
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"192.0.2.1", true}, {"[2001:db8::1]", true}, {"fe80::1%eth0", true}, {"3221225985", true}, {"0xc0000201", true},
		{"0o17", true}, {"0b101", true}, {"1_000", true}, {"www.example.test", false}, {"abc", false}, {"0xzz", false},
		{"192.0.2.1.example", false}, {"1.2.3", false}, {"", false}, {"bad", false}, {"x", false}, {"::", true}, {"deadbeef", false},
	} {
		if got := isIPLiteral(tc.host); got != tc.want || got != parsed(tc.host) {
			t.Errorf("isIPLiteral(%q) = %v, want %v (the parsers say %v)", tc.host, got, tc.want, parsed(tc.host))
		}
	}
}

// TestSet: add answers as a map does, below and past the slice's size.
func TestSet(t *testing.T) {
	var s set[int]
	seen := map[int]bool{}
	for i := range 200 {
		v := i * 7 % 40 // each of 0..39, then again
		if got, want := s.add(v), !seen[v]; got != want {
			t.Fatalf("add(%d) = %v, want %v", v, got, want)
		}
		seen[v] = true
	}
}

// TestSuffixParts: one walk of the list gives what EffectiveTLDPlusOne
// and PublicSuffix give, wildcard and exception rules, IP addresses and
// empty labels included.
func TestSuffixParts(t *testing.T) {
	for _, domain := range []string{"", ".", "a..b.test", ".a.test", "co.uk", "a.co.uk", "b.a.co.uk", "192.0.2.1", "[2001:db8::1]", "EXAMPLE.TEST.",
		"localhost", "x.blogspot.com", "city.kawasaki.jp", "a.city.kawasaki.jp", "b.a.kawasaki.jp", "a.kawasaki.jp", "例え.jp", "www.example.test", "test"} {
		d := strings.ToLower(strings.TrimSuffix(domain, "."))
		wantOrg, err := publicsuffix.EffectiveTLDPlusOne(d)
		if err != nil {
			wantOrg = d
		}
		wantWithout := ""
		if suffix, _ := publicsuffix.PublicSuffix(d); suffix != d {
			wantWithout = strings.TrimSuffix(d, "."+suffix)
		}
		if org, without := suffixParts(domain); org != wantOrg || without != wantWithout {
			t.Errorf("suffixParts(%q) = %q, %q, want %q, %q", domain, org, without, wantOrg, wantWithout)
		}
	}
}

// TestOwns: a brand owns its domains and names under them, in any case,
// not names that end in one without a dot before it.
func TestOwns(t *testing.T) {
	ix := newBrandIndex([]Brand{{Name: "amazon", Domains: []string{"Amazon.co.jp", "amzn.to"}}})
	for domain, want := range map[string]bool{"amazon.co.jp": true, "AMAZON.CO.JP.": true, "www.amazon.co.jp": true, "evil-amazon.co.jp": false,
		"amazon.co.jp.evil.test": false, "amzn.to": true, "xamzn.to": false, "co.jp": false, "": false} {
		if got := ix.owns(0, domain); got != want {
			t.Errorf("owns(%q) = %v, want %v", domain, got, want)
		}
	}
}
