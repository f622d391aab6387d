package main

import (
	"context"

	"mailwall/internal/config"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
)

// dashboardFeedback passes the dashboard's "spam" / "not spam" clicks to
// the reputation of the verdict's authenticated identities (nil when
// checks.reputation is off or there is no store): a click of the other
// class takes the first back, "forget" takes it back, the same click
// twice counts once.
func dashboardFeedback(cfg *config.Config, st *store.Store) func(ctx context.Context, v *store.Verdict, prev, class string) error {
	if !cfg.Checks.Reputation.Enabled || st == nil {
		return nil
	}
	rep := reputation.New(st, reputationConfig(cfg), nil)
	return func(ctx context.Context, v *store.Verdict, prev, class string) error {
		if prev == class {
			return nil
		}
		ids := reputation.ParseIdentities(v.ClientIP, v.SPF, v.MailFrom, v.Helo, v.DMARC, v.FromDomain, v.DKIM)
		if prev != "" {
			if err := rep.Feedback(ctx, ids, prev == "spam", true); err != nil {
				return err
			}
		}
		if class == "" {
			return nil
		}
		return rep.Feedback(ctx, ids, class == "spam", false)
	}
}
