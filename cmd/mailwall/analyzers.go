package main

import (
	"context"
	"fmt"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/config"
)

// newAnalyzers builds the content analyzers checks.analyzers lists, in
// its order, those whose section is enabled. This is the one place that
// knows them: a new analyzer is its package, its config section and a
// case here. Models are read here, so at start and on every SIGHUP.
func newAnalyzers(ctx context.Context, cc config.ChecksConfig) ([]analysis.Analyzer, error) {
	var out []analysis.Analyzer
	for _, name := range cc.Analyzers {
		switch name {
		case "phish":
			if !cc.Phish.Enabled {
				continue
			}
			p, err := newPhish(cc.Phish)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		case "classifier":
			cl := cc.Classifier
			if !cl.Enabled {
				continue
			}
			c, err := classify.LoadFile(ctx, cl.Model, cl.Kind)
			if err != nil {
				return nil, fmt.Errorf("checks.classifier.model: %w", err)
			}
			c.Threshold = cl.Threshold
			out = append(out, &classify.Analyzer{C: c, Threshold: cl.Threshold, Weight: cl.Weight,
				StrongThreshold: cl.StrongThreshold, StrongWeight: cl.StrongWeight})
		default:
			return nil, fmt.Errorf("checks.analyzers: unknown analyzer %q", name)
		}
	}
	return out, nil
}
