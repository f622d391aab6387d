package classify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
)

// toyExamples: junk asks to verify an account at a link shortener, ham
// talks about a meeting; each message has a few words of its own.
func toyExamples() []Example {
	x := NewExtractor()
	var out []Example
	for i := range 40 {
		junk := fmt.Sprintf("From: Support <s%d@x%d.test>\nSubject: verify account\n\nverify your account now at https://bit.ly/%d unique%d\n", i, i, i, i)
		ham := fmt.Sprintf("From: Bob <bob@example.org>\nSubject: meeting notes\n\nthe meeting moved to thursday, agenda attached item%d\n", i)
		out = append(out, Example{V: x.Extract(parse(junk)).Clone(), Class: "spam"}, Example{V: x.Extract(parse(ham)).Clone(), Class: "ham"})
	}
	return out
}

func TestModelsLearn(t *testing.T) {
	examples := toyExamples()
	for _, m := range []Model{NewFTRL(16), NewBayes(16)} {
		t.Run(m.Kind(), func(t *testing.T) {
			Train(m, examples[:60], 3, 1)
			for _, e := range examples[60:] {
				p := m.Predict(e.V, nil)
				if (p >= 0.9) != (e.Class != "ham") || (e.Class == "ham" && p > 0.1) {
					t.Errorf("%s scored %.3f", e.Class, p)
				}
			}
			c := NewClassifier(m, nil)
			r := c.Classify(parse("From: Support <s99@x99.test>\nSubject: verify account\n\nverify your account now at https://bit.ly/z\n"))
			if !r.Junk || len(r.Strongest) == 0 || r.Strongest[0].Weight <= 0 {
				t.Fatalf("%+v", r)
			}
			s := r.String()
			if !strings.HasPrefix(s, "classifier 1.00 junk: strongest features: ") || !strings.Contains(s, `host "bit.ly"(+`) {
				t.Errorf("explanation %q", s)
			}
		})
	}
}

// TestClassifierKinds: with a kinds model, junk is called phish or spam;
// learning an unknown class is an error.
func TestClassifierKinds(t *testing.T) {
	c := NewClassifier(NewBayes(16), NewBayes(16))
	for i := range 30 {
		for class, text := range map[string]string{
			"phish": "Subject: your mailbox is full\n\nverify your password at https://login.x%d.test/ now",
			"spam":  "Subject: cheap pills\n\nbest prices on pills, order today from shop%d",
			"ham":   "Subject: meeting\n\nthe agenda for thursday, item %d",
		} {
			if err := c.Learn(parse(fmt.Sprintf(text, i)+"\n"), class); err != nil {
				t.Fatal(err)
			}
		}
	}
	for class, text := range map[string]string{
		"phish": "Subject: your mailbox is full\n\nverify your password at https://login.y.test/ now\n",
		"spam":  "Subject: cheap pills\n\nbest prices on pills, order today\n",
		"ham":   "Subject: meeting\n\nthe agenda for thursday\n",
	} {
		if r := c.Classify(parse(text)); r.Class != class {
			t.Errorf("%s called %s (%v)", class, r.Class, r)
		}
	}
	if err := c.Learn(parse("Subject: x\n\ny\n"), "junk"); err == nil {
		t.Error("class junk learnt")
	}
}

// TestModelRoundTrip: a saved and restored model predicts the same, and
// damaged bytes are an error, never a panic or a huge allocation.
func TestModelRoundTrip(t *testing.T) {
	examples := toyExamples()
	st := DirStore{Dir: t.TempDir()}
	ctx := context.Background()
	if _, err := LoadModel(ctx, st, "site"); !errors.Is(err, ErrNoModel) {
		t.Fatalf("empty store: %v", err)
	}
	for _, m := range []Model{NewFTRL(16), NewBayes(16)} {
		Train(m, examples, 1, 1)
		if err := SaveModel(ctx, st, m.Kind(), m); err != nil {
			t.Fatal(err)
		}
		back, err := LoadModel(ctx, st, m.Kind())
		if err != nil {
			t.Fatal(err)
		}
		if back.Kind() != m.Kind() || back.MemoryBytes() != m.MemoryBytes() {
			t.Fatalf("%s came back as %s of %d bytes", m.Kind(), back.Kind(), back.MemoryBytes())
		}
		for _, e := range examples {
			if a, b := m.Predict(e.V, nil), back.Predict(e.V, nil); a != b {
				t.Fatalf("%s: %v before, %v after", m.Kind(), a, b)
			}
		}
		data, _ := m.MarshalBinary()
		for _, n := range []int{0, 3, 7, 20, len(data) - 1} {
			if _, err := UnmarshalModel(data[:n]); err == nil {
				t.Errorf("%s: %d of %d bytes accepted", m.Kind(), n, len(data))
			}
		}
		bad := append([]byte(nil), data...)
		bad[6] = 40 // 2^40 buckets
		if _, err := UnmarshalModel(bad); err == nil {
			t.Errorf("%s: 2^40 buckets accepted", m.Kind())
		}
	}
	if err := st.Save(ctx, "../x", nil); err == nil {
		t.Error("a name with a slash saved")
	}
}

// TestBayesUnlearnAdd: unlearning a message restores the model exactly;
// two models learnt apart and added predict as one learnt on both; a
// vector kept as hashes teaches the same as the message.
func TestBayesUnlearnAdd(t *testing.T) {
	examples := toyExamples()
	whole, a, b := NewBayes(16), NewBayes(16), NewBayes(16)
	Train(whole, examples, 1, 1)
	Train(a, examples[:40], 1, 1)
	Train(b, examples[40:], 1, 1)
	if err := a.Add(b); err != nil {
		t.Fatal(err)
	}
	probe := examples[3].V
	if pw, pa := whole.Predict(probe, nil), a.Predict(probe, nil); pw != pa {
		t.Fatalf("added %v, whole %v", pa, pw)
	}
	if err := a.Add(NewBayes(17)); err == nil {
		t.Error("a model of another size added")
	}
	before, _ := whole.MarshalBinary()
	kept, err := VectorFromHashes(examples[5].V.AppendHashes(nil))
	if err != nil {
		t.Fatal(err)
	}
	whole.Learn(kept, true)
	whole.Unlearn(kept, true)
	if after, _ := whole.MarshalBinary(); string(after) != string(before) {
		t.Fatal("learn then unlearn changed the model")
	}
	if _, err := VectorFromHashes(make([]byte, 7)); err == nil {
		t.Error("7 bytes read as hashes")
	}
}

func TestChi2Q(t *testing.T) {
	tests := []struct {
		x2   float64
		v    int
		want float64
	}{
		{0, 2, 1},
		{2, 2, math.Exp(-1)},
		{4, 4, 3 * math.Exp(-2)},
		{20000, 200, 0},          // far in the tail, no NaN
		{20000, 20000, 0.498670}, // thousands of terms, near the mean
	}
	for _, tt := range tests {
		if got := chi2Q(tt.x2, tt.v); math.Abs(got-tt.want) > 1e-4 || math.IsNaN(got) {
			t.Errorf("chi2Q(%v, %d) = %v, want %v", tt.x2, tt.v, got, tt.want)
		}
	}
}

func TestHamThreshold(t *testing.T) {
	var s []Scored
	for i := range 100 {
		s = append(s, Scored{Class: "ham", P: float64(i) / 100}, Scored{Class: "spam", P: 0.5 + float64(i)/200})
	}
	for _, tt := range []struct {
		rate    float64
		flagged int
	}{{0.01, 1}, {0.001, 0}, {0.1, 10}} {
		o := Measure(s, HamThreshold(s, tt.rate))
		if o.Flagged[2] != tt.flagged {
			t.Errorf("rate %v: %d ham flagged, want %d", tt.rate, o.Flagged[2], tt.flagged)
		}
	}
}

// TestClassifierConcurrent: classification and learning from several
// goroutines at once (run with -race).
func TestClassifierConcurrent(t *testing.T) {
	c := NewClassifier(NewBayes(12), NewBayes(12))
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				m := parse(fmt.Sprintf("Subject: s%d\n\nword%d other%d https://h%d.test/\n", i, g, i, i))
				if g%2 == 0 {
					if err := c.Learn(m, Classes[i%3]); err != nil {
						t.Error(err)
					}
				} else if r := c.Classify(m); !(r.Probability >= 0 && r.Probability <= 1) {
					t.Errorf("probability %v", r.Probability)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// TestMemoryBound: a model that has learnt a million distinct features
// keeps its fixed table; the heap grows by less than the 64 MB issue 24
// allows (16 MB a model of 2^21 buckets).
func TestMemoryBound(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	models := []Model{NewBayes(DefaultBits), NewFTRL(DefaultBits)}
	v := &Vector{Hashes: make([]uint64, MaxFeatures)}
	for n := uint64(0); n < 1_000_000; n += MaxFeatures {
		for i := range v.Hashes {
			v.Hashes[i] = mix(n + uint64(i) + 1)
		}
		for _, m := range models {
			m.Learn(v, n%2 == 0)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, m := range models {
		if m.MemoryBytes() > 16<<20 {
			t.Errorf("%s: %d bytes", m.Kind(), m.MemoryBytes())
		}
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2*(16<<20)+(4<<20) {
		t.Errorf("heap grew %d MB for two models", grew>>20)
	}
	runtime.KeepAlive(models)
}
