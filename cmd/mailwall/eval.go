package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"

	"mailwall/internal/classify"
	"mailwall/internal/config"
	"mailwall/internal/phish"
)

// corpusPipeline is the content pipeline of cfg (checks.phish, the
// thresholds of checks.score) for labelled mail read from files: the
// authentication rules weigh 0, since archived mail's SPF, DKIM and DMARC
// say nothing today (keys rotated, domains gone) and nothing is asked
// of the DNS. The classifier is the caller's to add.
func corpusPipeline(cfg *config.Config, rcpts string) (*classify.Pipeline, error) {
	pc := cfg.Checks.Phish
	pc.Weights = maps.Clone(pc.Weights)
	if pc.Weights == nil {
		pc.Weights = map[string]int{}
	}
	for rule := range phish.DefaultWeights() {
		if strings.HasPrefix(rule, "auth_") {
			pc.Weights[rule] = 0
		}
	}
	p := &classify.Pipeline{Tag: cfg.Checks.Score.Tag, Quarantine: cfg.Checks.Score.Quarantine, Reject: cfg.Checks.Score.Reject}
	if pc.Enabled {
		rules, err := newPhish(pc)
		if err != nil {
			return nil, err
		}
		p.Rules = rules
	}
	if rcpts != "" {
		list := strings.Split(rcpts, ",")
		p.Envelope = func(l *classify.Labelled) { l.Rcpts = list }
	}
	return p, nil
}

// labelFlags are the flags that choose labelled messages.
type labelFlags struct{ labels, split *string }

func (lf labelFlags) read(dir string) ([]classify.Labelled, error) {
	if *lf.labels == "" {
		return nil, fmt.Errorf("--labels FILE is required: %w", errUsage)
	}
	return classify.ReadLabels(*lf.labels, dir, *lf.split)
}

// trainClassifier learns a model of kind from the messages of ls whose
// class is in classes, through p (the rules' hits are its features).
func trainClassifier(ctx context.Context, p *classify.Pipeline, ls []classify.Labelled, classes, kind string) (*classify.Classifier, int, error) {
	var keep []classify.Labelled
	for _, l := range ls {
		for _, c := range strings.Split(classes, ",") {
			if l.Class == strings.TrimSpace(c) {
				keep = append(keep, l)
			}
		}
	}
	ex, err := p.Examples(ctx, keep)
	if err != nil {
		return nil, 0, err
	}
	m, kinds, err := classify.TrainModel(kind, ex)
	if err != nil {
		return nil, 0, err
	}
	return classify.NewClassifier(m, kinds), len(keep), nil
}

// cmdEval is "mailwall eval": the content pipeline over labelled mail,
// its confusion matrix, its detection at the configured thresholds and
// where 1% and 0.1% of the ham is flagged, and the rules and features
// that decided.
func cmdEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	lf := labelFlags{fs.String("labels", "", "labels file: a row per message, FILE<TAB>CLASS (phish, spam, ham), or a header naming id, class, split, ip"),
		fs.String("split", "", "judge only the rows of this split (the labels' split column)")}
	cfgPath := fs.String("config", "", "config file (its weights, thresholds and classifier model)")
	model := fs.String("model", "", "the classifier's model file (default: checks.classifier.model, the starter model when that is empty)")
	trainLabels := fs.String("train-labels", "", "train a model on these labelled messages first, instead of reading one")
	trainSplit := fs.String("train-split", "", "with --train-labels: learn only the rows of this split")
	trainClasses := fs.String("train-classes", "phish,spam,ham", "with --train-labels: the classes learnt")
	noClassifier := fs.Bool("no-classifier", false, "judge with the rules alone")
	rcpt := fs.String("rcpt", "", "envelope recipients, comma-separated (own_domain_impersonation reads their domain)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("eval: one directory of messages: %w", errUsage)
	}
	cfg, err := loadConfig(*cfgPath, "")
	if err != nil {
		return err
	}
	judge, err := lf.read(pos[0])
	if err != nil {
		return err
	}
	p, err := corpusPipeline(cfg, *rcpt)
	if err != nil {
		return err
	}
	cc := cfg.Checks.Classifier
	var c *classify.Classifier
	switch {
	case *noClassifier:
	case *trainLabels != "":
		ls, err := classify.ReadLabels(*trainLabels, pos[0], *trainSplit)
		if err != nil {
			return err
		}
		var n int
		if c, n, err = trainClassifier(ctx, p, ls, *trainClasses, cc.Kind); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "trained a %s model on %d messages (%s) of %s\n", cc.Kind, n, *trainClasses, *trainLabels)
	default:
		path := *model
		if path == "" {
			path = cc.Model
		}
		if c, err = classify.LoadFile(ctx, path, cc.Kind); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "model %s\n", classify.ModelName(path))
	}
	if c != nil {
		c.Threshold = cc.Threshold
		p.Classifier = &classify.Analyzer{C: c, Threshold: cc.Threshold, Weight: cc.Weight, StrongThreshold: cc.StrongThreshold, StrongWeight: cc.StrongWeight, StarterWeight: cc.StarterWeight}
	}
	js, err := p.Judge(ctx, judge)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d messages of %s (split %q), content analyzers only (authentication rules at 0)\n\n", len(js), *lf.labels, *lf.split)
	classify.PrintReport(stdout, js, p)
	return nil
}
