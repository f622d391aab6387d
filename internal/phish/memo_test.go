package phish

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestMemo: a memo answers as the function it remembers, on a hit as on
// a miss, for more keys than it has slots, from several goroutines: the
// public suffix list's answers, and the brands hosts and texts imitate.
func TestMemo(t *testing.T) {
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"example.test", "www.example.test", "WWW.Example.COM.", "a.b.example.co.uk", "co.uk", "uk", "",
		"192.0.2.1", "xn--pypal-4ve.com", "paypal.com.evil.example", "paypa1-login.example", "micros0ft.test", "a..b.com", ".com",
		"PayPal Support", "Sender", "аpple.com", strings.Repeat("a.", 200) + "com"}
	for i := range 3 * memoSlots {
		keys = append(keys, "host"+strconv.Itoa(i)+".example"+strconv.Itoa(i%7)+".co.uk")
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 2 {
				for i := range keys {
					k := keys[(i+g*97)%len(keys)]
					if got, want := c.suffixes.get(k, suffixPairOf), suffixPairOf(k); got != want {
						t.Errorf("round %d: %q: suffixes %v, want %v", round, k, got, want)
						return
					}
					if got, want := c.hostBrands.get(k, c.matchHost), c.brands.matchHost(k); !slices.Equal(got, want) {
						t.Errorf("round %d: %q: host brands %v, want %v", round, k, got, want)
						return
					}
					if got, want := c.textBrands.get(k, c.matchNear), c.brands.match(k, true); !slices.Equal(got, want) {
						t.Errorf("round %d: %q: text brands %v, want %v", round, k, got, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if got := c.hostBrands.get("paypa1-login.example", c.matchHost); len(got) == 0 {
		t.Error("paypa1-login.example: no brand found; the test compares nothing")
	}
	var none *memo[suffixPair]
	if p := none.get("www.example.test", suffixPairOf); p.org != "example.test" {
		t.Errorf("nil memo: %v", p)
	}
}
