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
	sparse      *sparseBuckets // a read-only model's buckets in use, instead of table
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
	m.densify()
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
	m.densify()
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
	m.densify()
	other.densify()
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

// logMemo remembers ln(f) and ln(1-f) of the last probabilities of a
// prediction (or of an Extractor's predictions, one after the other): a
// message's features share few pairs of counts (many were seen in two
// junk messages and no ham), messages share features, and two
// logarithms cost more than a look-up. (256 entries, 6 KiB: the hundred
// or so clues of a message seldom take each other's.)
type logMemo [256]struct {
	f      uint64 // math.Float64bits(f); 0 (f = 0, never a clue): empty
	lj, lh float64
}

// of returns math.Log(f), math.Log1p(-f).
func (m *logMemo) of(f float64) (float64, float64) {
	b := math.Float64bits(f)
	e := &m[(b*0x9e3779b97f4a7c15)>>56]
	if e.f != b {
		e.f, e.lj, e.lh = b, math.Log(f), math.Log1p(-f)
	}
	return e.lj, e.lh
}

// predictBlock is how many buckets Predict loads before it reads them.
const predictBlock = 128

// Predict returns the probability of junk; each contribution is the
// feature's log-odds, ln(f/(1-f)).
func (m *Bayes) Predict(v *Vector, contrib []float64) float64 {
	var logs logMemo
	return m.predict(v, contrib, &logs)
}

// predict is Predict with the logarithms remembered in logs, which may
// be kept from one prediction to the next (an Extractor's: ln f is ln f
// whatever the model).
func (m *Bayes) predict(v *Vector, contrib []float64, logs *logMemo) float64 {
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
	// The buckets first, in a loop of loads alone: a table of 16 MB
	// misses the cache at each, and loads that depend on nothing
	// overlap (BenchmarkClassifyRecipient/site, a table of 2^21
	// buckets: 65-70 µs a message before, 35-40 µs so). A block of
	// them at a time, on the stack: as many misses overlap as a core
	// has room for, and nothing is allocated.
	var block [predictBlock]bayesBucket
	for base := 0; base < len(v.Hashes); base += predictBlock {
		hs := v.Hashes[base:min(base+predictBlock, len(v.Hashes))]
		buckets := block[:len(hs)]
		for k, h := range hs {
			buckets[k] = m.at(m.bucket(h))
		}
		for k, b := range buckets {
			k += base
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
			lj, lh := logs.of(f)
			lnJunk += lj
			lnHam += lh
			n++
			if contrib != nil {
				contrib[k] = lj - lh
			}
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
func (m *Bayes) MemoryBytes() int {
	if m.sparse != nil {
		return 12 * len(m.sparse.keys)
	}
	return 8 << m.bits
}

// MarshalBinary saves the counts.
func (m *Bayes) MarshalBinary() ([]byte, error) {
	m.densify()
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
	m.table, m.sparse = make([]bayesBucket, 1<<m.bits), nil
	return r.buckets(func(i uint32, a, b uint32) error {
		m.table[i] = bayesBucket{a, b}
		return nil
	})
}

// clue is a feature's smoothed probability of junk from a bucket's
// counts over messages learnt of each class; ok false when the feature
// has too little evidence or is too near 0.5 to count.
func (m *Bayes) clue(b bayesBucket, nJunk, nHam uint64) (f float64, ok bool) {
	s, g := b.junk, b.ham
	if s+g < m.MinCount || s+g < s {
		return 0.5, false
	}
	f = smoothed(b, nJunk, nHam, robinsonS, robinsonX)
	return f, math.Abs(f-0.5) >= m.MinStrength
}

// smoothed is Robinson's smoothed probability of junk of a bucket's
// counts: (s*x + n*p)/(s + n) with p the counts' own, normalized by the
// messages learnt of each class.
func smoothed(b bayesBucket, nJunk, nHam uint64, s, x float64) float64 {
	ps, pg := float64(b.junk)/float64(max(nJunk, 1)), float64(b.ham)/float64(max(nHam, 1))
	if ps+pg == 0 {
		return x
	}
	cnt := float64(b.junk) + float64(b.ham)
	return (s*x + cnt*ps/(ps+pg)) / (s + cnt)
}

// RecipientLearns is how many junk and ham messages the recipient of
// salt has taught: the least counts of their count buckets.
func (m *Bayes) RecipientLearns(salt uint64) (junk, ham uint64) {
	junk, ham = math.MaxUint32, math.MaxUint32
	for i := range recipientCounts {
		b := m.at(m.bucket(recipientCountHash(salt, i)))
		junk, ham = min(junk, uint64(b.junk)), min(ham, uint64(b.ham))
	}
	return junk, ham
}

// PredictFor is Predict for a message to the one recipient of salt,
// combining the site's features with the recipient's salted ones as
// mode says (RecipientPrior, RecipientOverride, RecipientAdd,
// RecipientOnly), once the recipient has taught at least minLearns
// messages of each class; before, or for salt 0, it is Predict.
// contrib (as long as v.Hashes) gets the site features'
// contributions, rcontrib (as long, may be nil) the recipient's. used
// says whether the recipient's statistics took part.
func (m *Bayes) PredictFor(v *Vector, salt uint64, mode string, minLearns int, contrib, rcontrib []float64) (p float64, used bool) {
	return m.predictFor(v, salt, mode, minLearns, recipientPriorS, contrib, rcontrib)
}

// recipientPriorS is the weight, in messages, of the site's probability
// of a feature as the prior of a recipient's (RecipientPrior).
const recipientPriorS = 1

func (m *Bayes) predictFor(v *Vector, salt uint64, mode string, minLearns int, priorS float64, contrib, rcontrib []float64) (p float64, used bool) {
	if salt == 0 || m.nJunk == 0 || m.nHam == 0 {
		return m.Predict(v, contrib), false
	}
	uJunk, uHam := m.RecipientLearns(salt)
	if uJunk < uint64(max(minLearns, 1)) || uHam < uint64(max(minLearns, 1)) {
		return m.Predict(v, contrib), false
	}
	type clue struct {
		f    float64
		k    int
		user bool
	}
	n := len(v.Hashes) // RecipientPrior: a clue a feature at most
	if mode != RecipientPrior {
		n *= 2
	}
	clues := make([]clue, 0, n)
	// The buckets first, site's and recipient's, in a loop of loads
	// alone, as Predict reads them (BenchmarkClassifyRecipient/recipient:
	// 160-210 µs a message before, 85-100 µs so), a block at a time.
	const per = predictBlock / 2 // features a block
	var block [2 * per]bayesBucket
	for k := range v.Hashes {
		i := k % per
		if i == 0 {
			for j, h := range v.Hashes[k:min(k+per, len(v.Hashes))] {
				block[2*j] = m.at(m.bucket(h))
				block[2*j+1] = m.at(m.bucket(saltHash(h, salt)))
			}
		}
		sb, ub := block[2*i], block[2*i+1]
		if ub.junk > uint32(min(uJunk, math.MaxUint32)) || ub.ham > uint32(min(uHam, math.MaxUint32)) {
			// More messages than the recipient taught: the bucket is
			// shared with a feature of the site's or of another
			// recipient's (a collision), and says nothing of this
			// recipient.
			ub = bayesBucket{}
		}
		if mode == RecipientPrior {
			// The recipient's counts smoothed towards the site's
			// probability instead of 0.5: one clue a feature, the
			// recipient's as far as their evidence goes.
			f, _ := m.clue(sb, m.nJunk, m.nHam)
			user := ub.junk != 0 || ub.ham != 0
			if user {
				f = smoothed(ub, uJunk, uHam, priorS, f)
			}
			if math.Abs(f-0.5) >= m.MinStrength {
				clues = append(clues, clue{f, k, user})
			}
			continue
		}
		uf, uok := m.clue(ub, uJunk, uHam)
		if uok {
			clues = append(clues, clue{uf, k, true})
		}
		switch mode {
		case RecipientOnly:
			continue
		case RecipientOverride:
			if ub.junk+ub.ham >= m.MinCount {
				continue // the recipient has an opinion of its own
			}
		}
		if f, ok := m.clue(sb, m.nJunk, m.nHam); ok {
			clues = append(clues, clue{f, k, false})
		}
	}
	if m.MaxClues > 0 && len(clues) > m.MaxClues {
		slices.SortFunc(clues, func(a, b clue) int {
			return cmp.Compare(math.Abs(b.f-0.5), math.Abs(a.f-0.5))
		})
		clues = clues[:m.MaxClues]
	}
	if len(clues) == 0 {
		return 0.5, true
	}
	var lnJunk, lnHam float64
	var logs logMemo
	for _, c := range clues {
		lj, lh := logs.of(c.f)
		lnJunk += lj
		lnHam += lh
		switch {
		case c.user && rcontrib != nil:
			rcontrib[c.k] = lj - lh
		case !c.user && contrib != nil:
			contrib[c.k] = lj - lh
		}
	}
	n = len(clues)
	junk := 1 - chi2Q(-2*lnHam, 2*n)
	ham := 1 - chi2Q(-2*lnJunk, 2*n)
	return (junk - ham + 1) / 2, true
}

// LearnFor is Learn for a message to the one recipient of salt: its
// features as they are and salted for the recipient, and the
// recipient's count (salt 0: Learn). Counting the message once for
// the site, it is what a Learner queues for a store.
func (m *Bayes) LearnFor(v *Vector, salt uint64, junk bool) {
	m.Learn(v, junk) // densifies
	if salt == 0 {
		return
	}
	for _, b := range saltedBuckets(nil, v.Hashes, salt, int(m.bits)) {
		c := &m.table[b].ham
		if junk {
			c = &m.table[b].junk
		}
		if *c < math.MaxUint32 {
			*c++
		}
	}
}
