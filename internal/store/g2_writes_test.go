package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"mailwall/internal/greylist"
)

// TestWritesTakeTurns: on SQLite a greylist write and a batch of
// verdicts wait for this process's write slot (lockWrites) rather than
// meet in SQLite's busy handler, and give up when their context ends
// first; on PostgreSQL, where hosts write side by side, there is no slot.
func TestWritesTakeTurns(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		tr := greylist.Triplet{Client: "192.0.2.0/24", Sender: "alice@example.org", Recipient: "bob@rcpt.test"}
		unlock, err := s.lockWrites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		writes := []struct {
			name  string
			write func(context.Context) error
		}{
			{"greylist triplet", func(ctx context.Context) error { _, err := s.SeenTriplet(ctx, tr, now, tm); return err }},
			{"triplet and client", func(ctx context.Context) error {
				_, _, _, err := s.SeenTripletClient(ctx, tr, "192.0.2.7", now, tm)
				return err
			}},
			{"client pass", func(ctx context.Context) error { return s.CountClientPass(ctx, "192.0.2.7", now, tm.MaxAge) }},
			{"verdicts", func(ctx context.Context) error {
				return s.InsertVerdicts(ctx, []Verdict{testVerdict(now, "example.org", "192.0.2.7", "reject")})
			}},
		}
		for _, w := range writes {
			wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			err := w.write(wctx)
			cancel()
			if s.driver == "sqlite" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s while the slot is taken: %v, want it to wait until its deadline", w.name, err)
			}
			if s.driver == "postgres" && err != nil {
				t.Errorf("%s: %v (no slot on PostgreSQL)", w.name, err)
			}
		}
		unlock()
		for _, w := range writes {
			if err := w.write(ctx); err != nil {
				t.Errorf("%s after the slot is free: %v", w.name, err)
			}
		}
	})
}

// TestRecorderBesideGreylist: the recorder's batches (64 rows a
// transaction on SQLite) and greylist writes from several goroutines at
// once all land: every verdict written and none lost, every triplet's
// delay begun exactly once.
func TestRecorderBesideGreylist(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		r := s.NewRecorder(slog.New(slog.DiscardHandler), 0, nil)
		const writers, each = 4, 150
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					r.Record(testVerdict(now, fmt.Sprintf("w%d.example.org", w), "192.0.2.7", "defer"))
					tr := greylist.Triplet{Client: "192.0.2.0/24", Sender: fmt.Sprintf("s%d-%d@example.org", w, i), Recipient: "bob@rcpt.test"}
					seen, err := s.SeenTriplet(ctx, tr, now, tm)
					if err == nil && (!seen.First.Equal(now) || !seen.Passed.IsZero()) {
						err = fmt.Errorf("%s: %+v, want a new triplet's delay begun now", tr.Sender, seen)
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		r.Close()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if r.Written() != writers*each || r.Lost() != 0 {
			t.Errorf("recorder wrote %d, lost %d; want %d, 0", r.Written(), r.Lost(), writers*each)
		}
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM verdicts`).Scan(&n); err != nil || n != writers*each {
			t.Errorf("verdict rows: %d %v, want %d", n, err, writers*each)
		}
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM greylist_triplets`).Scan(&n); err != nil || n != writers*each {
			t.Errorf("triplet rows: %d %v, want %d", n, err, writers*each)
		}
	})
}

// TestWriteSlotAfterLockedStore: while another process holds SQLite's
// write lock (here another connection's open write transaction) a
// greylist write fails when its context ends, as before the slot
// existed (greylisting then lets the mail through), and the slot is
// free again afterwards: the next write, once the lock is gone, lands.
func TestWriteSlotAfterLockedStore(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/mailwall.db"
	s, err := Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tm := greylist.Timing{Delay: 300 * time.Second, RetryWindow: 48 * time.Hour, MaxAge: 35 * 24 * time.Hour}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tr := greylist.Triplet{Client: "192.0.2.0/24", Sender: "alice@example.org", Recipient: "bob@rcpt.test"}
	tx, err := other.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		t.Fatal(err)
	}
	for _, write := range []func(context.Context) error{
		func(ctx context.Context) error { _, err := s.SeenTriplet(ctx, tr, now, tm); return err },
		func(ctx context.Context) error {
			return s.InsertVerdicts(ctx, []Verdict{testVerdict(now, "example.org", "192.0.2.7", "reject")})
		},
	} {
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := write(wctx)
		cancel()
		if err == nil {
			t.Fatal("a write while another process holds the lock succeeded")
		}
	}
	tx.Rollback()
	if seen, err := s.SeenTriplet(ctx, tr, now, tm); err != nil || !seen.First.Equal(now) {
		t.Fatalf("after the lock is gone: %+v %v, want the triplet's delay begun", seen, err)
	}
}
