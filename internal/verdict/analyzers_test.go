package verdict

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
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

// trainHandwritten trains a Bayes model on internal/classify's
// handwritten test messages (four spam, four ham), each three times,
// in 2^bits buckets.
func trainHandwritten(t testing.TB, bits int) *classify.Classifier {
	t.Helper()
	paths, err := filepath.Glob("../classify/testdata/handwritten/*.eml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no training messages: %v", err)
	}
	c := classify.NewClassifier(classify.NewBayes(bits), nil)
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fields, body := classify.ParseMessage(raw)
		for range 3 {
			if err := c.Learn(&classify.Message{Fields: fields, Body: body}, strings.SplitN(filepath.Base(p), "-", 2)[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

const spammyMsg = "From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: Claim your free prize now\r\nMessage-ID: <s@example.test>\r\n\r\n" +
	"Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n" +
	"details and the small processing fee. Limited time exclusive offer, act now.\r\n"

// TestClassifierAnalyzer: after the phishing rules, the classifier's hit
// joins the score with its explanation, in X-Mailwall-Score, the
// reasons and the JSON.
func TestClassifierAnalyzer(t *testing.T) {
	c, _ := world(t)
	p, err := phish.New(phish.DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := trainHandwritten(t, 16)
	c.Analyzers = []analysis.Analyzer{p, &classify.Analyzer{C: cl, Threshold: 0.95, Weight: 30, StrongThreshold: 0.99, StrongWeight: 45}}
	r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}, spammyMsg)
	if r.DMARC.Result != "pass" || r.Phish == nil || len(r.Phish.Hits) != 0 {
		t.Fatalf("dmarc %s phish %+v", r.DMARC.Result, r.Phish)
	}
	if len(r.Hits) != 1 || r.Hits[0].Rule != "classifier" || r.Hits[0].Weight != 45 || !strings.HasPrefix(r.Hits[0].Detail, "classifier 1.00 junk: strongest features: ") {
		t.Fatalf("hits %+v", r.Hits)
	}
	if r.Action != Tag || header(r, "X-Mailwall-Score") != " 45 (classifier=45)" || !slices.Contains(r.Reasons, "score: score 45: classifier=45") {
		t.Errorf("action %s X-Mailwall-Score:%s reasons %q", r.Action, header(r, "X-Mailwall-Score"), r.Reasons)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Phish      struct{ Score int }
		Classifier struct {
			Probability float64
			Explanation string
		}
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Classifier.Probability < 0.99 || got.Classifier.Explanation != r.Hits[0].Detail {
		t.Errorf("classifier report %+v in %s", got.Classifier, data)
	}
}

// BenchmarkMessageAnalyzers is BenchmarkMessage with the phishing rules
// (serve's default), and with the classifier after them: the model
// MAILWALL_BENCH_MODEL names (make model's), or one of the default size
// trained on the handwritten messages.
func BenchmarkMessageAnalyzers(b *testing.B) {
	for _, classifier := range []bool{false, true} {
		name := "phish"
		if classifier {
			name = "phish+classifier"
		}
		b.Run(name, func(b *testing.B) {
			c, signer := world(b)
			p, err := phish.New(phish.DefaultBrands(), nil)
			if err != nil {
				b.Fatal(err)
			}
			c.Analyzers = []analysis.Analyzer{p}
			if classifier {
				var cl *classify.Classifier
				if path := os.Getenv("MAILWALL_BENCH_MODEL"); path != "" {
					if cl, err = classify.LoadFile(context.Background(), path, "bayes"); err != nil {
						b.Fatal(err)
					}
				} else {
					cl = trainHandwritten(b, classify.DefaultBits)
				}
				c.Analyzers = append(c.Analyzers, &classify.Analyzer{C: cl, Threshold: 0.95, Weight: 30, StrongThreshold: 0.99, StrongWeight: 45})
			}
			benchMessage(b, c, signer)
		})
	}
}
