package phish

import (
	"reflect"
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
	// Author fields: the same Mailbox as parsed each time, twice over
	// (a hit), and appending to one copy leaves the remembered one be.
	for _, raw := range []string{"Sender <sender@example.test>", `"PayPal" <service@paypa1.example>`, "a@b.example, c@d.example",
		"no address", "=?utf-8?q?Caf=C3=A9?= <a@b.example>", "Bob <bob@example..test.>", `"unbalanced <a@b.example>`} {
		for _, list := range []bool{false, true} {
			want := parseMailboxLazy(raw, noCharset, list)
			for range 2 {
				got := c.mailbox(raw, noCharset, list)
				if !reflect.DeepEqual(clipMailbox(got), clipMailbox(want)) {
					t.Errorf("%q (list %v): %+v, want %+v", raw, list, got, want)
				}
			}
			a, b := c.mailbox(raw, noCharset, list), c.mailbox(raw, noCharset, list)
			a.bad("mark a")
			b.bad("mark b")
			a.note("note a")
			b.note("note b")
			if a.Malformed[len(a.Malformed)-1] != "mark a" || a.Notes[len(a.Notes)-1] != "note a" {
				t.Errorf("%q (list %v): appending to one copy changed another: %q, %q", raw, list, a.Malformed, a.Notes)
			}
		}
	}
	if got := c.hostBrands.get("paypa1-login.example", c.matchHost); len(got) == 0 {
		t.Error("paypa1-login.example: no brand found; the test compares nothing")
	}
	var none *memo[suffixPair]
	if p := none.get("www.example.test", suffixPairOf); p.org != "example.test" {
		t.Errorf("nil memo: %v", p)
	}
}
