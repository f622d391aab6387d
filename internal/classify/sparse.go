package classify

import "math/bits"

// sparseBuckets holds a read-only Bayes model's buckets that count, in an
// open-addressing table at most 70% full: the shipped starter model has
// 171,000 buckets that can be clues among its 2^21, and a dense table of
// them costs 16 MB in every serve, which the milter's 1,000 sessions
// under 100 MB cannot afford. A model that learns is made dense first
// (densify).
type sparseBuckets struct {
	keys  []uint32 // bucket index + 1; 0: empty
	vals  []bayesBucket
	shift uint8
}

func newSparseBuckets(n int) *sparseBuckets {
	// At most 70% full: linear probing stays short.
	size := 1 << max(4, bits.Len(uint(n*10/7)))
	return &sparseBuckets{keys: make([]uint32, size), vals: make([]bayesBucket, size), shift: uint8(64 - bits.Len(uint(size-1)))}
}

// slot is where bucket i is, or the empty slot where it would go.
func (s *sparseBuckets) slot(i uint32) int {
	mask := len(s.keys) - 1
	// Fibonacci hashing spreads neighbouring bucket numbers.
	p := int((uint64(i) * 0x9e3779b97f4a7c15) >> s.shift)
	for s.keys[p] != 0 && s.keys[p] != i+1 {
		p = (p + 1) & mask
	}
	return p
}

func (s *sparseBuckets) set(i uint32, b bayesBucket) {
	p := s.slot(i)
	s.keys[p], s.vals[p] = i+1, b
}

func (s *sparseBuckets) get(i uint32) bayesBucket {
	return s.vals[s.slot(i)] // an empty slot's value is zero
}

// at is bucket i's counts, dense or sparse.
func (m *Bayes) at(i uint64) bayesBucket {
	if m.sparse != nil {
		return m.sparse.get(uint32(i))
	}
	return m.table[i]
}

// densify makes a sparse model dense, before anything writes to it or
// reads the whole table.
func (m *Bayes) densify() {
	if m.sparse == nil {
		return
	}
	m.table = make([]bayesBucket, 1<<m.bits)
	for p, k := range m.sparse.keys {
		if k != 0 {
			m.table[k-1] = m.sparse.vals[p]
		}
	}
	m.sparse = nil
}
