package classify

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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
	// Shared, when set, is the model in the store that classifies in
	// C's place; a message that finds its copy older than Shared.Every
	// starts a refresh in the background (never waiting for it).
	Shared *Shared
	// RefreshError hears of a failed refresh (may be nil).
	RefreshError func(error)
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
	}
	if c == nil {
		return analysis.Result{} // a store model not attached: no store
	}
	msg := Message{Fields: m.Fields, Body: m.Body, Recipients: m.Rcpts, Content: m.Content(), Extra: Extras(m)}
	r, kept := c.classifyKept(&msg)
	rep := &Report{Result: r, Explanation: r.String(), kept: kept}
	w := 0
	switch {
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
	out := make([]string, 0, 8+len(m.Hits))
	add := func(name, v string) {
		if v != "" {
			out = append(out, name+"="+strings.ToLower(v))
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
	return out
}

// LoadFile reads the model file at path (NAME.model, as "make model" and
// bench/classify -save write it) and, when there is one, NAME-kinds.model
// beside it, which tells phishing from spam. kind is the kind of model
// the file must hold ("bayes", "ftrl").
func LoadFile(ctx context.Context, path, kind string) (*Classifier, error) {
	name, ok := strings.CutSuffix(filepath.Base(path), ".model")
	if !ok || name == "" {
		return nil, fmt.Errorf("classify: model file %s: the name must end in .model", path)
	}
	st := DirStore{Dir: filepath.Dir(path)}
	m, err := LoadModel(ctx, st, name)
	if errors.Is(err, ErrNoModel) {
		return nil, fmt.Errorf("classify: model file %s does not exist (make model writes internal/classify/starter/bayes.model)", path)
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
