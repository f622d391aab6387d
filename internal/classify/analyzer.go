package classify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/analysis"
)

// Rule is the name of the classifier's hit in the pipeline's score.
const Rule = "classifier"

// Analyzer is a Classifier as one of the receive pipeline's analyzers
// (internal/analysis): a probability from Threshold on is the hit
// "classifier" weighing Weight, from StrongThreshold on StrongWeight,
// explained by the features that decided. A StrongThreshold of 0 has no
// strong band.
type Analyzer struct {
	C                          *Classifier
	Threshold, StrongThreshold float64
	Weight, StrongWeight       int
	// StarterWeight caps the hit while C is the starter model
	// (LoadFile ""): it fires from StrongThreshold and weighs at most
	// this.
	StarterWeight int
	// Starter, with Shared, classifies in the store model's place
	// (capped as above) until that model has learnt StarterUntil junk
	// and StarterUntil ham messages: a site that learns starts from the
	// starter model and goes over to its own examples.
	Starter      *Classifier
	StarterUntil int
	// Shared, when set, is the model in the store that classifies in
	// C's place; a message that finds its copy older than Shared.Every
	// starts a refresh in the background (never waiting for it).
	Shared *Shared
	// RefreshError hears of a failed refresh (may be nil).
	RefreshError func(error)
	// PerRecipient classifies a message for exactly one recipient on
	// the site's statistics and that recipient's own (Recipient says
	// how), and keeps the recipient's salt with its features so that a
	// click on its verdict teaches the recipient too.
	PerRecipient bool
	Recipient    RecipientOptions
}

// Report is what the classifier said of a message, for check-message
// --json: the Result and its explanation.
type Report struct {
	Result
	Explanation string `json:"explanation"`
	kept        []byte // what the verdict keeps (FeatureHashes)
}

// Name is the analyzer's config key, checks.classifier.
func (a *Analyzer) Name() string { return "classifier" }

// Analyze classifies the text the pipeline decoded, with the
// authentication outcomes, the aligned identities and the earlier
// analyzers' hits as features beside it.
func (a *Analyzer) Analyze(_ context.Context, m *analysis.Message) analysis.Result {
	c := a.C
	if a.Shared != nil {
		a.Shared.RefreshInBackground(time.Now(), a.RefreshError)
		c = a.Shared.C
		if a.Starter != nil && !c.learnt(a.StarterUntil) {
			c = a.Starter
		}
	}
	if c == nil {
		return analysis.Result{} // a store model not attached: no store
	}
	msg := Message{Fields: m.Fields, Body: m.Body, Recipients: m.Rcpts, Content: m.Content(), Extra: Extras(m)}
	var salt uint64
	if a.PerRecipient && len(m.Rcpts) == 1 && !c.starter && c != a.Starter {
		// (The starter model has no recipients: their buckets there
		// are other features'.)
		salt = RecipientSalt(m.Rcpts[0])
	}
	r, kept := c.classifyKeptFor(&msg, salt, a.Recipient)
	rep := &Report{Result: r, Explanation: r.String(), kept: kept}
	if r.Recipient {
		rep.Explanation += " (with the recipient's own statistics)"
	}
	w := 0
	switch {
	case c.starter:
		// The starter model learnt 2002 mail, not this site's: until
		// the site has a model of its own, it speaks only when sure,
		// and too softly to tag a message alone.
		if r.Probability >= max(a.Threshold, a.StrongThreshold) {
			w = min(a.Weight, a.StarterWeight)
			rep.Explanation += " (the starter model: weight capped at " + strconv.Itoa(w) + ")"
		}
	case a.StrongThreshold > 0 && r.Probability >= a.StrongThreshold:
		w = a.StrongWeight
	case r.Probability >= a.Threshold:
		w = a.Weight
	}
	out := analysis.Result{Report: rep}
	if w > 0 {
		out.Hits = []analysis.Hit{{Rule: Rule, Weight: w, Detail: rep.Explanation}}
	}
	return out
}

// maxExtraDomains bounds the DKIM identities named as features: a
// message may carry many signatures.
const maxExtraDomains = 5

// Extras names the pipeline's findings as features ("dmarc=pass",
// "aligned-from=example.com", "rule=brand_from_domain"), as
// bench/classify -rules names the rules' hits.
func Extras(m *analysis.Message) []string {
	// The names are written into one string, and cut from it: two
	// allocations, not one a name.
	type extra struct{ name, v string }
	var stack [16]extra
	found := stack[:0]
	add := func(name, v string) {
		if v != "" {
			found = append(found, extra{name, strings.ToLower(v)})
		}
	}
	add("spf", m.SPF)
	add("dmarc", m.DMARC)
	add("arc", m.ARC)
	add("iprev", m.IPRev)
	switch {
	case len(m.DKIMPass) > 0:
		add("dkim", "pass")
	case m.DKIMFail:
		add("dkim", "fail")
	}
	// The identities authentication vouched for: what reputation will
	// count, and what a model can learn a site's correspondents by.
	if m.DMARC == "pass" {
		add("aligned-from", m.HeaderFrom)
	}
	if m.SPF == "pass" {
		add("spf-domain", m.SPFDomain)
	}
	for i, d := range m.DKIMPass {
		if i == maxExtraDomains {
			break
		}
		add("dkim-domain", d)
	}
	for _, h := range m.Hits {
		if h.Weight > 0 {
			add("rule", h.Rule)
		}
	}
	n := 0
	for _, e := range found {
		n += len(e.name) + 1 + len(e.v)
	}
	var b strings.Builder
	b.Grow(n)
	for _, e := range found {
		b.WriteString(e.name)
		b.WriteByte('=')
		b.WriteString(e.v)
	}
	all := b.String()
	out := make([]string, len(found))
	start := 0
	for i, e := range found {
		end := start + len(e.name) + 1 + len(e.v)
		out[i] = all[start:end]
		start = end
	}
	return out
}

// ModelName names the model LoadFile(path) reads, for messages.
func ModelName(path string) string {
	if path == "" {
		return "the starter model (built in: the SpamAssassin messages of the corpus's train split)"
	}
	return path
}

// LoadFile reads the model file at path: NAME.model, as bench/classify
// -save and mailwall train write it, with NAME-kinds.model beside it
// when there is one (it tells phishing from spam); or a file in the
// compact encoding (mailwall train -o FILE); or, for "", the starter
// model built into the binary (Starter). kind is the kind of model the
// file must hold ("bayes", "ftrl").
func LoadFile(ctx context.Context, path, kind string) (*Classifier, error) {
	if path == "" {
		if kind != "bayes" {
			return nil, fmt.Errorf("classify: the starter model is a bayes model, not %s", kind)
		}
		m, err := Starter()
		if err != nil {
			return nil, err
		}
		c := NewClassifier(m, nil)
		c.starter = true
		return c, nil
	}
	name, ok := strings.CutSuffix(filepath.Base(path), ".model")
	if !ok || name == "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("classify: model file: %w", err)
		}
		if !IsCompact(b) {
			return nil, fmt.Errorf("classify: model file %s: not in the compact encoding, and the name of one in the other must end in .model", path)
		}
		if kind != "bayes" {
			return nil, fmt.Errorf("classify: model file %s holds a bayes model, not %s", path, kind)
		}
		m, err := DecodeCompact(b)
		if err != nil {
			return nil, fmt.Errorf("classify: model file %s: %w", path, err)
		}
		return NewClassifier(m, nil), nil
	}
	st := DirStore{Dir: filepath.Dir(path)}
	m, err := LoadModel(ctx, st, name)
	if errors.Is(err, ErrNoModel) {
		return nil, fmt.Errorf("classify: model file %s does not exist (mailwall train writes one; an empty checks.classifier.model is the starter model)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("classify: model file %s: %w", path, err)
	}
	if m.Kind() != kind {
		return nil, fmt.Errorf("classify: model file %s holds a %s model, not %s", path, m.Kind(), kind)
	}
	kinds, err := LoadModel(ctx, st, name+"-kinds")
	switch {
	case errors.Is(err, ErrNoModel):
		kinds = nil
	case err != nil:
		return nil, fmt.Errorf("classify: model file %s: %w", filepath.Join(st.Dir, name+"-kinds.model"), err)
	}
	return NewClassifier(m, kinds), nil
}
