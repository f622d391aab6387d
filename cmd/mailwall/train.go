package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mailwall/internal/classify"
)

// cmdTrain is "mailwall train": a classifier model learnt from labelled
// messages through the content pipeline (the phishing rules' hits are
// features, as serve gives them), written to a file that
// checks.classifier.model names. make model writes the starter model so.
func cmdTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	lf := labelFlags{fs.String("labels", "", "labels file: a row per message, FILE<TAB>CLASS (phish, spam, ham), or a header naming id, class, split, ip"),
		fs.String("split", "", "learn only the rows of this split (the labels' split column)")}
	classes := fs.String("classes", "phish,spam,ham", "the classes learnt (spam,ham: the SpamAssassin part of ../shared/corpus, which may be shipped)")
	out := fs.String("o", "", "the model file to write: NAME.model (with NAME-kinds.model when phish and spam are learnt), else the compact encoding (bayes)")
	cfgPath := fs.String("config", "", "config file (its phishing rules and checks.classifier.kind)")
	rcpt := fs.String("rcpt", "", "envelope recipients, comma-separated")
	eraNeutral := fs.Bool("era-neutral", false, "leave out the features that date a message (MIME structure, encodings, charsets, header order, mailer), as the starter model is learnt")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return fmt.Errorf("train: one directory of messages and -o FILE: %w", errUsage)
	}
	cfg, err := loadConfig(*cfgPath, "")
	if err != nil {
		return err
	}
	ls, err := lf.read(pos[0])
	if err != nil {
		return err
	}
	p, err := corpusPipeline(cfg, *rcpt)
	if err != nil {
		return err
	}
	if *eraNeutral {
		p.Drop = classify.EraKinds
	}
	kind := cfg.Checks.Classifier.Kind
	c, n, err := trainClassifier(ctx, p, ls, *classes, kind)
	if err != nil {
		return err
	}
	m, kinds := c.Models()
	if name, ok := strings.CutSuffix(filepath.Base(*out), ".model"); ok {
		st := classify.DirStore{Dir: filepath.Dir(*out)}
		if err := classify.SaveModel(ctx, st, name, m); err != nil {
			return err
		}
		if kinds != nil {
			if err := classify.SaveModel(ctx, st, name+"-kinds", kinds); err != nil {
				return err
			}
		}
	} else {
		b, ok := m.(*classify.Bayes)
		if !ok {
			return fmt.Errorf("train: the compact encoding holds bayes models; name the file NAME.model for %s", kind)
		}
		data, err := classify.EncodeCompact(b)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	fmt.Fprintf(stdout, "%s: a %s model of %d messages (%s)\n", *out, kind, n, *classes)
	return nil
}
