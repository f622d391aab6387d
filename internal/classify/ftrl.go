package classify

import (
	"fmt"
	"math"
)

// FTRL is logistic regression over hashed binary features, trained
// online with FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View
// from the Trenches", KDD 2013, algorithm 1): per bucket the accumulated
// gradient z and squared gradient n, from which the weight is computed
// when needed; L1 keeps rarely useful buckets at exactly 0.
type FTRL struct {
	Alpha, Beta, L1, L2 float64

	bits  uint8
	table []ftrlBucket
}

// ftrlBucket keeps a bucket's z and n side by side: one cache line read
// for both.
type ftrlBucket struct{ z, n float32 }

// DefaultBits is the table size of a new model, 2^21 buckets: a million
// distinct features fill it half, and each model kind stores 8 bytes a
// bucket (16 MB).
const DefaultBits = 21

// Bounds on a table's size, also checked on load.
const (
	minBits = 10
	maxBits = 26
)

// NewFTRL returns an untrained model of 2^bits buckets with default
// learning parameters (chosen on the corpus's train split).
func NewFTRL(bits int) *FTRL {
	bits = min(max(bits, minBits), maxBits)
	return &FTRL{Alpha: 0.3, Beta: 1, L1: 1, L2: 1, bits: uint8(bits),
		table: make([]ftrlBucket, 1<<bits)}
}

// Kind is "ftrl".
func (m *FTRL) Kind() string { return "ftrl" }

func (m *FTRL) bucket(h uint64) uint64 { return h >> (64 - m.bits) }

// weight is bucket i's weight from its z and n.
func (m *FTRL) weight(i uint64) float64 {
	b := m.table[i]
	z := float64(b.z)
	if math.Abs(z) <= m.L1 {
		return 0
	}
	return -(z - math.Copysign(m.L1, z)) / ((m.Beta+math.Sqrt(float64(b.n)))/m.Alpha + m.L2)
}

// Predict returns the probability of junk; each contribution is the
// feature's weight.
func (m *FTRL) Predict(v *Vector, contrib []float64) float64 {
	sum := 0.0
	for k, h := range v.Hashes {
		w := m.weight(m.bucket(h))
		sum += w
		if contrib != nil {
			contrib[k] = w
		}
	}
	return sigmoid(sum)
}

func sigmoid(x float64) float64 {
	x = max(min(x, 35), -35)
	return 1 / (1 + math.Exp(-x))
}

// Learn takes one step on the message's log loss.
func (m *FTRL) Learn(v *Vector, junk bool) {
	y := 0.0
	if junk {
		y = 1
	}
	g := m.Predict(v, nil) - y // the gradient of the log loss for each feature present
	for _, h := range v.Hashes {
		i := m.bucket(h)
		w := m.weight(i)
		b := &m.table[i]
		n := float64(b.n)
		sigma := (math.Sqrt(n+g*g) - math.Sqrt(n)) / m.Alpha
		b.z += float32(g - sigma*w)
		b.n = float32(n + g*g)
	}
}

// MemoryBytes is the size of the two tables.
func (m *FTRL) MemoryBytes() int { return 8 << m.bits }

// MarshalBinary saves the parameters and the buckets in use.
func (m *FTRL) MarshalBinary() ([]byte, error) {
	w := newModelWriter(kindFTRL, m.bits)
	for _, p := range []float64{m.Alpha, m.Beta, m.L1, m.L2} {
		w.float64(p)
	}
	w.buckets(len(m.table), func(i int) (uint32, uint32, bool) {
		b := m.table[i]
		return math.Float32bits(b.z), math.Float32bits(b.n), b.n != 0
	})
	return w.b, nil
}

// UnmarshalBinary restores what MarshalBinary saved.
func (m *FTRL) UnmarshalBinary(data []byte) error {
	r, err := newModelReader(data, kindFTRL)
	if err != nil {
		return err
	}
	m.bits = r.bits
	m.Alpha, m.Beta, m.L1, m.L2 = r.float64(), r.float64(), r.float64(), r.float64()
	if !(m.Alpha > 0) || !(m.Beta >= 0) || !(m.L1 >= 0) || !(m.L2 >= 0) {
		return fmt.Errorf("classify: ftrl model: bad parameters")
	}
	m.table = make([]ftrlBucket, 1<<m.bits)
	return r.buckets(func(i uint32, a, b uint32) error {
		z, n := math.Float32frombits(a), math.Float32frombits(b)
		if math.IsNaN(float64(z)) || math.IsInf(float64(z), 0) || !(n >= 0) || math.IsInf(float64(n), 0) {
			return fmt.Errorf("classify: ftrl model: bucket %d: bad value", i)
		}
		m.table[i] = ftrlBucket{z, n}
		return nil
	})
}

// FTRLEpochs is how many passes over a training set FTRL takes: on the
// corpus's train split (a fifth held out), more passes fit the training
// messages better and the held-out ones worse.
const FTRLEpochs = 1
