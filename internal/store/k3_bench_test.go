package store

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"mailwall/internal/benchmsg"
	"mailwall/internal/cputime"
)

// BenchmarkK3RecorderPaced records bench/milter's verdicts (the bench
// shape of BenchmarkB24RecordVerdicts) through a Recorder at a steady
// 1,800 a second, as bench/milter's 8 sessions finished messages, on
// SQLite: the recorder's own gathering makes the transactions. What it
// measures is in a CPU profile: the samples under Recorder.run and
// Recorder.Record, over b.N verdicts (-benchtime 27000x: 15 seconds),
// against bench/milter's own profile. cpu-ns/verdict, the process's
// CPU over the run, counts the pacing's wake-ups too: it is not the
// recorder's.
func BenchmarkK3RecorderPaced(b *testing.B) {
	small := b24Kept(b, "benchmark", benchmsg.Body(2<<10, true))
	for _, rate := range []int{1800} {
		b.Run(fmt.Sprint(rate), func(b *testing.B) {
			s := openBench(b, "sqlite")
			defer s.Close()
			t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
			vs := make([]Verdict, b.N)
			for i := range vs {
				vs[i] = b24Verdict(i, t0.Add(time.Duration(i)*time.Millisecond), small)
				b24BenchShape(&vs[i])
			}
			r := s.NewRecorder(slog.New(slog.DiscardHandler), 4096, nil)
			b.ResetTimer()
			c0 := cputime.Process()
			start := time.Now()
			for i := range vs {
				// Each verdict at its time: i/rate seconds from the start.
				if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d)
				}
				r.Record(vs[i])
			}
			r.Close()
			cpu := cputime.Process() - c0
			b.StopTimer()
			if r.Written() != int64(b.N) {
				b.Fatalf("written %d of %d", r.Written(), b.N)
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/verdict")
		})
	}
}
