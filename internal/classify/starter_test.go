package classify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/phish"
)

// TestCompactRoundTrip: the compact encoding gives back the model it
// was given, bucket for bucket, and the same bytes for the same model.
func TestCompactRoundTrip(t *testing.T) {
	m := NewBayes(16)
	Train(m, toyExamples(), 1, 1)
	b, err := EncodeCompact(m)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeCompact(m)
	if !bytes.Equal(b, again) {
		t.Error("two encodings of one model differ")
	}
	got, err := DecodeCompact(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.MarshalBinary()
	have, _ := got.MarshalBinary()
	if !bytes.Equal(want, have) {
		t.Errorf("decoded model differs from the encoded one (%d and %d bytes)", len(want), len(have))
	}
}

// TestCompactHostile: damaged or hostile compact files are refused, none
// makes the decoder allocate past a model's table.
func TestCompactHostile(t *testing.T) {
	m := NewBayes(16)
	Train(m, toyExamples(), 1, 1)
	good, err := EncodeCompact(m)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]byte{
		"empty":       nil,
		"magic only":  []byte(compactMagic),
		"version":     append([]byte(compactMagic), 9),
		"not deflate": append([]byte(compactMagic), compactVersion, 0xff, 0xff, 0xff),
		"cut":         good[:len(good)/2],
	}
	for i := 5; i < len(good); i += 7 {
		bad := bytes.Clone(good)
		bad[i] ^= 0x55
		tests["flipped "+string(rune('a'+i%26))] = bad
	}
	for name, b := range tests {
		if got, err := DecodeCompact(b); err == nil {
			// A flip inside a count can still decode; it must then be
			// a sane model.
			got.densify() // the decoder keeps it sparse
			if !strings.HasPrefix(name, "flipped") || len(got.table) != 1<<16 {
				t.Errorf("%s: decoded", name)
			}
		}
	}
}

// TestStarterModel: the starter model built in decodes and tells the
// handwritten spam from the handwritten ham (it learnt neither).
func TestStarterModel(t *testing.T) {
	c, err := LoadFile(context.Background(), "", "bayes")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Starter() {
		t.Error("LoadFile(\"\") is not marked as the starter model")
	}
	m, _ := c.Models()
	b := m.(*Bayes)
	if b.nJunk != 800 || b.nHam != 1200 {
		t.Errorf("starter model learnt %d junk and %d ham, want the train split's 800 spam and 1,200 ham", b.nJunk, b.nHam)
	}
	if _, err := LoadFile(context.Background(), "", "ftrl"); err == nil {
		t.Error("the starter model loaded as ftrl")
	}
}

// TestStarterReproducible: make model's recipe (mailwall train on the
// SpamAssassin messages of the shared corpus's train split, through the
// default phishing rules with the authentication rules at 0, without
// EraKinds) gives the
// committed starter model byte for byte. It needs ../shared/corpus and
// skips without it. MAILWALL_UPDATE_STARTER=1 writes the file instead
// (make model does the same through mailwall train).
func TestStarterReproducible(t *testing.T) {
	dir := os.Getenv("MAILWALL_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	if _, err := os.Stat(filepath.Join(dir, "split.tsv")); err != nil {
		t.Skipf("no shared corpus at %s (set MAILWALL_CORPUS)", dir)
	}
	ls, err := ReadLabels(filepath.Join(dir, "split.tsv"), dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	var sa []Labelled
	for _, l := range ls {
		if l.Class == "spam" || l.Class == "ham" {
			sa = append(sa, l)
		}
	}
	weights := map[string]int{}
	for rule := range phish.DefaultWeights() {
		if strings.HasPrefix(rule, "auth_") {
			weights[rule] = 0
		}
	}
	rules, err := phish.New(phish.DefaultBrands(), weights)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pipeline{Rules: rules, Drop: EraKinds}
	ex, err := p.Examples(context.Background(), sa)
	if err != nil {
		t.Fatal(err)
	}
	m, kinds, err := TrainModel("bayes", ex)
	if err != nil || kinds != nil {
		t.Fatalf("%v (kinds %v)", err, kinds)
	}
	b, err := EncodeCompact(m.(*Bayes))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("MAILWALL_UPDATE_STARTER") != "" {
		if err := os.WriteFile(filepath.Join("starter", "bayes.mwc"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(b, starterModel) {
		t.Errorf("make model gives %d bytes that differ from the committed starter/bayes.mwc (%d bytes): the features, the rules or the corpus changed; run make model and commit the file", len(b), len(starterModel))
	}
}

// TestStarterCapAndHandover: the starter model's hit fires only from
// strong_threshold and weighs StarterWeight (a model of the site's own,
// the same counts, weighs StrongWeight); with a store model it classifies
// until that model has learnt StarterUntil of each class, then the
// site's model does.
func TestStarterCapAndHandover(t *testing.T) {
	ctx := context.Background()
	starter, err := LoadFile(ctx, "", "bayes")
	if err != nil {
		t.Fatal(err)
	}
	msg := func(name string) *analysis.Message {
		raw, err := os.ReadFile(filepath.Join("testdata", "handwritten", name))
		if err != nil {
			t.Fatal(err)
		}
		f, b := ParseMessage(raw)
		return &analysis.Message{Fields: f, Body: b, Decode: phish.Extract}
	}
	hit := func(a *Analyzer, name string) analysis.Hit {
		r := a.Analyze(ctx, msg(name))
		if len(r.Hits) != 1 {
			t.Fatalf("%s: hits %v, want one", name, r.Hits)
		}
		return r.Hits[0]
	}
	weights := Analyzer{Threshold: 0.95, Weight: 30, StrongThreshold: 0.99, StrongWeight: 45, StarterWeight: 15}

	a := weights
	a.C = starter
	if h := hit(&a, "spam-1.eml"); h.Weight != 15 || !strings.Contains(h.Detail, "(the starter model: weight capped at 15)") {
		t.Errorf("starter: %+v", h)
	}
	m, _ := starter.Models()
	own := weights
	own.C = NewClassifier(m, nil) // the same counts, as a site's own file
	if h := hit(&own, "spam-1.eml"); h.Weight != 45 || strings.Contains(h.Detail, "starter") {
		t.Errorf("own model: %+v", h)
	}

	sh, err := OpenShared(ctx, newMemCounts(), SiteModel, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st := weights
	st.Shared, st.Starter, st.StarterUntil = sh, starter, 2
	if h := hit(&st, "spam-1.eml"); h.Weight != 15 {
		t.Errorf("store model learnt nothing yet, the starter's hit: %+v", h)
	}
	for _, name := range []string{"spam-2.eml", "spam-3.eml", "ham-1.eml", "ham-2.eml"} {
		m := msg(name)
		if err := sh.C.Learn(&Message{Fields: m.Fields, Body: m.Body}, strings.SplitN(name, "-", 2)[0]); err != nil {
			t.Fatal(err)
		}
	}
	if h := hit(&st, "spam-1.eml"); h.Weight != 45 || strings.Contains(h.Detail, "starter") {
		t.Errorf("store model learnt 2 of each, its own hit: %+v", h)
	}
}

// TestSparseSameAsDense: the starter model, pruned and sparse, predicts
// exactly as the whole model dense, and takes under half its memory; a
// decoded model that learns becomes dense without losing a count.
func TestSparseSameAsDense(t *testing.T) {
	sparse, err := Starter()
	if err != nil {
		t.Fatal(err)
	}
	if sparse.sparse == nil {
		t.Fatal("the starter model decoded dense")
	}
	// The whole model, dense: pruning drops only what Predict skips.
	dense, err := DecodeCompact(starterModel)
	if err != nil {
		t.Fatal(err)
	}
	dense.densify()
	if sparse.MemoryBytes() >= dense.MemoryBytes()/2 {
		t.Errorf("sparse %d bytes, dense %d", sparse.MemoryBytes(), dense.MemoryBytes())
	}
	x := NewExtractor()
	for i, msg := range []string{
		"Subject: You won a free prize\n\nClaim your cash prize now, click here and send your bank details.\n",
		"Subject: minutes of the meeting\n\nHi all, attached are the minutes; the next meeting is on Tuesday.\n",
	} {
		v := x.Extract(parse(msg)).Clone()
		cs, cd := make([]float64, len(v.Hashes)), make([]float64, len(v.Hashes))
		if ps, pd := sparse.Predict(v, cs), dense.Predict(v, cd); ps != pd || !slices.Equal(cs, cd) {
			t.Errorf("message %d: sparse %v, dense %v", i, ps, pd)
		}
		salt := RecipientSalt("alice@example.test")
		js, hs := sparse.RecipientLearns(salt)
		if jd, hd := dense.RecipientLearns(salt); js != jd || hs != hd {
			t.Errorf("recipient learns: sparse %d/%d, dense %d/%d", js, hs, jd, hd)
		}
	}
	// A decoded model (unpruned) that learns becomes dense with every
	// count it had.
	full, err := DecodeCompact(starterModel)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := DecodeCompact(starterModel)
	whole.densify()
	v := x.Extract(parse("Subject: x\n\nlottery winner\n")).Clone()
	full.Learn(v, true)
	whole.Learn(v, true)
	if full.sparse != nil || !slices.Equal(full.table, whole.table) || full.nJunk != whole.nJunk {
		t.Error("learning into the sparse model: not the dense model's counts")
	}
}

// BenchmarkStarterPredict: the starter model's prediction, pruned and
// sparse as serve holds it, against the whole model dense.
func BenchmarkStarterPredict(b *testing.B) {
	sparse, err := Starter()
	if err != nil {
		b.Fatal(err)
	}
	dense, _ := DecodeCompact(starterModel)
	dense.densify()
	v := NewExtractor().Extract(parse("Subject: You won a free prize\n\nClaim your cash prize now, click here and send your bank details to the lottery desk.\n")).Clone()
	for _, tc := range []struct {
		name string
		m    *Bayes
	}{{"sparse", sparse}, {"dense", dense}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				tc.m.Predict(v, nil)
			}
			b.ReportMetric(float64(tc.m.MemoryBytes())/(1<<20), "MB")
		})
	}
}
