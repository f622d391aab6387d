package classify

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
)

// Example is a message's features with its class.
type Example struct {
	V     *Vector
	Class string // "phish", "spam" or "ham"
}

// Clone copies v, so that it outlives the Extractor's next message.
func (v *Vector) Clone() *Vector {
	return &Vector{Hashes: slices.Clone(v.Hashes), names: slices.Clone(v.names), ends: slices.Clone(v.ends)}
}

// AppendHashes appends v's hashes to b (8 bytes each, little-endian):
// what to keep of a verdict so that a later "spam" or "not spam" click
// can be learnt without keeping the message.
func (v *Vector) AppendHashes(b []byte) []byte {
	for _, h := range v.Hashes {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b
}

// VectorFromHashes is the Vector of hashes AppendHashes wrote, without
// names (a model learns from it; explanations name no feature). At most
// MaxFeatures are read.
func VectorFromHashes(b []byte) (*Vector, error) {
	if len(b)%8 != 0 || len(b)/8 > MaxFeatures {
		return nil, fmt.Errorf("classify: %d bytes of feature hashes", len(b))
	}
	v := &Vector{Hashes: make([]uint64, len(b)/8), ends: make([]uint32, len(b)/8)}
	for i := range v.Hashes {
		v.Hashes[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return v, nil
}

// Train teaches m the examples, epochs times over, each time in a
// shuffled order (the same for the same seed): an online learner that
// sees all of one class and then all of the other learns the last.
func Train(m Model, examples []Example, epochs int, seed uint64) {
	order := make([]int, len(examples))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d61696c77616c6c))
	for range max(epochs, 1) {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			m.Learn(examples[i].V, examples[i].Class != "ham")
		}
	}
}

// TrainKinds teaches m to tell phishing (positive) from spam, from the
// junk among the examples, once each in a shuffled order.
func TrainKinds(m Model, examples []Example, seed uint64) {
	var junk []Example
	for _, e := range examples {
		switch e.Class {
		case "phish":
			junk = append(junk, e)
		case "spam":
			junk = append(junk, Example{V: e.V, Class: "ham"}) // the negative class
		}
	}
	Train(m, junk, 1, seed)
}

// Scored is a message's class and the probability a model gave it.
type Scored struct {
	Class string
	P     float64
	// Phish is the kinds model's probability that junk is phishing
	// (ScoreKinds), for the three-way confusion matrix.
	Phish float64
}

// Score predicts every example.
func Score(m Model, examples []Example) []Scored {
	out := make([]Scored, len(examples))
	for i, e := range examples {
		out[i] = Scored{Class: e.Class, P: m.Predict(e.V, nil)}
	}
	return out
}

// ScoreKinds sets each Scored's Phish from the kinds model.
func ScoreKinds(kinds Model, examples []Example, scored []Scored) {
	for i, e := range examples {
		scored[i].Phish = kinds.Predict(e.V, nil)
	}
}

// Classes are the corpus classes in the order they are reported.
var Classes = [3]string{"phish", "spam", "ham"}

// Outcome counts, per class, the messages flagged at a threshold.
type Outcome struct {
	Threshold float64
	Flagged   [3]int // by Classes
	Total     [3]int
	// Called[i][j] counts messages of class i called class j: ham below
	// the threshold, else phish when Phish > 0.5 (an untaught kinds model says 0.5), else spam.
	Called [3][3]int
}

func classIndex(c string) int {
	for i, x := range Classes {
		if x == c {
			return i
		}
	}
	return -1
}

// Measure counts what a threshold flags (P >= t).
func Measure(scored []Scored, t float64) Outcome {
	o := Outcome{Threshold: t}
	for _, s := range scored {
		i := classIndex(s.Class)
		if i < 0 {
			continue
		}
		o.Total[i]++
		called := 2
		if s.P >= t {
			o.Flagged[i]++
			called = 1
			if s.Phish > 0.5 {
				called = 0
			}
		}
		o.Called[i][called]++
	}
	return o
}

// Rate is the fraction of class c flagged.
func (o Outcome) Rate(c string) float64 {
	i := classIndex(c)
	if i < 0 || o.Total[i] == 0 {
		return 0
	}
	return float64(o.Flagged[i]) / float64(o.Total[i])
}

// HamThreshold is the lowest threshold that flags at most rate of the
// ham (0.01: 1%; with 300 ham, 0.001 flags none).
func HamThreshold(scored []Scored, rate float64) float64 {
	var ham []float64
	for _, s := range scored {
		if s.Class == "ham" {
			ham = append(ham, s.P)
		}
	}
	if len(ham) == 0 {
		return 0.5
	}
	slices.Sort(ham)
	slices.Reverse(ham)
	k := int(math.Floor(rate * float64(len(ham))))
	if k >= len(ham) {
		return 0
	}
	// Just above the (k+1)th highest ham score: k ham at most are at or
	// above it.
	return math.Nextafter(ham[k], math.Inf(1))
}

// Print writes the outcome as a confusion matrix (the class of each
// message against what it was called; phish or spam is the kinds
// model's call) and one line of rates.
func (o Outcome) Print(w io.Writer, label string) {
	fmt.Fprintf(w, "  %s (threshold %.6g): phish %.1f%%, spam %.1f%%, ham %.2f%% flagged\n",
		label, o.Threshold, 100*o.Rate("phish"), 100*o.Rate("spam"), 100*o.Rate("ham"))
	fmt.Fprintf(w, "    %-14s %8s %8s %8s\n", "class \\ called", "phish", "spam", "ham")
	for i, c := range Classes {
		fmt.Fprintf(w, "    %-14s %8d %8d %8d\n", c, o.Called[i][0], o.Called[i][1], o.Called[i][2])
	}
}
