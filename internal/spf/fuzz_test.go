package spf

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary records to the parser: it must never panic,
// and what it accepts must survive a second look (every directive has a
// known mechanism and a valid qualifier).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"v=spf1 -all",
		"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx/24//64 ptr:example.com include:_spf.example.com ~all",
		"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} redirect=_spf.example.com exp=explain.%{d}",
		"v=spf1 a:%{H}.bar -all",
		"v=spf1 a:macro%%percent%_%_space%-url-space.example.com -all",
		"v=spf1 moo.cow=%{i}.%{d2r} ?all",
		"v=spf1 ip4:1.2.3.4/032",
		"v=spf1 %{",
		"v=spf1 a//0 mx/0 -ip6:::1/128",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		r, err := Parse(rec)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for _, d := range r.Directives {
			if !strings.ContainsRune("+-~?", rune(d.Qualifier)) {
				t.Fatalf("qualifier %q", d.Qualifier)
			}
			switch d.Mechanism {
			case "all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists":
			default:
				t.Fatalf("mechanism %q accepted", d.Mechanism)
			}
			if d.domain != nil {
				d.domain.expand(&macroEnv{ptr: func() string { return "unknown" }})
			}
		}
	})
}

// FuzzExplanation covers the explain-string parser and expansion.
func FuzzExplanation(f *testing.F) {
	f.Add("%{i} is not one of %{d}'s designated mail servers.")
	f.Add("See http://%{d}/why.html?s=%{S}&i=%{I}&c=%{C}&r=%{R}&t=%{T}")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseMacroString(s, true, 0)
		if err != nil {
			return
		}
		ms.expand(&macroEnv{sender: "a@b.example", local: "a", domain: "b.example", ptr: func() string { return "unknown" }})
	})
}
