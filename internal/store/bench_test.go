package store

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"mailwall/internal/classify"
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

// BenchmarkModelMemory1M: a model of a million distinct features (a
// million buckets in use of the default 2^21) stored in SQLite, with a
// log of changes not yet folded as long as it gets, read whole into
// memory by classify.OpenShared, as serve does at start:
// reports the heap the model keeps (live-MB, after a collection), the
// most the heap held while it loaded (peak-MB, sampled every
// millisecond) and what the load allocated in all (alloc-MB). Issue 24
// asks for under 64 MB.
func BenchmarkModelMemory1M(b *testing.B) {
	ctx := context.Background()
	s := openBench(b, "sqlite")
	defer s.Close()
	const n = 1 << 20
	rows := make([]classify.BucketCount, n)
	for i := range rows {
		// Distinct buckets spread over the table: i times an odd number,
		// modulo 2^21, is a permutation.
		rows[i] = classify.BucketCount{Bucket: uint32(i*0x9E3779B1) & (1<<classify.DefaultBits - 1), Junk: int64(i%7 + 1), Ham: int64(i%5 + 1)}
	}
	slices.SortFunc(rows, func(a, b classify.BucketCount) int { return cmp.Compare(a.Bucket, b.Bucket) })
	if err := s.AddCounts(ctx, classify.SiteModel, classify.DefaultBits, 1000, 1000, rows); err != nil {
		b.Fatal(err)
	}
	rows = nil
	// And a log of changes just short of its fold, which a whole read
	// sums in memory: rows of 100,000 changes, as batches of a few
	// hundred messages write them.
	for i := 0; i < compactAt-1; {
		log := classify.Learning{Class: "junk", Buckets: make([]uint32, min(100_000, compactAt-1-i))}
		for k := range log.Buckets {
			log.Buckets[k] = uint32((i+k)*0x9E3779B1+12345) & (1<<classify.DefaultBits - 1)
		}
		if _, err := s.LearnCounts(ctx, classify.SiteModel, classify.DefaultBits, []classify.Learning{log}); err != nil {
			b.Fatal(err)
		}
		i += len(log.Buckets)
	}
	b.ResetTimer()
	var live, peak, alloc float64
	for range b.N {
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		stop := make(chan struct{})
		peakc := make(chan uint64)
		go func() {
			var top uint64
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				top = max(top, m.HeapInuse)
				select {
				case <-stop:
					peakc <- top
					return
				case <-t.C:
				}
			}
		}()
		sh, err := classify.OpenShared(ctx, s, classify.SiteModel, 0)
		if err != nil {
			b.Fatal(err)
		}
		close(stop)
		top := <-peakc
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		runtime.GC()
		var m2 runtime.MemStats
		runtime.ReadMemStats(&m2)
		const mb = 1 << 20
		live = float64(m2.HeapInuse-m0.HeapInuse) / mb
		peak = float64(max(top, m1.HeapInuse)-m0.HeapInuse) / mb
		alloc = float64(m2.TotalAlloc-m0.TotalAlloc) / mb
		runtime.KeepAlive(sh)
	}
	b.ReportMetric(live, "live-MB")
	b.ReportMetric(peak, "peak-MB")
	b.ReportMetric(alloc, "alloc-MB")
}
