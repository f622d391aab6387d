package classify

// Measuring the content pipeline on labelled mail: the phishing rules and
// the classifier composed as serve composes them (the rules first, their
// hits features of the classifier, the weights summed into one score,
// the score mapped to an action), trained on one set of messages and
// judged on another. mailwall eval, mailwall train, bench/classify and
// the shared-corpus test in test/corpus all go through here, so that the
// figures each prints are the same computation.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mailwall/internal/analysis"
	"mailwall/internal/phish"
)

// MaxEvalMessage bounds what is read of one message file: the rest is
// cut, as the milter cuts what it is given.
const MaxEvalMessage = 16 << 20

// maxLabels bounds the rows of a labels file.
const maxLabels = 10_000_000

// ReadMessage reads l's file, at most MaxEvalMessage octets of it.
func ReadMessage(l Labelled) ([]byte, error) {
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, fmt.Errorf("classify: %s: %w", l.ID, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEvalMessage))
	if err != nil {
		return nil, fmt.Errorf("classify: %s: %w", l.ID, err)
	}
	return b, nil
}

// ReadLabels reads a labels file for the messages under dir. It is
// tab-separated, one message a row. With a header row (a column named
// "class") the columns are found by name: "id" or "file" names the
// message, "class" its class, and "split" and "ip" (the client address)
// are read when present; without one, the first column is the file and
// the second the class. A message is dir/FILE, else dir/CLASS/ID.eml,
// else dir/ID.eml (as ../shared/corpus keeps them). Classes are phish,
// spam and ham; junk is read as spam. split, when not "", keeps only the
// rows of that split.
func ReadLabels(file, dir, split string) ([]Labelled, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("classify: labels: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	col := map[string]int{"file": 0, "class": 1, "split": -1, "ip": -1}
	var out []Labelled
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cols := strings.Split(text, "\t")
		if line == 1 && slices.Contains(cols, "class") {
			col = map[string]int{"file": -1, "class": -1, "split": -1, "ip": -1}
			for i, c := range cols {
				switch c {
				case "id", "file":
					col["file"] = i
				case "class", "split", "ip":
					col[c] = i
				}
			}
			if col["file"] < 0 {
				return nil, fmt.Errorf("classify: labels %s: the header names no id or file column", file)
			}
			continue
		}
		get := func(name string) string {
			if i := col[name]; i >= 0 && i < len(cols) {
				return strings.TrimSpace(cols[i])
			}
			return ""
		}
		id, class := get("file"), get("class")
		if class == "junk" {
			class = "spam"
		}
		if id == "" || classIndex(class) < 0 {
			return nil, fmt.Errorf("classify: labels %s line %d: file %q class %q (phish, spam, ham)", file, line, id, class)
		}
		if split != "" && get("split") != split {
			continue
		}
		if len(out) == maxLabels {
			return nil, fmt.Errorf("classify: labels %s: more than %d messages", file, maxLabels)
		}
		l := Labelled{ID: id, Class: class, Split: get("split"), Path: locate(dir, id, class)}
		if ip, err := netip.ParseAddr(get("ip")); err == nil {
			l.ClientIP = ip
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("classify: labels %s: %w", file, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("classify: labels %s: no messages (split %q)", file, split)
	}
	return out, nil
}

// locate finds the message a labels row names.
func locate(dir, id, class string) string {
	for _, p := range []string{filepath.Join(dir, id), filepath.Join(dir, class, id+".eml"), filepath.Join(dir, id+".eml")} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return filepath.Join(dir, id)
}

// Pipeline is the content analyzers as serve runs them with the
// classifier listed after the phishing rules: the rules' hits are the
// classifier's features and the weights add up into the score that the
// thresholds map to an action. Authentication is not run: the rules
// read no outcome but what the caller puts in the analysis.Message.
type Pipeline struct {
	Rules      *phish.Checker // nil: no rules
	Classifier *Analyzer      // nil: no classifier
	// The score thresholds (checks.score); 0 turns one off.
	Tag, Quarantine, Reject int
	// Read returns a message's bytes; nil: ReadMessage.
	Read func(Labelled) ([]byte, error)
	// Envelope, when set, fills in each message's envelope (Rcpts,
	// ClientIP) before it is read.
	Envelope func(*Labelled)
	// Drop are kinds of features (EraKinds, for one) (the part of a name before ':', as
	// "mime-cte") that Examples leaves out: a model learnt without them
	// gives them no weight.
	Drop []string
}

// message is l as the analyzers see it, with the rules' hits.
func (p *Pipeline) message(ctx context.Context, l Labelled) (*analysis.Message, error) {
	if p.Envelope != nil {
		p.Envelope(&l)
	}
	read := p.Read
	if read == nil {
		read = ReadMessage
	}
	raw, err := read(l)
	if err != nil {
		return nil, err
	}
	fields, body := ParseMessage(raw)
	am := &analysis.Message{Fields: fields, Body: body, Rcpts: l.Rcpts, ClientIP: l.ClientIP, Decode: phish.Extract}
	if p.Rules != nil {
		am.Hits = p.Rules.Analyze(ctx, am).Hits
	}
	// The classifier reads the addresses the corpus's collectors wrote
	// over their own as the recipient's too (Labelled.Recipients).
	am.Rcpts = append(slices.Clip(l.Rcpts), l.Recipients()...)
	return am, nil
}

// Message reads l and returns it as the classifier reads it in the
// pipeline, with the rules' hits (their names among its features).
func (p *Pipeline) Message(ctx context.Context, l Labelled) (*Message, []analysis.Hit, error) {
	am, err := p.message(ctx, l)
	if err != nil {
		return nil, nil, err
	}
	return messageOf(am), am.Hits, nil
}

// Examples are the features of ls as the classifier sees them in the
// pipeline (the rules' hits among them), for Train.
func (p *Pipeline) Examples(ctx context.Context, ls []Labelled) ([]Example, error) {
	x := NewExtractor()
	out := make([]Example, 0, len(ls))
	for _, l := range ls {
		msg, _, err := p.Message(ctx, l)
		if err != nil {
			return nil, err
		}
		v := x.Extract(msg)
		keep := &Vector{Hashes: make([]uint64, 0, len(v.Hashes))}
		for i, h := range v.Hashes {
			if len(p.Drop) > 0 {
				kind, _, _ := strings.Cut(v.Name(i), ":")
				if slices.Contains(p.Drop, kind) {
					continue
				}
			}
			keep.Hashes = append(keep.Hashes, h)
		}
		out = append(out, Example{V: keep, Class: l.Class})
	}
	return out, nil
}

// messageOf is what the classifier reads of an analysis.Message.
func messageOf(m *analysis.Message) *Message {
	return &Message{Fields: m.Fields, Body: m.Body, Recipients: m.Rcpts, Content: m.Content(), Extra: Extras(m)}
}

// TrainModel trains a model of kind on examples as the project trains
// its models (bench/classify, make model): FTRL FTRLEpochs passes, Bayes
// one, in an order shuffled by a fixed seed, so the same examples give
// the same model byte for byte; and, when the examples hold both
// phishing and spam, a Bayes model that tells them apart (nil if not).
func TrainModel(kind string, examples []Example) (m, kinds Model, err error) {
	if len(examples) == 0 {
		return nil, nil, errNoExamples
	}
	if m, err = NewModel(kind, DefaultBits); err != nil {
		return nil, nil, err
	}
	epochs := 1
	if kind == "ftrl" {
		epochs = FTRLEpochs
	}
	Train(m, examples, epochs, 1)
	has := map[string]bool{}
	for _, e := range examples {
		has[e.Class] = true
	}
	if has["phish"] && has["spam"] {
		kinds = NewBayes(DefaultBits)
		TrainKinds(kinds, examples, 1)
	}
	return m, kinds, nil
}

// EraKinds are the kinds of features that date a message more than
// they tell junk from ham: MIME structure, transfer encodings and
// charsets, header field order, the mailer. In 2002 ham was 7-bit plain
// text and spam HTML; today's ham is base64 and quoted-printable HTML
// from the same mailers as spam. The starter model, learnt from 2002
// mail, is learnt without them (mailwall train --era-neutral).
var EraKinds = []string{"header-order", "header-pair", "mailer", "mime", "mime-tree", "mime-part", "mime-cte", "mime-charset", "subject-charset"}

// Actions are what a score leads to, in the order reported.
var Actions = [4]string{"accept", "tag", "quarantine", "reject"}

// Judged is what the pipeline made of one message.
type Judged struct {
	Labelled
	// P is the classifier's probability of junk; -1 without one.
	P float64
	// Phish is the kinds model's probability that junk is phishing.
	Phish float64
	// RulesScore is the phishing rules' part of Score.
	RulesScore, Score int
	Action            string // one of Actions
	Hits              []analysis.Hit
	Strongest         []Contribution
}

// Flagged reports whether the score reached the tag threshold (or
// more).
func (j Judged) Flagged() bool { return j.Action != "accept" }

// Judge runs the pipeline on each message.
func (p *Pipeline) Judge(ctx context.Context, ls []Labelled) ([]Judged, error) {
	out := make([]Judged, 0, len(ls))
	for _, l := range ls {
		am, err := p.message(ctx, l)
		if err != nil {
			return nil, err
		}
		j := Judged{Labelled: l, P: -1, Hits: am.Hits}
		j.RulesScore = analysis.Score(am.Hits)
		if p.Classifier != nil {
			res := p.Classifier.Analyze(ctx, am)
			if rep, ok := res.Report.(*Report); ok {
				j.P, j.Strongest = rep.Probability, rep.Strongest
				if c := p.Classifier.C; c != nil && c.kinds != nil {
					j.Phish = c.kinds.Predict(c.Vector(messageOf(am)), nil)
				}
			}
			j.Hits = append(slices.Clip(j.Hits), res.Hits...)
		}
		j.Score = analysis.Score(j.Hits)
		j.Action = p.action(j.Score)
		out = append(out, j)
	}
	return out, nil
}

func (p *Pipeline) action(score int) string {
	switch {
	case p.Reject > 0 && score >= p.Reject:
		return "reject"
	case p.Quarantine > 0 && score >= p.Quarantine:
		return "quarantine"
	case p.Tag > 0 && score >= p.Tag:
		return "tag"
	}
	return "accept"
}

// Vector extracts msg's features with a pooled Extractor and returns a
// copy that outlives it.
func (c *Classifier) Vector(msg *Message) *Vector {
	x := c.pool.Get().(*Extractor)
	defer c.pool.Put(x)
	return x.Extract(msg).Clone()
}

// Summary is the figures of a Judge run.
type Summary struct {
	// Total and By count messages per class (Classes) and per class
	// and action (Actions).
	Total [3]int
	By    [3][4]int
}

// Summarize counts the judged messages by class and action.
func Summarize(js []Judged) Summary {
	var s Summary
	for _, j := range js {
		i := classIndex(j.Class)
		if i < 0 {
			continue
		}
		s.Total[i]++
		s.By[i][slices.Index(Actions[:], j.Action)]++
	}
	return s
}

// Flagged is the fraction of class c tagged or worse.
func (s Summary) Flagged(c string) float64 {
	i := classIndex(c)
	if i < 0 || s.Total[i] == 0 {
		return 0
	}
	return float64(s.Total[i]-s.By[i][0]) / float64(s.Total[i])
}

// Count is the number of class c's messages given action a.
func (s Summary) Count(c, a string) int {
	i := classIndex(c)
	if i < 0 {
		return 0
	}
	return s.By[i][slices.Index(Actions[:], a)]
}

// Print writes the confusion matrix of class against action and one
// line of rates.
func (s Summary) Print(w io.Writer, label string) {
	fmt.Fprintf(w, "%s: phish %.1f%%, spam %.1f%%, ham %.2f%% flagged (tagged or worse)\n",
		label, 100*s.Flagged("phish"), 100*s.Flagged("spam"), 100*s.Flagged("ham"))
	fmt.Fprintf(w, "  %-8s %6s %8s %8s %11s %8s\n", "class", "total", "accept", "tag", "quarantine", "reject")
	for i, c := range Classes {
		if s.Total[i] == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-8s %6d %8d %8d %11d %8d\n", c, s.Total[i], s.By[i][0], s.By[i][1], s.By[i][2], s.By[i][3])
	}
}

// PrintReport writes what mailwall eval prints of a Judge run: the
// confusion matrix at the configured thresholds; the classifier's
// probability alone at its threshold and at the thresholds that flag at
// most 1% and 0.1% of the ham; the same for the score; and the rules and
// features that decided most.
func PrintReport(w io.Writer, js []Judged, p *Pipeline) {
	Summarize(js).Print(w, fmt.Sprintf("at the score thresholds (tag %d, quarantine %d, reject %d)", p.Tag, p.Quarantine, p.Reject))
	score := make([]Scored, len(js))
	prob := make([]Scored, 0, len(js))
	for i, j := range js {
		score[i] = Scored{Class: j.Class, P: float64(j.Score)}
		if j.P >= 0 {
			prob = append(prob, Scored{Class: j.Class, P: j.P, Phish: j.Phish})
		}
	}
	fmt.Fprintln(w)
	if len(prob) > 0 {
		fmt.Fprintln(w, "the classifier's probability alone:")
		Measure(prob, p.Classifier.Threshold).Print(w, "its threshold")
		Measure(prob, HamThreshold(prob, 0.01)).Print(w, "1% of ham flagged at most")
		Measure(prob, HamThreshold(prob, 0.001)).Print(w, "0.1% of ham flagged at most")
	}
	fmt.Fprintln(w, "the score (every analyzer):")
	printRates(w, Measure(score, HamThreshold(score, 0.01)), "1% of ham flagged at most")
	printRates(w, Measure(score, HamThreshold(score, 0.001)), "0.1% of ham flagged at most")
	fmt.Fprintln(w)
	for i, c := range Classes {
		rules, feats := map[string]int{}, map[string]int{}
		flagged := 0
		for _, j := range js {
			if j.Class != c || !j.Flagged() {
				continue
			}
			flagged++
			for _, h := range j.Hits {
				if h.Weight > 0 {
					rules[h.Rule]++
				}
			}
			for _, f := range j.Strongest {
				if f.Weight > 0 {
					feats[f.Feature]++
				}
			}
		}
		if flagged == 0 {
			continue
		}
		fmt.Fprintf(w, "%s flagged (%d of %d), rules: %s\n", c, flagged, Summarize(js).Total[i], top(rules, 8))
		fmt.Fprintf(w, "  strongest features: %s\n", top(feats, 8))
	}
	for _, j := range js {
		if j.Class == "ham" && j.Flagged() {
			fmt.Fprintf(w, "ham %s: %s, score %d: %s", j.ID, j.Action, j.Score, strings.Join(analysis.Rules(j.Hits), " "))
			if j.P >= 0 {
				fmt.Fprintf(w, " (classifier %.4f)", j.P)
			}
			fmt.Fprintln(w)
		}
	}
}

// printRates writes one line of an Outcome's rates.
func printRates(w io.Writer, o Outcome, label string) {
	fmt.Fprintf(w, "  %s (score %g or more): phish %.1f%%, spam %.1f%%, ham %.2f%% flagged\n",
		label, math.Ceil(o.Threshold), 100*o.Rate("phish"), 100*o.Rate("spam"), 100*o.Rate("ham"))
}

// top lists the n names counted most, "name (count)", most first.
func top(counts map[string]int, n int) string {
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s (%d)", k, counts[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// errNoExamples is TrainModel's caller's error for an empty set.
var errNoExamples = errors.New("classify: no messages to learn from")
