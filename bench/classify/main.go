// Command classify measures internal/classify's models on a labelled
// corpus: each model is trained on the corpus's train split and judged
// on its validate split.
//
//	go run ./bench/classify [-corpus ../shared/corpus] [-model ftrl,bayes] [-tune]
//
// For each model it prints what the default threshold flags of each
// class (a confusion table: phish, spam, ham by flagged and passed),
// the same at the thresholds that flag 1% and 0.1% of the ham, how fast
// it learns (messages a second, with and without feature extraction),
// the CPU one classification costs (extraction included) and the
// model's memory. -tune holds out every fifth message of the train split
// instead and judges on that, so that parameters are chosen without
// looking at validate.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/cputime"
	"mailwall/internal/phish"
)

func main() {
	corpus := flag.String("corpus", "../shared/corpus", "the labelled corpus (labels.tsv, split.tsv, CLASS/ID.eml)")
	models := flag.String("model", "ftrl,bayes", "models to measure, comma-separated")
	bits := flag.Int("bits", classify.DefaultBits, "log2 of the buckets in a model's table")
	epochs := flag.Int("epochs", 0, "passes over the training set for FTRL (0: its default)")
	tune := flag.Bool("tune", false, "judge on a fifth of train held out, not on validate")
	alpha := flag.Float64("alpha", 0, "FTRL alpha (0: default)")
	l1 := flag.Float64("l1", -1, "FTRL L1 (-1: default)")
	strength := flag.Float64("strength", -1, "Bayes MinStrength (-1: default)")
	clues := flag.Int("clues", -1, "Bayes MaxClues (-1: default, 0: all)")
	explain := flag.Int("explain", 3, "explain this many validate messages of each class")
	thresholds := flag.String("thresholds", "", "more thresholds to report, comma-separated")
	rules := flag.Bool("rules", false, "run internal/phish's rules too: report them alone, and give their hits to the models as features")
	trainOn := flag.String("train-classes", "phish,spam,ham", "classes to train on (spam,ham: the SpamAssassin part only, which may be shipped)")
	save := flag.String("save", "", "save each trained model in this directory (as MODEL.model); never commit one trained on phish")
	top := flag.Int("top", 0, "print the features with the strongest weights, this many each way")
	misses := flag.Bool("misses", false, "explain every ham flagged and junk passed at the default threshold")
	flag.Parse()

	all, err := classify.ReadCorpus(*corpus)
	if err != nil {
		log.Fatal(err)
	}
	var train, test []classify.Labelled
	learnt := strings.Split(*trainOn, ",")
	seen := map[string]int{}
	for _, l := range all {
		if l.Split != "train" && (*tune || l.Split != "validate") {
			continue
		}
		holdout := l.Split == "validate"
		if *tune {
			// Every fifth of each class, so that the held-out part spans
			// its sources (ids sort by source).
			seen[l.Class]++
			holdout = seen[l.Class]%5 == 0
		}
		switch {
		case holdout:
			test = append(test, l) // every class is judged
		case slices.Contains(learnt, l.Class):
			train = append(train, l) // only the classes asked for are learnt
		}
	}

	// Features once: each model sees the same vectors, read as the
	// pipeline reads them (classify.Pipeline, which mailwall eval and
	// the shared-corpus test use too).
	x := classify.NewExtractor()
	p := &classify.Pipeline{}
	var ruleScores []classify.Scored // phish's score of each message, train then test
	if *rules {
		// The corpus's authentication results say nothing today (its
		// README): the auth_ rules weigh 0, and are not features.
		weights := phish.DefaultWeights()
		for rule := range weights {
			if strings.HasPrefix(rule, "auth_") {
				weights[rule] = 0
			}
		}
		if p.Rules, err = phish.New(phish.DefaultBrands(), weights); err != nil {
			log.Fatal(err)
		}
	}
	extract := func(ls []classify.Labelled) ([]classify.Example, []*classify.Message, time.Duration) {
		var ex []classify.Example
		var msgs []*classify.Message
		var spent time.Duration
		for _, l := range ls {
			m, hits, err := p.Message(context.Background(), l)
			if err != nil {
				log.Fatal(err)
			}
			if p.Rules != nil {
				ruleScores = append(ruleScores, classify.Scored{Class: l.Class, P: float64(analysis.Score(hits))})
			} else {
				m.Content = nil // the classification timed decodes MIME itself
			}
			start := cputime.Process()
			v := x.Extract(m).Clone()
			spent += cputime.Process() - start
			ex = append(ex, classify.Example{V: v, Class: l.Class})
			msgs = append(msgs, m)
		}
		return ex, msgs, spent
	}
	trainEx, _, trainCPU := extract(train)
	testEx, testMsgs, _ := extract(test)
	if p.Rules != nil {
		// The tag threshold of the default configuration.
		test := ruleScores[len(trainEx):]
		classify.Measure(test, 30).Print(os.Stdout, "internal/phish's rules alone, score 30 or more (authentication rules off)")
	}
	feats := 0
	for _, e := range trainEx {
		feats += len(e.V.Hashes)
	}
	what := "validate"
	if *tune {
		what = "a fifth of train held out"
	}
	fmt.Printf("corpus %s: train %d messages, judged on %s (%d); %.0f features a message; extraction %.0f us CPU a message\n",
		*corpus, len(trainEx), what, len(testEx), float64(feats)/float64(len(trainEx)),
		float64(trainCPU.Microseconds())/float64(len(trainEx)))

	for _, name := range strings.Split(*models, ",") {
		var m classify.Model
		n := 1
		switch name {
		case "ftrl":
			f := classify.NewFTRL(*bits)
			if *alpha > 0 {
				f.Alpha = *alpha
			}
			if *l1 >= 0 {
				f.L1 = *l1
			}
			m, n = f, classify.FTRLEpochs
		case "bayes":
			b := classify.NewBayes(*bits)
			if *strength >= 0 {
				b.MinStrength = *strength
			}
			if *clues >= 0 {
				b.MaxClues = *clues
			}
			m = b
		default:
			log.Fatalf("unknown model %q", name)
		}
		if *epochs > 0 && name == "ftrl" {
			n = *epochs
		}
		start := cputime.Process()
		classify.Train(m, trainEx, n, 1)
		learn := cputime.Process() - start
		perSec := float64(len(trainEx)*n) / learn.Seconds()
		withExtract := float64(len(trainEx)*n) / (learn + trainCPU*time.Duration(n)).Seconds()
		scored := classify.Score(m, testEx)
		// Phishing or spam: a Bayes model learnt from the junk only.
		kinds := classify.NewBayes(*bits)
		classify.TrainKinds(kinds, trainEx, 1)
		classify.ScoreKinds(kinds, testEx, scored)

		c := classify.NewClassifier(m, kinds)
		start = cputime.Process()
		const rounds = 3
		for range rounds {
			for _, msg := range testMsgs {
				c.Classify(msg)
			}
		}
		perMsg := (cputime.Process() - start) / time.Duration(rounds*len(testMsgs))
		// Each message once more, timed alone, for the distribution:
		// the mean is the few large messages' as much as the rest's.
		each := make([]time.Duration, len(testMsgs))
		for i, msg := range testMsgs {
			t0 := time.Now()
			c.Classify(msg)
			each[i] = time.Since(t0)
		}
		slices.Sort(each)
		q := func(f float64) int64 { return each[int(f*float64(len(each)-1))].Microseconds() }
		data, err := m.MarshalBinary()
		if err != nil {
			log.Fatal(err)
		}
		if *save != "" {
			if err := os.MkdirAll(*save, 0o755); err != nil {
				log.Fatal(err)
			}
			st := classify.DirStore{Dir: *save}
			if err := classify.SaveModel(context.Background(), st, name, m); err != nil {
				log.Fatal(err)
			}
			if err := classify.SaveModel(context.Background(), st, name+"-kinds", kinds); err != nil {
				log.Fatal(err)
			}
		}

		fmt.Printf("\n%s (%d epochs): learning %.0f messages/s (%.0f with feature extraction); classification %d us CPU a message (extraction included; median %d us, 90th percentile %d us, 99th %d us); memory %.1f MB (table 2^%d buckets), serialized %.1f MB\n",
			name, n, perSec, withExtract, perMsg.Microseconds(), q(0.5), q(0.9), q(0.99), float64(m.MemoryBytes())/(1<<20), *bits, float64(len(data))/(1<<20))
		classify.Measure(scored, classify.DefaultThreshold).Print(os.Stdout, "default threshold")
		for _, t := range strings.Split(*thresholds, ",") {
			if t == "" {
				continue
			}
			v, err := strconv.ParseFloat(t, 64)
			if err != nil {
				log.Fatal(err)
			}
			classify.Measure(scored, v).Print(os.Stdout, "threshold "+t)
		}
		classify.Measure(scored, classify.HamThreshold(scored, 0.01)).Print(os.Stdout, "1% of ham flagged at most")
		classify.Measure(scored, classify.HamThreshold(scored, 0.001)).Print(os.Stdout, "0.1% of ham flagged at most")
		if *top > 0 {
			printTop(m, trainEx, *top)
		}
		if *misses {
			for i, msg := range testMsgs {
				if r := c.Classify(msg); r.Junk != (testEx[i].Class != "ham") {
					fmt.Printf("    miss %s %s: %s\n", testEx[i].Class, test[i].ID, r)
				}
			}
		}
		shown := map[string]int{}
		for i, msg := range testMsgs {
			cl := testEx[i].Class
			if shown[cl] >= *explain {
				continue
			}
			shown[cl]++
			fmt.Printf("    %s %s: %s\n", cl, test[i].ID, c.Classify(msg))
		}
	}
}

// printTop prints the features of the training messages that weigh most
// towards junk and towards ham, with how many training messages had them.
func printTop(m classify.Model, ex []classify.Example, n int) {
	weight := map[string]float64{}
	count := map[string]int{}
	for _, e := range ex {
		contrib := make([]float64, len(e.V.Hashes))
		m.Predict(e.V, contrib)
		for i, w := range contrib {
			name := e.V.Name(i)
			weight[name] = w
			count[name]++
		}
	}
	names := make([]string, 0, len(weight))
	for k := range weight {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if weight[a] != weight[b] {
			if weight[a] > weight[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	fmt.Printf("  strongest towards junk:")
	for _, k := range names[:min(n, len(names))] {
		fmt.Printf(" %s(%+.2f, %d)", k, weight[k], count[k])
	}
	fmt.Printf("\n  strongest towards ham:")
	for i := len(names) - 1; i >= max(0, len(names)-n); i-- {
		fmt.Printf(" %s(%+.2f, %d)", names[i], weight[names[i]], count[names[i]])
	}
	fmt.Println()
}
