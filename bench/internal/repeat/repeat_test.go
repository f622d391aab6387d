package repeat

import "testing"

func TestMedian(t *testing.T) {
	id := func(f float64) float64 { return f }
	for _, tt := range []struct {
		rs          []float64
		med, lo, hi float64
	}{
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1}, 4, 1, 4}, // an even count: the upper middle
		{[]float64{7, 9, 1, 8, 2}, 7, 1, 9},
	} {
		in := append([]float64(nil), tt.rs...)
		med, lo, hi := Median(tt.rs, id)
		if med != tt.med || lo != tt.lo || hi != tt.hi {
			t.Errorf("Median(%v) = %v, %v, %v; want %v, %v, %v", in, med, lo, hi, tt.med, tt.lo, tt.hi)
		}
		for i := range in {
			if in[i] != tt.rs[i] {
				t.Errorf("Median changed its input: %v, was %v", tt.rs, in)
				break
			}
		}
	}
}
