package greylist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// batchCounting is a MemStore that counts what a Greylister asks of it:
// writes made while a client waits (SeenTriplet), reads without a write
// (PeekTripletClient) and batches; it can hold its batches back (hold)
// or fail them.
type batchCounting struct {
	*MemStore
	writes, peeks, batches, batched atomic.Int64
	hold                            chan struct{} // non-nil: batches wait for it to close
	failBatches, failPeeks          atomic.Bool
}

func (b *batchCounting) SeenTriplet(ctx context.Context, t Triplet, now time.Time, tm Timing) (Seen, error) {
	b.writes.Add(1)
	return b.MemStore.SeenTriplet(ctx, t, now, tm)
}

func (b *batchCounting) PeekTripletClient(ctx context.Context, t Triplet, client string, now time.Time, maxAge time.Duration) (Row, int, time.Time, error) {
	b.peeks.Add(1)
	if b.failPeeks.Load() {
		return Row{}, 0, time.Time{}, errors.New("database down")
	}
	return b.MemStore.PeekTripletClient(ctx, t, client, now, maxAge)
}

func (b *batchCounting) SeenTriplets(ctx context.Context, reqs []TripletAt, tm Timing) error {
	if b.hold != nil {
		<-b.hold
	}
	if b.failBatches.Load() {
		return errors.New("database down")
	}
	b.batches.Add(1)
	b.batched.Add(int64(len(reqs)))
	return b.MemStore.SeenTriplets(ctx, reqs, tm)
}

// TestWriteBehindSameDecisions: with write-behind a Greylister decides
// as it does without, over a long random run of clients, senders and
// retries (auto-allow and expiry past max_age included), whenever the
// batches land (the flusher runs on its own; sometimes the test waits
// for it, sometimes not, and the fake clock runs far faster than it);
// a new triplet costs a read and no write of its own, and every triplet
// is in the store once Close returns.
func TestWriteBehindSameDecisions(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clk := &clock{t: start}
	cfg := Config{Delay: 5 * time.Minute, AutoAllow: 3, Now: clk.now}
	// Compared with a store that records an auto-allowed client's new
	// triplets too, as internal/store does (combinedStore).
	plainStore := &combinedStore{MemStore: NewMemStore()}
	plain, err := New(cfg, plainStore)
	if err != nil {
		t.Fatal(err)
	}
	bs := &batchCounting{MemStore: NewMemStore()}
	wb, err := New(cfg, bs)
	if err != nil {
		t.Fatal(err)
	}
	if !wb.StartWriteBehind(slog.New(slog.DiscardHandler)) {
		t.Fatal("write-behind not started on a BatchStore")
	}
	rng := rand.New(rand.NewPCG(25, 2))
	counts := map[Outcome]int{}
	for i := range 10000 {
		step := time.Duration(rng.IntN(120)) * time.Second
		if rng.IntN(1000) == 0 {
			step = 40 * 24 * time.Hour
		}
		clk.t = clk.t.Add(step)
		if rng.IntN(100) == 0 {
			time.Sleep(2 * flushAfter) // let a batch land
		}
		r := Request{IP: netip.AddrFrom4([4]byte{192, 0, byte(rng.IntN(8)), 7}), ClientName: dyn,
			Sender: fmt.Sprintf("s%c@example.org", 'a'+rng.IntN(26)), Recipient: fmt.Sprintf("r%c@rcpt.test", 'a'+rng.IntN(5))}
		a, b := plain.Check(context.Background(), r), wb.Check(context.Background(), r)
		if a.Outcome != b.Outcome || a.Wait != b.Wait || a.Text != b.Text {
			t.Fatalf("request %d (%s, %s -> %s at %s): %s %s without write-behind, %s %s with it", i, r.IP, r.Sender, r.Recipient,
				clk.t.Sub(start), a.Outcome, a.Wait, b.Outcome, b.Wait)
		}
		counts[a.Outcome]++
	}
	t.Logf("outcomes: %v; writes while waiting %d, reads %d, batches %d of %d triplets", counts, bs.writes.Load(), bs.peeks.Load(),
		bs.batches.Load(), bs.batched.Load())
	for _, o := range []Outcome{Deferred, Passed, AutoAllowed} {
		if counts[o] == 0 {
			t.Errorf("the run never gave %s: it tests too little", o)
		}
	}
	if bs.batched.Load() == 0 || bs.batches.Load() >= bs.batched.Load() {
		t.Errorf("%d batches of %d triplets: want triplets written several a batch", bs.batches.Load(), bs.batched.Load())
	}
	wb.Close()
	pt, pc := plainStore.Len()
	wt, wc := bs.Len()
	if pt != wt || pc != wc {
		t.Errorf("after Close: %d triplets and %d clients stored, want %d and %d as without write-behind", wt, wc, pt, pc)
	}

	// A new triplet: one read, no write while the client waits.
	w0, p0 := bs.writes.Load(), bs.peeks.Load()
	g, _ := New(Config{Delay: time.Minute, Now: clk.now}, bs)
	g.StartWriteBehind(slog.New(slog.DiscardHandler))
	defer g.Close()
	if d := g.Check(context.Background(), Request{IP: netip.MustParseAddr("198.51.100.1"), ClientName: dyn, Sender: "x@example.org", Recipient: "y@rcpt.test"}); d.Outcome != Deferred {
		t.Errorf("a new triplet: %s, want deferred", d.Outcome)
	}
	if w, p := bs.writes.Load()-w0, bs.peeks.Load()-p0; w != 0 || p != 1 {
		t.Errorf("a new triplet cost %d writes and %d reads while its client waited, want 0 and 1", w, p)
	}
}

// TestWriteBehindFull: while batches cannot be written, maxPending
// deferrals wait; the next new triplets are written while their client
// waits (still deferred, none lost), and once the store takes batches
// again every triplet is in it. A quick retry of a waiting triplet is
// answered from memory.
func TestWriteBehindFull(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	bs := &batchCounting{MemStore: NewMemStore(), hold: make(chan struct{})}
	g, err := New(Config{Delay: time.Minute, Now: clk.now}, bs)
	if err != nil {
		t.Fatal(err)
	}
	g.StartWriteBehind(slog.New(slog.DiscardHandler))
	req := func(i int) Request {
		return Request{IP: netip.MustParseAddr("192.0.2.7"), ClientName: dyn, Sender: "a@example.org", Recipient: fmt.Sprintf("r%d@rcpt.test", i)}
	}
	const extra = 10
	for i := range maxPending + extra {
		if d := g.Check(context.Background(), req(i)); d.Outcome != Deferred {
			t.Fatalf("triplet %d: %s %v, want deferred", i, d.Outcome, d.Err)
		}
	}
	if w := bs.writes.Load(); w != extra {
		t.Errorf("%d triplets written while their client waited, want the %d past maxPending (%d)", w, extra, maxPending)
	}
	clk.t = clk.t.Add(10 * time.Second)
	p0 := bs.peeks.Load()
	if d := g.Check(context.Background(), req(0)); d.Outcome != Deferred || d.Wait != 50*time.Second || bs.peeks.Load() != p0 {
		t.Errorf("quick retry of a waiting triplet: %s %s after %d reads, want deferred 50s from memory", d.Outcome, d.Wait, bs.peeks.Load()-p0)
	}
	close(bs.hold)
	g.Close()
	if n, _ := bs.Len(); n != maxPending+extra {
		t.Errorf("%d triplets stored, want %d", n, maxPending+extra)
	}
	// Closed: still greylisting, writing as it goes.
	clk.t = clk.t.Add(time.Minute)
	if d := g.Check(context.Background(), req(1)); d.Outcome != Passed {
		t.Errorf("retry after the delay, after Close: %s %v, want passed", d.Outcome, d.Err)
	}
}

// TestWriteBehindRetryWaits: a retry past the delay whose triplet still
// waits to be written (the store slow) waits for its batch, then passes.
func TestWriteBehindRetryWaits(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	bs := &batchCounting{MemStore: NewMemStore(), hold: make(chan struct{})}
	g, _ := New(Config{Delay: time.Minute, Now: clk.now}, bs)
	g.StartWriteBehind(slog.New(slog.DiscardHandler))
	defer g.Close()
	r := Request{IP: netip.MustParseAddr("192.0.2.7"), ClientName: dyn, Sender: "a@example.org", Recipient: "b@rcpt.test"}
	if d := g.Check(context.Background(), r); d.Outcome != Deferred {
		t.Fatalf("first: %s", d.Outcome)
	}
	clk.t = clk.t.Add(2 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	d := g.Check(ctx, r)
	cancel()
	if d.Outcome != Failed || d.Err == nil {
		t.Errorf("retry while its batch cannot be written, until its deadline: %s %v, want failed (not greylisted)", d.Outcome, d.Err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if d := g.Check(context.Background(), r); d.Outcome != Passed {
			t.Errorf("retry once its batch is written: %s %v, want passed", d.Outcome, d.Err)
		}
	}()
	time.Sleep(10 * time.Millisecond)
	close(bs.hold)
	wg.Wait()
}

// TestWriteBehindStoreFails: a read that fails lets the mail through
// (never deferred); a batch that fails is forgotten, logged, and its
// senders' retries are deferred again (the price of write-behind, as of
// a crash before the flush).
func TestWriteBehindStoreFails(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	bs := &batchCounting{MemStore: NewMemStore()}
	g, _ := New(Config{Delay: time.Minute, Now: clk.now}, bs)
	g.StartWriteBehind(slog.New(slog.DiscardHandler))
	defer g.Close()
	r := Request{IP: netip.MustParseAddr("192.0.2.7"), ClientName: dyn, Sender: "a@example.org", Recipient: "b@rcpt.test"}
	bs.failPeeks.Store(true)
	if d := g.Check(context.Background(), r); d.Outcome != Failed || d.Err == nil {
		t.Errorf("read failing: %s %v, want failed", d.Outcome, d.Err)
	}
	bs.failPeeks.Store(false)
	bs.failBatches.Store(true)
	if d := g.Check(context.Background(), r); d.Outcome != Deferred {
		t.Errorf("first attempt: %s", d.Outcome)
	}
	for g.wb.Load().pendingLen() > 0 {
		time.Sleep(time.Millisecond)
	}
	bs.failBatches.Store(false)
	clk.t = clk.t.Add(2 * time.Minute)
	if d := g.Check(context.Background(), r); d.Outcome != Deferred || d.Wait != time.Minute {
		t.Errorf("retry after a lost batch: %s %s, want deferred again for the whole delay", d.Outcome, d.Wait)
	}
}

// TestDeferTextAsReplacer: the deferral text, written out, is what
// strings.Replacer made of it, for templates with every placeholder,
// braces that are none, and controls, in the reason too.
func TestDeferTextAsReplacer(t *testing.T) {
	ip := netip.MustParseAddr("2001:db8::7")
	for _, tc := range []struct{ text, reason, rcpt string }{
		{DefaultText, "no forward-confirmed reverse DNS", "bob@Rcpt.Test"},
		{"{seconds}{reason}{client}{recipient_domain}", "r", "a@b"},
		{"{{seconds}} {seconds {unknown} { } {", "x\x7fy", "no-at-sign"},
		{"tab\there\r\nnext {reason} é {recipient_domain}", "a\nb", "x@" + strings.Repeat("D", 150)},
		{"", "r", "a@b"},
	} {
		g, err := New(Config{Text: tc.text}, NewMemStore())
		if err != nil {
			t.Fatal(err)
		}
		wait := 299*time.Second + time.Millisecond
		got := g.text(tc.reason, wait, ip, tc.rcpt)
		_, domain, _ := strings.Cut(tc.rcpt, "@")
		want := "4.7.1 " + strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, strings.NewReplacer("{seconds}", "300", "{reason}", tc.reason, "{client}", ip.String(),
			"{recipient_domain}", shortName(strings.ToLower(domain))).Replace(g.cfg.Text))
		if got != want {
			t.Errorf("%q: %q, want %q", tc.text, got, want)
		}
	}
}

// pendingLen, for the tests, is how many triplets wait or are being written.
func (w *writeBehind) pendingLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}
