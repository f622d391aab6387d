package greylist

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// combinedStore is a MemStore with SeenTripletClient as internal/store
// answers it: the triplet recorded, then the client's passes read; -1
// passes when a passed triplet was left untouched.
type combinedStore struct {
	*MemStore
	calls int
}

func (c *combinedStore) SeenTripletClient(ctx context.Context, t Triplet, client string, now time.Time, tm Timing) (Seen, int, time.Time, error) {
	c.calls++
	seen, err := c.MemStore.SeenTriplet(ctx, t, now, tm)
	if err != nil {
		return Seen{}, 0, time.Time{}, err
	}
	n, last, err := c.MemStore.ClientPasses(ctx, client, now, tm.MaxAge)
	return seen, n, last, err
}

// TestCombinedStoreSameDecisions: a store that records a triplet and
// reads its client's passes in one statement gives the same outcomes as
// one asked twice, over a long random run of clients, senders and
// retries (auto-allow included, and expiry past max_age), and a new
// client's first attempt costs it one statement.
func TestCombinedStoreSameDecisions(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: start}
	cfg := Config{Delay: 5 * time.Minute, AutoAllow: 3, Now: clk.now}
	plain, err := New(cfg, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	cs := &combinedStore{MemStore: NewMemStore()}
	both, err := New(cfg, cs)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(25, 1))
	counts := map[Outcome]int{}
	for i := range 20000 {
		step := time.Duration(rng.IntN(120)) * time.Second
		if rng.IntN(2000) == 0 {
			step = 40 * 24 * time.Hour // past max_age: everything starts over
		}
		clk.t = clk.t.Add(step)
		// One address per /24: see TestCombinedStoreSiblings for two.
		r := Request{IP: netip.AddrFrom4([4]byte{192, 0, byte(rng.IntN(8)), 7}), ClientName: dyn,
			Sender: fmt.Sprintf("s%c@example.org", 'a'+rng.IntN(26)), Recipient: fmt.Sprintf("r%c@rcpt.test", 'a'+rng.IntN(5))}
		a, b := plain.Check(context.Background(), r), both.Check(context.Background(), r)
		if a.Outcome != b.Outcome || a.Wait != b.Wait {
			t.Fatalf("request %d (%s, %s -> %s at %s): %s %s with two statements, %s %s with one", i, r.IP, r.Sender, r.Recipient,
				clk.t.Sub(start), a.Outcome, a.Wait, b.Outcome, b.Wait)
		}
		counts[a.Outcome]++
	}
	t.Logf("outcomes: %v", counts)
	for _, o := range []Outcome{Deferred, Passed, AutoAllowed} {
		if counts[o] == 0 {
			t.Errorf("the run never gave %s: it tests too little", o)
		}
	}
	g, _ := New(Config{Delay: time.Minute, AutoAllow: 5, Now: clk.now}, cs)
	before := cs.calls
	if d := g.Check(context.Background(), Request{IP: netip.MustParseAddr("198.51.100.1"), ClientName: dyn, Sender: "x@example.org", Recipient: "y@rcpt.test"}); d.Outcome != Deferred || cs.calls-before != 1 {
		t.Errorf("a new client: %s with %d combined statements, want deferred with 1", d.Outcome, cs.calls-before)
	}
}

// TestCombinedStoreSiblings: the one difference the one statement makes.
// An auto-allowed client's new triplet is recorded (postgrey would only
// have read its count), and a triplet is its client's /24: another
// address of that /24, not auto-allowed, sending the same sender's mail
// to the same recipient a delay later passes at once, as if it had been
// deferred then. A pool of one sender's servers, retrying, is what
// lookup by subnet is there for.
func TestCombinedStoreSiblings(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: start}
	cs := &combinedStore{MemStore: NewMemStore()}
	g, err := New(Config{Delay: 5 * time.Minute, AutoAllow: 2, Now: clk.now}, cs)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(at time.Duration, ip, sender string, want Outcome) {
		t.Helper()
		clk.t = start.Add(at)
		if d := g.Check(context.Background(), Request{IP: netip.MustParseAddr(ip), ClientName: dyn, Sender: sender, Recipient: "bob@rcpt.test"}); d.Outcome != want {
			t.Errorf("%s %s at %s: %s, want %s", ip, sender, at, d.Outcome, want)
		}
	}
	// 192.0.2.10 passes twice, an hour apart: auto-allowed.
	ask(0, "192.0.2.10", "a@example.org", Deferred)
	ask(6*time.Minute, "192.0.2.10", "a@example.org", Passed)
	ask(2*time.Hour, "192.0.2.10", "b@example.org", Deferred)
	ask(2*time.Hour+6*time.Minute, "192.0.2.10", "b@example.org", Passed)
	ask(4*time.Hour, "192.0.2.10", "c@example.org", AutoAllowed) // c's triplet recorded
	// The sibling: c's triplet began 6 minutes ago.
	ask(4*time.Hour+6*time.Minute, "192.0.2.99", "c@example.org", Passed)
	ask(4*time.Hour+6*time.Minute, "192.0.2.99", "d@example.org", Deferred)
}
