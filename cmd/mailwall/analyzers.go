package main

import (
	"context"
	"fmt"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/config"
	"mailwall/internal/dnsbl"
	"mailwall/internal/dnsx"
	"mailwall/internal/reputation"
)

// newAnalyzers builds the content analyzers checks.analyzers lists, in
// its order, those whose section is enabled. This is the one place that
// knows them: a new analyzer is its package, its config section and a
// case here. Models are read here, so at start and on every SIGHUP.
// res is the resolver of the analyzers that ask the DNS (dnsbl).
func newAnalyzers(ctx context.Context, cfg *config.Config, res dnsx.Resolver) ([]analysis.Analyzer, error) {
	cc := cfg.Checks
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
			if cl.Source == "store" {
				// Its model is read from the store by storeModels,
				// once the store is open.
				a := &classify.Analyzer{Threshold: cl.Threshold, Weight: cl.Weight,
					StrongThreshold: cl.StrongThreshold, StrongWeight: cl.StrongWeight,
					StarterWeight: cl.StarterWeight, StarterUntil: cl.StarterUntil}
				if cl.StarterUntil > 0 {
					var err error
					if a.Starter, err = classify.LoadFile(ctx, "", "bayes"); err != nil {
						return nil, fmt.Errorf("checks.classifier.starter_until: %w", err)
					}
				}
				out = append(out, a)
				continue
			}
			c, err := classify.LoadFile(ctx, cl.Model, cl.Kind)
			if err != nil {
				return nil, fmt.Errorf("checks.classifier.model: %w", err)
			}
			c.Threshold = cl.Threshold
			out = append(out, &classify.Analyzer{C: c, Threshold: cl.Threshold, Weight: cl.Weight,
				StrongThreshold: cl.StrongThreshold, StrongWeight: cl.StrongWeight,
				StarterWeight: cl.StarterWeight})
		case "reputation":
			if cc.Reputation.Enabled {
				// Its history, the store's, is given by setReputation.
				out = append(out, &reputation.Analyzer{Rules: reputationRules(cfg)})
			}
		case dnsbl.AnalyzerName:
			a, err := newDNSBLAnalyzer(cfg, res)
			if err != nil {
				return nil, err
			}
			if a != nil {
				out = append(out, a)
			}
		default:
			return nil, fmt.Errorf("checks.analyzers: unknown analyzer %q", name)
		}
	}
	return out, nil
}
