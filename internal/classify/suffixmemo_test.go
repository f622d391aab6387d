package classify

import (
	"fmt"
	"testing"

	"mailwall/internal/phish"
)

// TestSuffixMemo: the memo answers as phish.RegisteredSuffix does, for
// domains seen again, in other case, with a trailing dot, empty, and
// after more domains than it holds.
func TestSuffixMemo(t *testing.T) {
	var m suffixMemo
	domains := []string{"www.example.test", "example.test", "Example.TEST", "mail.example.co.uk", "example.co.uk.", "", "co.uk",
		"192.0.2.1", "[2001:db8::1]", "a..b.test", ".lead.test", "x.xn--p1ai", "example.test"}
	for i := range 12 {
		domains = append(domains, fmt.Sprintf("host%d.example%d.test", i, i%3))
	}
	for round := range 3 {
		for _, d := range append(domains, domains[:5]...) {
			org, suffix := m.lookup(d)
			wantOrg, wantSuffix := phish.RegisteredSuffix(d)
			if org != wantOrg || suffix != wantSuffix {
				t.Errorf("round %d: lookup(%q) = %q, %q; RegisteredSuffix's %q, %q", round, d, org, suffix, wantOrg, wantSuffix)
			}
		}
	}
	m.lookup("example.test")
	if n := testing.AllocsPerRun(10, func() { m.lookup("example.test") }); n != 0 {
		t.Errorf("a domain looked up again: %v allocations", n)
	}
}
