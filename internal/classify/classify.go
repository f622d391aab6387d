// Package classify is mailwall's learning classifier: a statistical model
// over hashed features of a message that says how likely it is junk
// (phishing or spam) and which features made it say so.
//
// A message becomes a bounded set of features (Extractor): word tokens
// and word pairs at distances one to three (orthogonal sparse bigrams, as
// CRM114 and rspamd use), character bigrams for Japanese, Chinese and
// Korean text, which has no spaces to split on, link hosts and their
// registered domains, the shape of the header (field order, missing Date
// or Message-ID, the mailer, how From, Reply-To and Message-ID relate),
// the MIME structure and attachment types, and whatever outside signals
// the caller names (authentication outcomes, rule hits). Each feature is
// a 64-bit hash of its name; the name is kept beside it for the
// explanation only.
//
// Two models learn from such vectors, both as a fixed-size table of
// buckets indexed by the hash, so memory does not grow with the
// vocabulary: logistic regression trained online with FTRL-Proximal
// (FTRL) and a naive Bayes over the same features with Robinson's
// smoothing and Fisher's combination (Bayes), as SpamAssassin and rspamd
// combine token probabilities. Both serialize with encoding/binary and
// are kept through a Store, so the model can later live in the database
// that several MX hosts share.
package classify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Model is a learned classifier over feature vectors. Implementations
// are not safe for concurrent use: Classifier serializes them.
type Model interface {
	// Kind names the model ("ftrl", "bayes").
	Kind() string
	// Learn updates the model with one labelled message.
	Learn(v *Vector, junk bool)
	// Predict returns the probability that the message is junk and the
	// contribution of each feature, in the order of v.Hashes, into
	// contrib (when not nil; it must be as long as v.Hashes). A positive
	// contribution pushes towards junk.
	Predict(v *Vector, contrib []float64) float64
	// MemoryBytes is what the model's table occupies.
	MemoryBytes() int
	// MarshalBinary and UnmarshalBinary (encoding.BinaryMarshaler) save
	// and restore the learned state.
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// DefaultModel is the kind of model a site starts with: on the corpus's
// validate split naive Bayes flagged more at every threshold that flags
// little ham (99.5% of the phishing and 98.0% of the spam with 0.33% of
// the ham at 0.95; FTRL 96.5%, 97.0%, 0.67%), and it learns from one
// message without the passes and the learning rate that FTRL needs.
const DefaultModel = "bayes"

// NewModel returns an untrained model of a kind ("bayes", "ftrl") with
// 2^bits buckets.
func NewModel(kind string, bits int) (Model, error) {
	switch kind {
	case "bayes":
		return NewBayes(bits), nil
	case "ftrl":
		return NewFTRL(bits), nil
	}
	return nil, fmt.Errorf("classify: unknown model %q (bayes, ftrl)", kind)
}

// Contribution is one feature's share of a prediction.
type Contribution struct {
	Feature string  `json:"feature"` // "word:verify", "host:bit.ly", ...
	Weight  float64 `json:"weight"`  // log-odds towards junk (negative: towards ham)
}

// Result is a message's classification.
type Result struct {
	Model       string  `json:"model"`       // the model's Kind
	Probability float64 `json:"probability"` // that the message is junk
	Junk        bool    `json:"junk"`        // Probability reached the threshold
	// Class is "phish" or "spam" for junk when the Classifier has a
	// model that tells them apart ("junk" when not), "ham" otherwise.
	Class    string `json:"class"`
	Features int    `json:"features"` // how many features the message had
	// Recipient says the recipient's own statistics took part
	// (PredictFor): their features are named "rcpt/KIND".
	Recipient bool `json:"recipient,omitempty"`
	// Strongest are the features that pushed hardest towards the
	// verdict, strongest first.
	Strongest []Contribution `json:"strongest,omitempty"`
}

// String explains the result in one line, e.g. "classifier 0.97 phish:
// strongest features: word "verify"(+1.20), host "bit.ly"(+0.90)".
func (r Result) String() string {
	// strconv as fmt's "%.2f", "%q" and "%+.2f" write them, without
	// fmt's cost (one explanation a message).
	b := make([]byte, 0, 64+48*len(r.Strongest))
	b = append(b, "classifier "...)
	b = strconv.AppendFloat(b, r.Probability, 'f', 2, 64)
	b = append(append(b, ' '), r.Class...)
	if len(r.Strongest) > 0 {
		b = append(b, ": strongest features: "...)
		for i, c := range r.Strongest {
			if i > 0 {
				b = append(b, ", "...)
			}
			kind, text, _ := strings.Cut(c.Feature, ":")
			b = strconv.AppendQuote(append(append(b, kind...), ' '), text)
			b = append(b, '(')
			if !math.Signbit(c.Weight) && !math.IsInf(c.Weight, 1) {
				b = append(b, '+')
			}
			b = append(strconv.AppendFloat(b, c.Weight, 'f', 2, 64), ')')
		}
	}
	return string(b)
}

// DefaultThreshold is the probability from which a message counts as
// junk when the caller sets none: on the corpus's train split with a
// fifth held out, the lowest that flagged at most 0.5% of the ham.
const DefaultThreshold = 0.95

// explainTop bounds the features an explanation names.
const explainTop = 5

// Classifier wraps a Model for concurrent use: classification shares a
// read lock, learning takes the write lock. A second, optional model
// tells phishing from spam among the junk.
type Classifier struct {
	Threshold float64 // junk from this probability; 0 means DefaultThreshold

	mu    sync.RWMutex
	model Model     // junk (phish or spam) against ham
	kinds Model     // phish against spam, learnt from junk only; may be nil
	pool  sync.Pool // *Extractor
	// starter: the model is the shipped starter model (LoadFile ""),
	// whose hit the Analyzer caps.
	starter bool
}

// Starter reports whether c classifies with the shipped starter model.
func (c *Classifier) Starter() bool { return c.starter }

// learnt reports whether c's model is a Bayes model that has learnt at
// least n junk and n ham messages (other models: always).
func (c *Classifier) learnt(n int) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	b, ok := c.model.(*Bayes)
	return !ok || b.nJunk >= uint64(n) && b.nHam >= uint64(n)
}

// NewClassifier returns a Classifier around m, junk against ham, and
// kinds, phishing against spam (nil: junk is not told apart).
func NewClassifier(m, kinds Model) *Classifier {
	return &Classifier{model: m, kinds: kinds, pool: sync.Pool{New: func() any { return NewExtractor() }}}
}

// Models returns the wrapped models; the caller must not use them while
// the Classifier is in use.
func (c *Classifier) Models() (junk, kinds Model) { return c.model, c.kinds }

// Classify extracts msg's features and predicts.
func (c *Classifier) Classify(msg *Message) Result {
	x := c.pool.Get().(*Extractor)
	defer c.pool.Put(x)
	v := x.Extract(msg)
	return c.classifyVector(v, x.contribs(len(v.Hashes)), &x.logs)
}

// ClassifyVector predicts from features already extracted.
func (c *Classifier) ClassifyVector(v *Vector) Result {
	return c.classifyVector(v, make([]float64, len(v.Hashes)), nil)
}

// classifyVector is ClassifyVector with contrib, zeros as long as
// v.Hashes, for the features' contributions, and the logarithms a Bayes
// model takes remembered in logs (nil: for this prediction only).
func (c *Classifier) classifyVector(v *Vector, contrib []float64, logs *logMemo) Result {
	c.mu.RLock()
	var p float64
	if b, ok := c.model.(*Bayes); ok && logs != nil {
		p = b.predict(v, contrib, logs)
	} else {
		p = c.model.Predict(v, contrib)
	}
	r := c.result(v, p)
	c.mu.RUnlock()
	r.Strongest = strongest(v.Name, contrib, r.Junk, explainTop)
	return r
}

// result is the Result of probability p for v, junk from c.Threshold,
// told phishing or spam by c.kinds; c.mu is read-locked.
func (c *Classifier) result(v *Vector, p float64) Result {
	t := c.Threshold
	if t == 0 {
		t = DefaultThreshold
	}
	r := Result{Model: c.model.Kind(), Probability: p, Junk: p >= t, Class: "ham", Features: len(v.Hashes)}
	if r.Junk {
		r.Class = "junk"
		if c.kinds != nil {
			r.Class = "spam"
			if c.kinds.Predict(v, nil) > 0.5 {
				r.Class = "phish"
			}
		}
	}
	return r
}

// RecipientOptions is how a message for one recipient is classified
// (Bayes.PredictFor): Mode is RecipientAdd, RecipientOverride or
// RecipientOnly ("": DefaultRecipientMode), MinLearns the messages of
// each class the recipient must have taught (0:
// DefaultRecipientMinLearns).
type RecipientOptions struct {
	Mode      string
	MinLearns int
	priorS    float64 // RecipientPrior's weight of the site (0: recipientPriorS)
}

// ClassifyVectorFor is ClassifyVector for a message to the one
// recipient of salt (RecipientSalt; 0: none), with the recipient's own
// statistics when the model is a Bayes model and the recipient has
// taught enough.
func (c *Classifier) ClassifyVectorFor(v *Vector, salt uint64, o RecipientOptions) Result {
	return c.classifyVectorFor(v, salt, o, nil)
}

// classifyVectorFor is ClassifyVectorFor with the contributions in x's
// buffer (x nil: a new one).
func (c *Classifier) classifyVectorFor(v *Vector, salt uint64, o RecipientOptions, x *Extractor) Result {
	contribs := func(n int) []float64 {
		if x == nil {
			return make([]float64, n)
		}
		return x.contribs(n)
	}
	c.mu.RLock()
	b, ok := c.model.(*Bayes)
	if salt == 0 || !ok {
		c.mu.RUnlock()
		var logs *logMemo
		if x != nil {
			logs = &x.logs
		}
		return c.classifyVector(v, contribs(len(v.Hashes)), logs)
	}
	n := len(v.Hashes)
	contrib := contribs(2 * n) // the site's features, then the recipient's
	p, used := b.predictFor(v, salt, cmp.Or(o.Mode, DefaultRecipientMode), cmp.Or(o.MinLearns, DefaultRecipientMinLearns), cmp.Or(o.priorS, recipientPriorS), contrib[:n], contrib[n:])
	r := c.result(v, p)
	r.Recipient = used
	c.mu.RUnlock()
	r.Strongest = strongest(func(i int) string {
		if i < n {
			return v.Name(i)
		}
		return "rcpt/" + v.Name(i-n)
	}, contrib, r.Junk, explainTop)
	return r
}

// Learn extracts msg's features and teaches them as class: "phish",
// "spam" or "ham".
func (c *Classifier) Learn(msg *Message, class string) error {
	x := c.pool.Get().(*Extractor)
	defer c.pool.Put(x)
	return c.LearnVector(x.Extract(msg), class)
}

// LearnVector teaches features already extracted.
func (c *Classifier) LearnVector(v *Vector, class string) error {
	if classIndex(class) < 0 {
		return fmt.Errorf("classify: class %q (phish, spam, ham)", class)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.model.Learn(v, class != "ham")
	if c.kinds != nil && class != "ham" {
		c.kinds.Learn(v, class == "phish")
	}
	return nil
}

// strongest picks the n features that pushed hardest towards the
// verdict (towards junk when junk, towards ham otherwise), without
// sorting them all.
func strongest(name func(int) string, contrib []float64, junk bool, n int) []Contribution {
	// Towards the verdict is positive after multiplying by sign.
	sign := -1.0
	if junk {
		sign = 1
	}
	idx := make([]int, 0, n)
	for i, w := range contrib {
		if w *= sign; !(w > 0) {
			continue
		}
		if len(idx) == n && !(w > contrib[idx[n-1]]*sign) {
			continue
		}
		if len(idx) < n {
			idx = append(idx, i)
		} else {
			idx[n-1] = i
		}
		for j := len(idx) - 1; j > 0 && contrib[idx[j]]*sign > contrib[idx[j-1]]*sign; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	out := make([]Contribution, len(idx))
	for k, i := range idx {
		out[k] = Contribution{Feature: name(i), Weight: math.Round(contrib[i]*100) / 100}
	}
	return out
}

// Store keeps serialized models by name. DirStore keeps them as files;
// the store's database will keep them next, so that several MX hosts
// share one model.
type Store interface {
	// Load returns the model saved under name, or ErrNoModel.
	Load(ctx context.Context, name string) ([]byte, error)
	// Save replaces the model saved under name.
	Save(ctx context.Context, name string, data []byte) error
}

// ErrNoModel is Load's answer for a name never saved.
var ErrNoModel = errors.New("classify: no such model")

// DirStore is a Store of files in a directory, one per model, each
// replaced atomically (written aside, then renamed).
type DirStore struct{ Dir string }

func (d DirStore) path(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("classify: model name %q", name)
	}
	return filepath.Join(d.Dir, name+".model"), nil
}

// Load reads the model file.
func (d DirStore) Load(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoModel
	}
	if err != nil {
		return nil, fmt.Errorf("classify: load %s: %w", name, err)
	}
	return b, nil
}

// Save writes the model file.
func (d DirStore) Save(_ context.Context, name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.Dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("classify: save %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("classify: save %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("classify: save %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("classify: save %s: %w", name, err)
	}
	return nil
}

// SaveModel serializes m into st under name.
func SaveModel(ctx context.Context, st Store, name string, m Model) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return st.Save(ctx, name, b)
}

// LoadModel restores the model saved under name, of whichever kind it is.
func LoadModel(ctx context.Context, st Store, name string) (Model, error) {
	b, err := st.Load(ctx, name)
	if err != nil {
		return nil, err
	}
	return UnmarshalModel(b)
}
