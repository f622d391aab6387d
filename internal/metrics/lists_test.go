package metrics

import (
	"strings"
	"testing"
)

// TestListHits: policy requests the allow and block lists decided,
// counted by list.
func TestListHits(t *testing.T) {
	m := New()
	m.ListHit("block")
	m.ListHit("block")
	m.ListHit("allow")
	out := scrape(t, m)
	for _, want := range []string{`mailwall_lists_total{list="block"} 2`, `mailwall_lists_total{list="allow"} 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
