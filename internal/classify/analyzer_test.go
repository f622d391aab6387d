package classify

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/phish"
)

// handwritten trains a Bayes model on testdata/handwritten (four spam,
// four ham, written for these tests), each message taught three times so
// that a few messages say something, and saves it as DIR/bayes.model.
func handwritten(t *testing.T) string {
	t.Helper()
	paths, err := filepath.Glob("testdata/handwritten/*.eml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no training messages: %v", err)
	}
	c := NewClassifier(NewBayes(16), nil)
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		class := strings.SplitN(filepath.Base(p), "-", 2)[0]
		fields, body := ParseMessage(raw)
		for range 3 {
			if err := c.Learn(&Message{Fields: fields, Body: body}, class); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	m, _ := c.Models()
	if err := SaveModel(context.Background(), DirStore{Dir: dir}, "bayes", m); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "bayes.model")
}

const spammy = "From: Lottery Desk <desk@win-big.example>\r\nTo: bob@rcpt.test\r\nSubject: Claim your free prize now\r\n" +
	"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <s@win-big.example>\r\n\r\n" +
	"Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n" +
	"details and the small processing fee. Limited time exclusive offer, act now.\r\n"

const hammy = "From: Alice Example <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: Meeting on Thursday\r\n" +
	"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
	"Hi Bob, could we review the release schedule and the test plan at the team meeting on Thursday? Thanks, Alice\r\n"

// TestAnalyzer: a model loaded from its file (as checks.classifier.model
// names it) gives a spammy message the hit "classifier" with the strong
// weight and the explanation, and an ordinary one no hit; the
// pipeline's findings are named as features.
func TestAnalyzer(t *testing.T) {
	c, err := LoadFile(context.Background(), handwritten(t), "bayes")
	if err != nil {
		t.Fatal(err)
	}
	a := &Analyzer{C: c, Threshold: 0.95, Weight: 30, StrongThreshold: 0.99, StrongWeight: 45}
	for _, tc := range []struct {
		name, raw  string
		wantWeight int
	}{
		{"spammy", spammy, 45},
		{"ordinary", hammy, 0},
	} {
		fields, body := ParseMessage([]byte(tc.raw))
		m := &analysis.Message{Fields: fields, Body: body, Rcpts: []string{"bob@rcpt.test"}, SPF: "pass", SPFDomain: "win-big.example",
			DMARC: "pass", HeaderFrom: "win-big.example", Hits: []analysis.Hit{{Rule: "reply_to_other_org", Weight: 15}}, Decode: phish.Extract}
		out := a.Analyze(context.Background(), m)
		rep, ok := out.Report.(*Report)
		if !ok {
			t.Fatalf("%s: report %T", tc.name, out.Report)
		}
		t.Logf("%s: %s", tc.name, rep.Explanation)
		got := analysis.Score(out.Hits)
		if got != tc.wantWeight {
			t.Errorf("%s: weight %d, want %d (%s)", tc.name, got, tc.wantWeight, rep.Explanation)
		}
		if tc.wantWeight > 0 {
			h := out.Hits[0]
			if h.Rule != Rule || !strings.HasPrefix(h.Detail, "classifier 1.00 junk: strongest features: ") || h.Detail != rep.Explanation {
				t.Errorf("%s: hit %+v", tc.name, h)
			}
		}
		if m.Content() == nil {
			t.Errorf("%s: the content was not decoded through the Message", tc.name)
		}
	}
	m := &analysis.Message{SPF: "pass", SPFDomain: "Example.COM", DMARC: "pass", HeaderFrom: "example.com", DKIMPass: []string{"example.com"},
		Hits: []analysis.Hit{{Rule: "brand_from_domain", Weight: 45}, {Rule: "off", Weight: 0}}}
	want := []string{"spf=pass", "dmarc=pass", "dkim=pass", "aligned-from=example.com", "spf-domain=example.com", "dkim-domain=example.com", "rule=brand_from_domain"}
	if got := Extras(m); !slices.Equal(got, want) {
		t.Errorf("extras %q, want %q", got, want)
	}
}

// TestLoadFileErrors: a missing file, a file neither named .model nor
// in the compact encoding, and a model of another kind are refused with
// the path.
func TestLoadFileErrors(t *testing.T) {
	path := handwritten(t)
	junk := filepath.Join(filepath.Dir(path), "bayes.bin")
	if err := os.WriteFile(junk, []byte("not a model"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind, want string }{
		{filepath.Join(t.TempDir(), "none.model"), "bayes", "does not exist"},
		{filepath.Join(t.TempDir(), "none.mwc"), "bayes", "no such file"},
		{junk, "bayes", "not in the compact encoding, and the name of one in the other must end in .model"},
		{path, "ftrl", "holds a bayes model, not ftrl"},
	} {
		_, err := LoadFile(context.Background(), tc.path, tc.kind)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s %s: %v, want %q", tc.path, tc.kind, err, tc.want)
		}
	}
}

// TestAnalyzerPerRecipient: with PerRecipient, a message to one
// recipient who reported its kind as spam gets the hit, explained by
// the recipient's features, and keeps the recipient's salt for a click;
// the same message to another recipient, to two recipients, or with
// PerRecipient off is classified on the site's statistics alone and
// keeps no salt.
func TestAnalyzerPerRecipient(t *testing.T) {
	const alice, bob = "alice@rcpt.test", "bob@rcpt.test"
	news := func(i int, to string) string {
		return "From: Garden Weekly <news@deals.test>\r\nTo: " + to + "\r\nSubject: Garden Weekly, issue " + strconv.Itoa(10+i) + "\r\n" +
			"Message-ID: <" + strconv.Itoa(i) + to + "@deals.test>\r\n\r\n" +
			"This week's garden deals: pruning shears, hose reels and raised beds at our members' prices. Unsubscribe any time.\r\n"
	}
	m := NewBayes(16)
	x := NewExtractor()
	learn := func(raw, rcpt string, junk bool) {
		fields, body := ParseMessage([]byte(raw))
		m.LearnFor(x.Extract(&Message{Fields: fields, Body: body}), RecipientSalt(rcpt), junk)
	}
	for i := range 8 {
		learn(spammy, "", true)
		learn(hammy, "", false)
		learn(news(i, bob), bob, false)
		learn(news(20+i, alice), alice, true)
		learn(hammy, alice, false)
		learn(spammy, bob, true)
	}
	a := &Analyzer{C: NewClassifier(m, nil), Threshold: 0.95, Weight: 30, StrongThreshold: 0.99, StrongWeight: 45,
		PerRecipient: true, Recipient: RecipientOptions{MinLearns: 3}}
	for _, tc := range []struct {
		name  string
		rcpts []string
		off   bool
		hit   bool
		salt  uint64
	}{
		{"alice", []string{"<Alice@rcpt.test>"}, false, true, RecipientSalt(alice)},
		{"bob", []string{bob}, false, false, RecipientSalt(bob)},
		{"both", []string{alice, bob}, false, false, 0},
		{"alice, per_recipient off", []string{alice}, true, false, 0},
	} {
		a.PerRecipient = !tc.off
		fields, body := ParseMessage([]byte(news(99, "x@rcpt.test")))
		out := a.Analyze(context.Background(), &analysis.Message{Fields: fields, Body: body, Rcpts: tc.rcpts, Decode: phish.Extract})
		rep := out.Report.(*Report)
		if hit := len(out.Hits) > 0; hit != tc.hit {
			t.Errorf("%s: hits %v, want a hit %v (%s)", tc.name, out.Hits, tc.hit, rep.Explanation)
		}
		if tc.hit && !strings.Contains(rep.Explanation, "rcpt/") || rep.Recipient != (tc.salt != 0) ||
			strings.HasSuffix(rep.Explanation, "(with the recipient's own statistics)") != (tc.salt != 0) {
			t.Errorf("%s: %+v", tc.name, rep)
		}
		if _, _, salt, err := ParseKeptFor(rep.FeatureHashes()); err != nil || salt != tc.salt {
			t.Errorf("%s: kept salt %x, want %x (%v)", tc.name, salt, tc.salt, err)
		}
	}
}

// TestResultString: the explanation reads as fmt wrote it ("%.2f",
// "%q", "%+.2f"), for every kind of number and text.
func TestResultString(t *testing.T) {
	viaFmt := func(r Result) string {
		var b strings.Builder
		fmt.Fprintf(&b, "classifier %.2f %s", r.Probability, r.Class)
		if len(r.Strongest) > 0 {
			b.WriteString(": strongest features: ")
			for i, c := range r.Strongest {
				if i > 0 {
					b.WriteString(", ")
				}
				kind, text, _ := strings.Cut(c.Feature, ":")
				fmt.Fprintf(&b, "%s %q(%+.2f)", kind, text, c.Weight)
			}
		}
		return b.String()
	}
	var weights []Contribution
	for _, w := range []float64{0, math.Copysign(0, -1), 1.2, -0.9, 0.005, -0.005, 123456.789, -1e-9, math.Inf(1), math.Inf(-1), math.NaN()} {
		weights = append(weights, Contribution{Feature: "word:x", Weight: w})
	}
	for _, r := range []Result{
		{Probability: 0.5, Class: "ham"},
		{Probability: 0.999, Class: "phish", Strongest: []Contribution{{"word:verify", 1.2}, {"host:bit.ly", 0.9}, {"word pair:a _ b", 0.5}}},
		{Probability: 0.0001, Class: "ham", Strongest: []Contribution{{"word cjk:確認", -2.5}, {"from-name:\"quoted\" \\ \x01\u200b", -0.01}, {"nocolon", -1}}},
		{Probability: 1, Class: "junk", Strongest: weights},
		{Probability: math.NaN(), Class: "spam"},
	} {
		if got, want := r.String(), viaFmt(r); got != want {
			t.Errorf("String() = %s\nfmt writes %s", got, want)
		}
	}
}
