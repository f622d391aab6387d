package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"mailwall/internal/greylist"
)

// TestGreylistMatchesMemStore runs the same requests on the SQL store and
// on greylist.MemStore (the rules in Go) and wants the same answers: a
// scripted path through every rule, then random requests over a few
// triplets and clients spread across weeks.
func TestGreylistMatchesMemStore(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		mem := greylist.NewMemStore()
		tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
		start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		trip := func(i int) greylist.Triplet {
			return greylist.Triplet{Client: fmt.Sprintf("192.0.2.%d/24", i%3), Sender: "alice@example.org", Recipient: fmt.Sprintf("r%d@rcpt.test", i%4)}
		}
		seen := func(step string, t0 greylist.Triplet, at time.Time) greylist.Seen {
			got, err := s.SeenTriplet(ctx, t0, at, tm)
			if err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			want, _ := mem.SeenTriplet(ctx, t0, at, tm)
			if got.Passed.Equal(time.Unix(1, 0)) && !want.Passed.IsZero() && want.Passed.Before(at) {
				return want // passed and in use: not written, not read
			}
			if !got.First.Equal(want.First) || !got.Passed.Equal(want.Passed) {
				t.Fatalf("%s: %v at %s: store %+v, MemStore %+v", step, t0, at.Sub(start), got, want)
			}
			return got
		}
		// The script.
		t0 := trip(0)
		if got := seen("new", t0, start); !got.First.Equal(start) || !got.Passed.IsZero() {
			t.Fatalf("new triplet: %+v", got)
		}
		seen("early", t0, start.Add(299*time.Second))
		if got := seen("after delay", t0, start.Add(300*time.Second)); !got.Passed.Equal(start.Add(300 * time.Second)) {
			t.Fatalf("not passed after the delay: %+v", got)
		}
		if got := seen("later", t0, start.Add(time.Hour)); !got.Passed.Equal(start.Add(300 * time.Second)) {
			t.Fatalf("pass time moved: %+v", got)
		}
		t1 := trip(1)
		seen("new 2", t1, start)
		if got := seen("past retry window", t1, start.Add(49*time.Hour)); !got.First.Equal(start.Add(49*time.Hour)) || !got.Passed.IsZero() {
			t.Fatalf("retry past the window did not start over: %+v", got)
		}
		// Random requests, compared step by step.
		rng := rand.New(rand.NewPCG(1, 2))
		at := start.Add(50 * time.Hour)
		for i := range 400 {
			gaps := []time.Duration{0, time.Second, 100 * time.Second, 300 * time.Second, time.Hour, 47 * time.Hour, 49 * time.Hour, 36 * 24 * time.Hour}
			at = at.Add(gaps[rng.IntN(len(gaps))] / time.Duration(1+rng.IntN(3)))
			if rng.IntN(4) == 0 {
				c := fmt.Sprintf("192.0.2.%d", rng.IntN(3))
				if err := s.CountClientPass(ctx, c, at, tm.MaxAge); err != nil {
					t.Fatal(err)
				}
				mem.CountClientPass(ctx, c, at, tm.MaxAge)
				ask := at.Add(time.Duration(rng.IntN(3)) * time.Hour)
				n, last, err := s.ClientPasses(ctx, c, ask, tm.MaxAge)
				wn, wlast, _ := mem.ClientPasses(ctx, c, ask, tm.MaxAge)
				if err != nil || n != wn || !last.Equal(wlast) {
					t.Fatalf("step %d: client %s: store %d %v %v, MemStore %d %v", i, c, n, last, err, wn, wlast)
				}
				continue
			}
			seen(fmt.Sprintf("random step %d", i), trip(rng.IntN(12)), at)
		}
	})
}

// TestGreylistClients: passes count once an hour, expire after max age;
// an unknown client has none.
func TestGreylistClients(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		maxAge := 35 * 24 * time.Hour
		start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		if n, _, err := s.ClientPasses(ctx, "192.0.2.1", start, maxAge); n != 0 || err != nil {
			t.Fatalf("unknown client: %d %v", n, err)
		}
		for _, d := range []time.Duration{0, time.Minute, 59 * time.Minute, time.Hour, 3 * time.Hour} {
			if err := s.CountClientPass(ctx, "192.0.2.1", start.Add(d), maxAge); err != nil {
				t.Fatal(err)
			}
		}
		n, last, err := s.ClientPasses(ctx, "192.0.2.1", start.Add(3*time.Hour), maxAge)
		if n != 3 || !last.Equal(start.Add(3*time.Hour)) || err != nil {
			t.Errorf("passes %d last %v (%v), want 3 at +3h (0, 1h, 3h counted)", n, last, err)
		}
		if n, _, _ := s.ClientPasses(ctx, "192.0.2.1", start.Add(3*time.Hour+maxAge+time.Second), maxAge); n != 0 {
			t.Errorf("expired client has %d passes", n)
		}
	})
}

// TestPurgeGreylist: rows unseen for max age go, unpassed triplets unseen
// for the retry window go, the rest stay.
func TestPurgeGreylist(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
		start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		tr := func(r string) greylist.Triplet {
			return greylist.Triplet{Client: "192.0.2.0/24", Sender: "a@b.test", Recipient: r}
		}
		s.SeenTriplet(ctx, tr("passed-old"), start, tm)
		s.SeenTriplet(ctx, tr("passed-old"), start.Add(time.Hour), tm)
		s.SeenTriplet(ctx, tr("unpassed-old"), start.Add(10*24*time.Hour), tm)
		s.SeenTriplet(ctx, tr("passed-recent"), start.Add(10*24*time.Hour), tm)
		s.SeenTriplet(ctx, tr("passed-recent"), start.Add(11*24*time.Hour), tm)
		s.SeenTriplet(ctx, tr("unpassed-recent"), start.Add(36*24*time.Hour), tm)
		s.CountClientPass(ctx, "192.0.2.1", start, tm.MaxAge)
		s.CountClientPass(ctx, "192.0.2.2", start.Add(20*24*time.Hour), tm.MaxAge)
		n, err := s.PurgeGreylist(ctx, start.Add(37*24*time.Hour), GreylistRetention{RetryWindow: tm.RetryWindow, MaxAge: tm.MaxAge})
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("purged %d rows, want 3 (passed-old, unpassed-old, client .1)", n)
		}
		var left []string
		rows, _ := s.db.QueryContext(ctx, `SELECT recipient FROM greylist_triplets ORDER BY recipient`)
		for rows.Next() {
			var r string
			rows.Scan(&r)
			left = append(left, r)
		}
		rows.Close()
		if fmt.Sprint(left) != "[passed-recent unpassed-recent]" {
			t.Errorf("left %v", left)
		}
		if n, _, _ := s.ClientPasses(ctx, "192.0.2.2", start.Add(37*24*time.Hour), tm.MaxAge); n != 1 {
			t.Errorf("recent client purged")
		}
	})
}

// TestGreylistSharedPostgres: two stores on one PostgreSQL database (two
// MX hosts) greylist as one: a triplet first seen by one passes on the
// other after the delay, and a client's passes counted on either add up.
func TestGreylistSharedPostgres(t *testing.T) {
	ctx := context.Background()
	a, b := sharedPostgres(t)
	tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tr := greylist.Triplet{Client: "192.0.2.0/24", Sender: "alice@example.org", Recipient: "bob@rcpt.test"}
	if got, err := a.SeenTriplet(ctx, tr, start, tm); err != nil || !got.Passed.IsZero() {
		t.Fatalf("host a, first attempt: %+v %v", got, err)
	}
	if got, _ := b.SeenTriplet(ctx, tr, start.Add(100*time.Second), tm); !got.First.Equal(start) || !got.Passed.IsZero() {
		t.Fatalf("host b, early retry: %+v, want the delay begun on host a", got)
	}
	if got, _ := b.SeenTriplet(ctx, tr, start.Add(300*time.Second), tm); !got.Passed.Equal(start.Add(300 * time.Second)) {
		t.Fatalf("host b, retry after the delay: %+v, want passed", got)
	}
	a.CountClientPass(ctx, "192.0.2.7", start, tm.MaxAge)
	b.CountClientPass(ctx, "192.0.2.7", start.Add(2*time.Hour), tm.MaxAge)
	if n, _, _ := a.ClientPasses(ctx, "192.0.2.7", start.Add(2*time.Hour), tm.MaxAge); n != 2 {
		t.Errorf("passes counted on both hosts: %d, want 2", n)
	}
}

// TestGreylistSeenTripletClient: the one-statement request answers what
// ClientPasses then SeenTriplet answer on a store that saw the same
// requests, step by step: a new triplet of an unknown client, its
// retry, a client with counted passes, one whose passes expired; a
// passed triplet seen within the hour is neither written nor read
// (passes -1).
func TestGreylistSeenTripletClient(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ref := greylist.NewMemStore()
		tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
		start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		const client = "192.0.2.0/24"
		count := func(at time.Time) {
			if err := s.CountClientPass(ctx, client, at, tm.MaxAge); err != nil {
				t.Fatal(err)
			}
			ref.CountClientPass(ctx, client, at, tm.MaxAge)
		}
		for _, step := range []struct {
			name   string
			rcpt   string
			at     time.Duration
			count  bool // count a pass for the client first
			passes int
		}{
			{"new triplet, unknown client", "a@rcpt.test", 0, false, 0},
			{"retried too early", "a@rcpt.test", time.Minute, false, 0},
			{"retried after the delay", "a@rcpt.test", 5 * time.Minute, false, 0},
			{"passed, seen within the hour", "a@rcpt.test", 10 * time.Minute, false, -1},
			{"client with a pass, new triplet", "b@rcpt.test", 2 * time.Hour, true, 1},
			{"two passes", "c@rcpt.test", 4 * time.Hour, true, 2},
			{"passes expired", "d@rcpt.test", 4*time.Hour + tm.MaxAge + time.Second, false, 0},
		} {
			at := start.Add(step.at)
			if step.count {
				count(at.Add(-time.Second))
			}
			tr := greylist.Triplet{Client: client, Sender: "alice@example.org", Recipient: step.rcpt}
			seen, passes, last, err := s.SeenTripletClient(ctx, tr, client, at, tm)
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			wantN, wantLast, _ := ref.ClientPasses(ctx, client, at, tm.MaxAge)
			want, _ := ref.SeenTriplet(ctx, tr, at, tm)
			if passes != step.passes || passes >= 0 && (passes != wantN || !last.Equal(wantLast)) {
				t.Errorf("%s: passes %d last %v, want %d (ClientPasses: %d, %v)", step.name, passes, last, step.passes, wantN, wantLast)
			}
			if passes < 0 {
				continue // passed and in use: not read
			}
			if !seen.First.Equal(want.First) || !seen.Passed.Equal(want.Passed) {
				t.Errorf("%s: seen %+v, SeenTriplet %+v", step.name, seen, want)
			}
		}
	})
}
