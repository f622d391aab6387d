package classify

import (
	"strings"
	"testing"
)

// TestCorpus trains each model on the train split of the development
// corpus (../shared/corpus, beside the checkout) and judges it on the
// validate split, at DefaultThreshold: issue 24 asks for 95% of the
// phishing and 97% of the spam flagged with at most 0.5% of the ham.
// The bounds below are what each model reaches with some margin (the
// figures are printed with -v; bench/classify prints more).
func TestCorpus(t *testing.T) {
	x := NewExtractor()
	var train, validate []Example
	eachCorpusMessage(t, nil, func(l Labelled, m *Message) {
		e := Example{V: x.Extract(m).Clone(), Class: l.Class}
		switch l.Split {
		case "train":
			train = append(train, e)
		case "validate":
			validate = append(validate, e)
		}
	})
	if len(train) < 2000 || len(validate) < 500 {
		t.Fatalf("train %d, validate %d messages", len(train), len(validate))
	}
	// Phishing or spam, for the three-way confusion matrix.
	kinds := NewBayes(DefaultBits)
	TrainKinds(kinds, train, 1)
	tests := []struct {
		model Model
		// minimum phishing and spam flagged, maximum ham flagged, in %
		phish, spam, ham float64
	}{
		// Measured (2026-12-06): bayes 99.5% phish, 98.0-98.5% spam, 0.33%
		// ham (1 of 300); ftrl 95.5-96.5%, 97.0%, 0.67%. The figures move a
		// little with internal/phish's decoding, which the features read.
		{NewBayes(DefaultBits), 97, 96, 1},
		{NewFTRL(DefaultBits), 92, 93, 1.5},
	}
	for _, tt := range tests {
		t.Run(tt.model.Kind(), func(t *testing.T) {
			m := tt.model
			epochs := 1
			if m.Kind() == "ftrl" {
				epochs = FTRLEpochs
			}
			Train(m, train, epochs, 1)
			scored := Score(m, validate)
			ScoreKinds(kinds, validate, scored)
			o := Measure(scored, DefaultThreshold)
			var b strings.Builder
			o.Print(&b, m.Kind()+" on validate, default threshold")
			Measure(scored, HamThreshold(scored, 0.01)).Print(&b, "1% of ham flagged at most")
			Measure(scored, HamThreshold(scored, 0.001)).Print(&b, "0.1% of ham flagged at most")
			t.Log("\n" + b.String())
			if 100*o.Rate("phish") < tt.phish || 100*o.Rate("spam") < tt.spam || 100*o.Rate("ham") > tt.ham {
				t.Errorf("phish %.1f%% (want >= %v), spam %.1f%% (want >= %v), ham %.2f%% (want <= %v) flagged",
					100*o.Rate("phish"), tt.phish, 100*o.Rate("spam"), tt.spam, 100*o.Rate("ham"), tt.ham)
			}
		})
	}
}
