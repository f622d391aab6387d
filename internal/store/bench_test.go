package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkInsertVerdicts writes verdicts with their DMARC rows in the
// recorder's batches of 200, on SQLite: ns/op is the cost per message
// of keeping its results (b.N counts verdicts).
func BenchmarkInsertVerdicts(b *testing.B) {
	s, err := Open(context.Background(), "sqlite", filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := make([]Verdict, maxBatch)
	t0 := time.Now()
	for i := range batch {
		batch[i] = testVerdict(t0, "bench.test", "192.0.2.1", "accept")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += maxBatch {
		if err := s.InsertVerdicts(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}
