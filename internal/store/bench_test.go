package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkInsertVerdicts writes verdicts with their DMARC rows in the
// recorder's batches of 200, on SQLite: ns/op is the cost per message
// of keeping its results (b.N counts verdicts).
func BenchmarkInsertVerdicts(b *testing.B) {
	// 40: a batch when mail comes one message at a time (the recorder's
	// 20 ms gathering at 2,000 messages a second); 200: a full batch.
	for _, size := range []int{40, maxBatch} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			s, err := Open(context.Background(), "sqlite", filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := make([]Verdict, size)
			t0 := time.Now()
			for i := range batch {
				batch[i] = testVerdict(t0, "bench.test", "192.0.2.1", "accept")
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				if err := s.InsertVerdicts(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOverview runs the dashboard overview's queries (stage charts,
// actions, top domains and IPs) over a day of 100,000 verdicts on SQLite:
// ns/op is the store's share of one page view.
func BenchmarkOverview(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite", filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	since := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	const n = 100000
	batch := make([]Verdict, 0, 1000)
	for i := range n {
		v := testVerdict(since.Add(time.Duration(i)*24*time.Hour/n), fmt.Sprintf("d%d.test", i%500), fmt.Sprintf("192.0.2.%d", i%250), "accept")
		v.DMARCRow = nil
		batch = append(batch, v)
		if len(batch) == cap(batch) {
			if err := s.InsertVerdicts(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.StageRates(ctx, since, since.Add(24*time.Hour), time.Hour); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ActionCounts(ctx, since); err != nil {
			b.Fatal(err)
		}
		for _, by := range []string{"domain", "ip"} {
			if _, err := s.TopSenders(ctx, by, since, 10); err != nil {
				b.Fatal(err)
			}
		}
	}
}
