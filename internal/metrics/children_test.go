package metrics

import (
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestChildrenConcurrent: goroutines counting the same and new label
// pairs at once lose no count, and each pair has one counter, the
// vector's (the map copied on a new pair keeps the others).
func TestChildrenConcurrent(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_total", Help: "t"}, []string{"a", "b"})
	c := newChildren(vec)
	const workers, rounds, pairs = 8, 200, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				p := (i + w) % pairs
				c.with("stage"+strconv.Itoa(p%5), "result"+strconv.Itoa(p/5)).Inc()
			}
		})
	}
	wg.Wait()
	total := 0.0
	for p := range pairs {
		a, b := "stage"+strconv.Itoa(p%5), "result"+strconv.Itoa(p/5)
		if c.with(a, b) != vec.WithLabelValues(a, b) {
			t.Errorf("%s %s: not the vector's counter", a, b)
		}
		var m dto.Metric
		if err := vec.WithLabelValues(a, b).Write(&m); err != nil {
			t.Fatal(err)
		}
		total += m.GetCounter().GetValue()
	}
	if total != workers*rounds {
		t.Errorf("counted %v, want %d", total, workers*rounds)
	}
	if n := len(*c.m.Load()); n != pairs {
		t.Errorf("%d pairs cached, want %d", n, pairs)
	}
}
