package verdict

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/phish"
)

// fixed is an analyzer that always finds the same, and records what it
// was shown.
type fixed struct {
	name string
	hits []analysis.Hit
	saw  []analysis.Hit // the earlier analyzers' hits, as shown to it
	text string         // the decoded text, as shown to it
}

func (f *fixed) Name() string { return f.name }

func (f *fixed) Analyze(_ context.Context, m *analysis.Message) analysis.Result {
	f.saw = slices.Clone(m.Hits)
	if c := m.Content(); c != nil {
		f.text = c.Text
	}
	return analysis.Result{Hits: f.hits, Problems: []string{f.name + " problem"}, Report: map[string]string{"by": f.name}}
}

// TestAnalyzersCompose: the analyzers run in their order, each sees the
// hits before it and the decoded text, the score is the sum of all hits,
// X-Mailwall-Score lists them, and each report is in the JSON under the
// analyzer's name.
func TestAnalyzersCompose(t *testing.T) {
	c, _ := world(t)
	a := &fixed{name: "first", hits: []analysis.Hit{{Rule: "one", Weight: 20, Detail: "first"}}}
	b := &fixed{name: "second", hits: []analysis.Hit{{Rule: "two", Weight: 25, Detail: "second"}}}
	c.Analyzers = []analysis.Analyzer{a, b}
	r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, msg)
	if !slices.Equal(b.saw, a.hits) || len(a.saw) != 0 {
		t.Errorf("first saw %v, second saw %v", a.saw, b.saw)
	}
	if !strings.HasPrefix(a.text, "Hi Bob.") || b.text != a.text {
		t.Errorf("decoded text %q and %q", a.text, b.text)
	}
	if r.Score() != 45 || !slices.Equal(r.Rules(), []string{"one=20", "two=25"}) || r.Action != Tag || r.Stage != "score" {
		t.Errorf("score %d rules %v action %s stage %s", r.Score(), r.Rules(), r.Action, r.Stage)
	}
	if h := header(r, "X-Mailwall-Score"); h != " 45 (one=20 two=25)" {
		t.Errorf("X-Mailwall-Score:%s", h)
	}
	if len(r.Analyses) != 2 || r.Analyses[1].Problems[0] != "second problem" {
		t.Errorf("analyses %+v", r.Analyses)
	}
	var got map[string]any
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	for _, name := range []string{"first", "second"} {
		if rep, _ := got[name].(map[string]any); rep["by"] != name {
			t.Errorf("%s's report: %v in %s", name, got[name], data)
		}
	}
	if got["action"] != "tag" {
		t.Errorf("action %v", got["action"])
	}
}

// TestNoAnalyzers: without analyzers there is no score, no
// X-Mailwall-Score and no body kept.
func TestNoAnalyzers(t *testing.T) {
	c, _ := world(t)
	m := c.Start(context.Background(), Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"})
	m.EndOfHeaders()
	m.Write([]byte("body\r\n"))
	if m.body != nil {
		t.Error("body kept with no analyzer to read it")
	}
	r := m.Finish()
	if r.Rules() != nil || r.Score() != 0 || header(r, "X-Mailwall-Score") != "" {
		t.Errorf("rules %v score %d", r.Rules(), r.Score())
	}
}

// BenchmarkMessageAnalyzers is BenchmarkMessage with the phishing rules
// (serve's default).
func BenchmarkMessageAnalyzers(b *testing.B) {
	b.Run("phish", func(b *testing.B) {
		c, signer := world(b)
		p, err := phish.New(phish.DefaultBrands(), nil)
		if err != nil {
			b.Fatal(err)
		}
		c.Analyzers = []analysis.Analyzer{p}
		benchMessage(b, c, signer)
	})
}
