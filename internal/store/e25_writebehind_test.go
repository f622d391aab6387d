package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"mailwall/internal/greylist"
)

// TestSeenTripletsMatchesMemStore: requests recorded in batches
// (SeenTriplets, the greylist's write-behind) leave the rows that
// greylist.MemStore's rules make of the same requests, batch by batch,
// batches of every size (duplicates of a triplet within one included:
// recorded at the first), across every rule (new, early retry, pass,
// touch, past the retry window, past max_age); and PeekTripletClient
// reads those rows, and a client's passes, as they are.
func TestSeenTripletsMatchesMemStore(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		mem := greylist.NewMemStore()
		tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
		at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		trip := func(i int) greylist.Triplet {
			return greylist.Triplet{Client: fmt.Sprintf("192.0.2.%d/24", i%3), Sender: "alice@example.org", Recipient: fmt.Sprintf("r%d@rcpt.test", i)}
		}
		gaps := []time.Duration{0, time.Second, 100 * time.Second, 300 * time.Second, 2 * time.Hour, 49 * time.Hour, 36 * 24 * time.Hour}
		rng := rand.New(rand.NewPCG(25, 3))
		rows := 0
		for b := range 120 {
			batch := make([]greylist.TripletAt, 1+rng.IntN(70))
			for i := range batch {
				at = at.Add(gaps[rng.IntN(len(gaps))] / time.Duration(1+rng.IntN(50)))
				batch[i] = greylist.TripletAt{Triplet: trip(rng.IntN(40)), At: at.Unix()}
			}
			if err := s.SeenTriplets(ctx, batch, tm); err != nil {
				t.Fatalf("batch %d of %d: %v", b, len(batch), err)
			}
			mem.SeenTriplets(ctx, batch, tm)
			for i := range 40 {
				got, _, _, err := s.PeekTripletClient(ctx, trip(i), "", at, tm.MaxAge)
				want, _, _, _ := mem.PeekTripletClient(ctx, trip(i), "", at, tm.MaxAge)
				if err != nil || got != want {
					t.Fatalf("after batch %d, %v: store %+v %v, MemStore %+v", b, trip(i), got, err, want)
				}
			}
			rows += len(batch)
		}
		n, _ := mem.Len()
		t.Logf("%d requests in 120 batches, %d triplets", rows, n)

		// The client's passes, read with the triplet; "" reads none.
		if err := s.CountClientPass(ctx, "192.0.2.7", at, tm.MaxAge); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			client string
			now    time.Time
			passes int
		}{{"192.0.2.7", at, 1}, {"", at, 0}, {"192.0.2.8", at, 0}, {"192.0.2.7", at.Add(36 * 24 * time.Hour), 0}} {
			_, n, last, err := s.PeekTripletClient(ctx, trip(0), tc.client, tc.now, tm.MaxAge)
			wantLast := time.Time{}
			if tc.passes > 0 {
				wantLast = time.Unix(at.Unix(), 0)
			}
			if err != nil || n != tc.passes || !last.Equal(wantLast) {
				t.Errorf("client %q at %s: %d passes, last %v, %v; want %d, %v", tc.client, tc.now, n, last, err, tc.passes, wantLast)
			}
		}
	})
}

// TestSeenTripletsTwoHosts: two stores on one PostgreSQL database, as
// two MX hosts: a triplet deferred on one and written behind is found by
// the other, which passes its retry after the delay; both writing the
// same new triplet in batches at once is no error.
func TestSeenTripletsTwoHosts(t *testing.T) {
	a, b := sharedPostgres(t)
	ctx := context.Background()
	tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tr := greylist.Triplet{Client: "192.0.2.0/24", Sender: "alice@example.org", Recipient: "bob@rcpt.test"}
	both := []greylist.TripletAt{{Triplet: tr, At: now.Unix()}, {Triplet: greylist.Triplet{Client: "192.0.2.0/24", Sender: "carol@example.org", Recipient: "bob@rcpt.test"}, At: now.Unix()}}
	errs := make(chan error, 2)
	for _, s := range []*Store{a, b} {
		go func() { errs <- s.SeenTriplets(ctx, both, tm) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	row, _, _, err := b.PeekTripletClient(ctx, tr, "", now, tm.MaxAge)
	if err != nil || !row.Found || row.First != now.Unix() {
		t.Fatalf("the other host reads %+v %v, want the triplet begun at %d", row, err, now.Unix())
	}
	seen, err := b.SeenTriplet(ctx, tr, now.Add(tm.Delay), tm)
	if err != nil || !seen.Passed.Equal(now.Add(tm.Delay)) {
		t.Errorf("retry on the other host after the delay: %+v %v, want passed", seen, err)
	}
}
