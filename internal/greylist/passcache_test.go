package greylist

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// countingStore counts the statements a Greylister sends its store, and
// fails them while fail is set.
type countingStore struct {
	Store
	calls atomic.Int64
	fail  atomic.Bool
}

func (c *countingStore) SeenTriplet(ctx context.Context, t Triplet, now time.Time, tm Timing) (Seen, error) {
	c.calls.Add(1)
	if c.fail.Load() {
		return Seen{}, errors.New("store down")
	}
	return c.Store.SeenTriplet(ctx, t, now, tm)
}

func (c *countingStore) ClientPasses(ctx context.Context, client string, now time.Time, maxAge time.Duration) (int, time.Time, error) {
	c.calls.Add(1)
	if c.fail.Load() {
		return 0, time.Time{}, errors.New("store down")
	}
	return c.Store.ClientPasses(ctx, client, now, maxAge)
}

func (c *countingStore) CountClientPass(ctx context.Context, client string, now time.Time, maxAge time.Duration) error {
	c.calls.Add(1)
	return c.Store.CountClientPass(ctx, client, now, maxAge)
}

// TestPassCacheSparesTheStore: a passed triplet's next mail within
// TouchEvery, and an auto-allowed client's within the hour its count
// stands, cost no statement, with the same outcome; a client two passes
// or more short of auto-allowed is not asked about for an hour; past
// those, the store is asked again. Deferrals and store failures are
// never cached.
func TestPassCacheSparesTheStore(t *testing.T) {
	st := &countingStore{Store: NewMemStore()}
	c := &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	g, err := New(Config{Delay: time.Minute, AutoAllow: 2, Now: c.now}, st)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(sender string, want Outcome, wantCalls int64) {
		t.Helper()
		before := st.calls.Load()
		d := g.Check(context.Background(), Request{IP: netip.MustParseAddr("192.0.2.10"), ClientName: dyn, Sender: sender, Recipient: "bob@rcpt.test"})
		if d.Outcome != want || st.calls.Load()-before != wantCalls {
			t.Errorf("%s at %s: %s (%v) with %d statements, want %s with %d", sender, c.t.Format(time.TimeOnly), d.Outcome, d.Err,
				st.calls.Load()-before, want, wantCalls)
		}
	}
	start := c.t
	ask("alice@example.org", Deferred, 2) // ClientPasses (0: two short, cached for the hour), SeenTriplet
	ask("alice@example.org", Deferred, 1) // a deferral is not cached
	c.t = start.Add(2 * time.Minute)
	ask("alice@example.org", Passed, 2) // SeenTriplet, CountClientPass
	ask("alice@example.org", Passed, 0)
	c.t = start.Add(2*time.Minute + TouchEvery - time.Second)
	ask("alice@example.org", Passed, 0)
	c.t = start.Add(2*time.Minute + TouchEvery)
	ask("alice@example.org", Passed, 2) // asked again (1 pass: one short, not cached), cached again
	ask("alice@example.org", Passed, 0)

	// A second sender's pass, an hour after the first, auto-allows the
	// client (AutoAllow 2, counted once an hour).
	ask("carol@example.org", Deferred, 2)
	c.t = c.t.Add(2 * time.Minute)
	ask("carol@example.org", Passed, 3)
	ask("dave@example.org", AutoAllowed, 1) // ClientPasses says 2: cached until the count's hour is over
	ask("erin@example.org", AutoAllowed, 0)
	c.t = c.t.Add(countEvery)
	ask("erin@example.org", AutoAllowed, 2) // ClientPasses, CountClientPass keeps it alive
	ask("frank@example.org", AutoAllowed, 0)

	// With AutoAllow 1 the next pass allows: the count is asked each
	// time.
	g1, _ := New(Config{Delay: time.Minute, AutoAllow: 1, Now: c.now}, st)
	for range 2 {
		before := st.calls.Load()
		if d := g1.Check(context.Background(), Request{IP: netip.MustParseAddr("192.0.2.77"), ClientName: dyn, Sender: "y@example.org", Recipient: "bob@rcpt.test"}); d.Outcome != Deferred || st.calls.Load()-before != 2 {
			t.Errorf("AutoAllow 1: %s with %d statements, want deferred with 2", d.Outcome, st.calls.Load()-before)
		}
	}

	// A failing store's answer is not cached.
	st.fail.Store(true)
	g2, _ := New(Config{Delay: time.Minute, Now: c.now}, st)
	for range 2 {
		before := st.calls.Load()
		if d := g2.Check(context.Background(), Request{IP: netip.MustParseAddr("192.0.2.99"), ClientName: dyn, Sender: "x@example.org", Recipient: "bob@rcpt.test"}); d.Outcome != Failed || st.calls.Load() == before {
			t.Errorf("store down: %s, %d statements", d.Outcome, st.calls.Load()-before)
		}
	}
}

// TestPassCacheBounded: however many entries go in, at most twice the
// bound are kept, the newest among them; an entry past its second is
// gone; keys do not run into each other where parts do.
func TestPassCacheBounded(t *testing.T) {
	c := newPassCache(4)
	key := func(i int) cacheKey {
		return keyOf('t', "192.0.2.0/24", fmt.Sprintf("s%d@example.org", i), "bob@rcpt.test")
	}
	for i := range 100 {
		c.put(key(i), 1000)
		if n := c.len(); n > 8 {
			t.Fatalf("%d entries after %d puts, want at most 8", n, i+1)
		}
	}
	last := key(99)
	if !c.get(last, 999) {
		t.Error("the newest entry is gone")
	}
	if c.get(last, 1000) {
		t.Error("an entry stands past its second")
	}
	if c.get(key(0), 0) {
		t.Error("the oldest entry is still there")
	}
	if keyOf('t', "ab", "c") == keyOf('t', "a", "bc") || keyOf('t', "a") == keyOf('n', "a") {
		t.Error("keys of different parts or kinds are equal")
	}
}
