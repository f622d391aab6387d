package classify

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Bayes is a naive Bayes classifier over hashed features: per bucket,
// how many junk and ham messages had it. Each feature's probability is
// smoothed towards 0.5 as Robinson proposed, and the probabilities are
// combined with Fisher's method (the inverse chi-square), as SpamBayes,
// SpamAssassin and rspamd do, which says "unsure" (near 0.5) when the
// evidence points both ways instead of 0 or 1.
type Bayes struct {
	// MinCount is how many messages must have had a feature before it
	// counts.
	MinCount uint32
	// MinStrength is how far from 0.5 a feature's probability must be to
	// count: near-neutral features only dilute the evidence.
	MinStrength float64
	// MaxClues bounds the features combined, the strongest first (0: all
	// of them): SpamBayes combines 150, since thousands of features make
	// the chi-square saturate at 0 or 1 and lose the ranking.
	MaxClues int

	bits        uint8
	table       []bayesBucket
	nJunk, nHam uint64
}

// bayesBucket holds both counts of a bucket side by side: a prediction
// reads both, and one cache line is cheaper than two.
type bayesBucket struct{ junk, ham uint32 }

// Robinson's smoothing: a feature seen n times has probability
// (s*x + n*p)/(s + n), from x = 0.5 with the weight of s messages.
const (
	robinsonS = 1.0
	robinsonX = 0.5
)

// NewBayes returns an untrained model of 2^bits buckets.
func NewBayes(bits int) *Bayes {
	bits = min(max(bits, minBits), maxBits)
	return &Bayes{MinCount: 2, MinStrength: 0.1, bits: uint8(bits),
		table: make([]bayesBucket, 1<<bits)}
}

// Kind is "bayes".
func (m *Bayes) Kind() string { return "bayes" }

func (m *Bayes) bucket(h uint64) uint64 { return h >> (64 - m.bits) }

// Learn counts the message's features.
func (m *Bayes) Learn(v *Vector, junk bool) {
	if junk {
		m.nJunk++
	} else {
		m.nHam++
	}
	for _, h := range v.Hashes {
		c := &m.table[m.bucket(h)].ham
		if junk {
			c = &m.table[m.bucket(h)].junk
		}
		if *c < math.MaxUint32 {
			*c++
		}
	}
}

// Unlearn takes back a Learn of the same message and class, as
// SpamAssassin's sa-learn --forget does: after a mistaken click, or to
// undo what a poisoner taught. Counts never go below 0.
func (m *Bayes) Unlearn(v *Vector, junk bool) {
	n := &m.nHam
	if junk {
		n = &m.nJunk
	}
	if *n == 0 {
		return
	}
	*n--
	for _, h := range v.Hashes {
		c := &m.table[m.bucket(h)].ham
		if junk {
			c = &m.table[m.bucket(h)].junk
		}
		if *c > 0 {
			*c--
		}
	}
}

// Add adds other's counts to m, so that models learnt apart (on several
// hosts, or a site's feedback on top of a starter model) combine: a
// Bayes model's state is counts, and counts add up. Both must have the
// same table size.
func (m *Bayes) Add(other *Bayes) error {
	if other.bits != m.bits {
		return fmt.Errorf("classify: adding a model of 2^%d buckets to one of 2^%d", other.bits, m.bits)
	}
	for i, o := range other.table {
		b := &m.table[i]
		b.junk, b.ham = satAdd(b.junk, o.junk), satAdd(b.ham, o.ham)
	}
	m.nJunk += other.nJunk
	m.nHam += other.nHam
	return nil
}

func satAdd(a, b uint32) uint32 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint32
}

// Predict returns the probability of junk; each contribution is the
// feature's log-odds, ln(f/(1-f)).
func (m *Bayes) Predict(v *Vector, contrib []float64) float64 {
	if m.nJunk == 0 || m.nHam == 0 {
		return 0.5
	}
	type clue struct {
		f float64
		k int
	}
	var clues []clue          // only when they are to be cut to MaxClues
	var lnJunk, lnHam float64 // sums of ln(f) and ln(1-f)
	n := 0
	for k, h := range v.Hashes {
		b := m.table[m.bucket(h)]
		s, g := b.junk, b.ham
		if s+g < m.MinCount || s+g < s {
			continue
		}
		ps, pg := float64(s)/float64(m.nJunk), float64(g)/float64(m.nHam)
		p := ps / (ps + pg)
		cnt := float64(s) + float64(g)
		f := (robinsonS*robinsonX + cnt*p) / (robinsonS + cnt)
		if math.Abs(f-0.5) < m.MinStrength {
			continue
		}
		if m.MaxClues > 0 {
			clues = append(clues, clue{f, k})
			continue
		}
		lj, lh := math.Log(f), math.Log1p(-f)
		lnJunk += lj
		lnHam += lh
		n++
		if contrib != nil {
			contrib[k] = lj - lh
		}
	}
	if m.MaxClues > 0 {
		if len(clues) > m.MaxClues {
			slices.SortFunc(clues, func(a, b clue) int {
				return cmp.Compare(math.Abs(b.f-0.5), math.Abs(a.f-0.5))
			})
			clues = clues[:m.MaxClues]
		}
		for _, c := range clues {
			lj, lh := math.Log(c.f), math.Log1p(-c.f)
			lnJunk += lj
			lnHam += lh
			if contrib != nil {
				contrib[c.k] = lj - lh
			}
		}
		n = len(clues)
	}
	if n == 0 {
		return 0.5
	}
	junk := 1 - chi2Q(-2*lnHam, 2*n) // the ham hypothesis fails: junk
	ham := 1 - chi2Q(-2*lnJunk, 2*n)
	return (junk - ham + 1) / 2
}

// chi2Q is the probability that a chi-square variable with v (even)
// degrees of freedom is at least x2: the sum of the Poisson terms
// e^-m m^i / i! for i below v/2, m = x2/2. The terms are kept scaled
// (e^-m underflows from m = 745, and messages have thousands of
// features), one multiplication each, and the sum stops once past the
// peak the terms no longer add anything.
func chi2Q(x2 float64, v int) float64 {
	m := x2 / 2
	if m <= 0 {
		return 1
	}
	const big = 1e250
	lnScale := -m // ln of what term and sum are to be multiplied by
	term := 1.0
	sum := 1.0
	for i := 1; i < v/2; i++ {
		term *= m / float64(i)
		sum += term
		if sum > big {
			term /= big
			sum /= big
			lnScale += math.Log(big)
		}
		if float64(i) > m && term < sum*1e-17 {
			break
		}
	}
	return min(1, math.Exp(lnScale+math.Log(sum)))
}

// MemoryBytes is the size of the two tables.
func (m *Bayes) MemoryBytes() int { return 8 << m.bits }

// MarshalBinary saves the counts.
func (m *Bayes) MarshalBinary() ([]byte, error) {
	w := newModelWriter(kindBayes, m.bits)
	w.uint64(m.nJunk)
	w.uint64(m.nHam)
	w.uint64(uint64(m.MinCount))
	w.float64(m.MinStrength)
	w.uint64(uint64(m.MaxClues))
	w.buckets(len(m.table), func(i int) (uint32, uint32, bool) {
		b := m.table[i]
		return b.junk, b.ham, b.junk != 0 || b.ham != 0
	})
	return w.b, nil
}

// UnmarshalBinary restores what MarshalBinary saved.
func (m *Bayes) UnmarshalBinary(data []byte) error {
	r, err := newModelReader(data, kindBayes)
	if err != nil {
		return err
	}
	m.bits = r.bits
	m.nJunk, m.nHam = r.uint64(), r.uint64()
	minCount := r.uint64()
	m.MinStrength = r.float64()
	maxClues := r.uint64()
	if minCount > math.MaxUint32 || !(m.MinStrength >= 0 && m.MinStrength < 0.5) || maxClues > MaxFeatures {
		return fmt.Errorf("classify: bayes model: bad parameters")
	}
	m.MinCount, m.MaxClues = uint32(minCount), int(maxClues)
	m.table = make([]bayesBucket, 1<<m.bits)
	return r.buckets(func(i uint32, a, b uint32) error {
		m.table[i] = bayesBucket{a, b}
		return nil
	})
}
