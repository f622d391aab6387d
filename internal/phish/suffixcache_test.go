package phish

import (
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestSuffixCache: the cache answers as suffixParts, on a hit as on a
// miss, for more domains than it has slots, from several goroutines.
func TestSuffixCache(t *testing.T) {
	domains := []string{"example.test", "www.example.test", "WWW.Example.COM.", "a.b.example.co.uk", "co.uk", "uk", "",
		"192.0.2.1", "xn--pypal-4ve.com", "paypal.com.evil.example", "a..b.com", ".com", strings.Repeat("a.", 200) + "com"}
	for i := range 3 * suffixSlots {
		domains = append(domains, "host"+strconv.Itoa(i)+".example"+strconv.Itoa(i%7)+".co.uk")
	}
	c := newSuffixCache()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 2 {
				for i := range domains {
					d := domains[(i+g*97)%len(domains)]
					org, without := c.parts(d)
					if wo, ww := suffixParts(d); org != wo || without != ww {
						t.Errorf("round %d: %q: cache %q %q, suffixParts %q %q", round, d, org, without, wo, ww)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	var nilCache *suffixCache
	if org, _ := nilCache.parts("www.example.test"); org != "example.test" {
		t.Errorf("nil cache: %q", org)
	}
}
