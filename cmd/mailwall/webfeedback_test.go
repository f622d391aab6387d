package main

import (
	"context"
	"math"
	"testing"

	"mailwall/internal/config"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
)

// TestDashboardFeedback: the dashboard's clicks reach the reputation of
// the verdict's authenticated identities (the From domain only when
// DMARC passed): "spam" adds spam evidence, the same click again
// nothing, "not spam" takes the spam back and adds ham, "forget" takes
// that back; with checks.reputation off there is no hook.
func TestDashboardFeedback(t *testing.T) {
	ctx := context.Background()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	st := openSQLiteStore(t)
	cfg.Checks.Reputation.Enabled = false
	if dashboardFeedback(cfg, st) != nil {
		t.Fatal("a hook with reputation off")
	}
	cfg.Checks.Reputation.Enabled = true
	fb := dashboardFeedback(cfg, st)
	v := &store.Verdict{ClientIP: "192.0.2.7", SPF: "pass", MailFrom: "a@mail.bank.test", DMARC: "pass", FromDomain: "bank.test", DKIM: "pass:bank.test fail:x.test"}
	keys := []reputation.Key{{Kind: reputation.FromDomain, Identity: "bank.test"}, {Kind: reputation.DKIM, Identity: "bank.test"},
		{Kind: reputation.SPF, Identity: "mail.bank.test"}, {Kind: reputation.Net, Identity: "192.0.2.0/24"}}
	w := cfg.Checks.Reputation.FeedbackWeight
	for _, step := range []struct {
		prev, class string
		spam, ham   float64
	}{
		{"", "spam", w, 0},
		{"spam", "spam", w, 0},
		{"spam", "ham", 0, w},
		{"ham", "", 0, 0},
	} {
		if err := fb(ctx, v, step.prev, step.class); err != nil {
			t.Fatalf("%q after %q: %v", step.class, step.prev, err)
		}
		got, err := st.ReputationCounts(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			c := got[k]
			if math.Abs(c.Spam-step.spam) > 0.01 || math.Abs(c.Ham-step.ham) > 0.01 {
				t.Errorf("%q after %q: %s has spam %.2f ham %.2f, want %.2f %.2f", step.class, step.prev, k, c.Spam, c.Ham, step.spam, step.ham)
			}
		}
		if c, ok := got[reputation.Key{Kind: reputation.DKIM, Identity: "x.test"}]; ok {
			t.Errorf("a failed signature's domain counted: %+v", c)
		}
	}
	// A spoof (DMARC fail) teaches nothing of the From domain it claims.
	spoof := *v
	spoof.DMARC, spoof.DKIM, spoof.SPF, spoof.ClientIP = "fail", "", "fail", "198.51.100.9"
	if err := fb(ctx, &spoof, "", "spam"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.ReputationCounts(ctx, keys[:1]); got[keys[0]].Spam > 0.01 {
		t.Errorf("a spoofed From's domain got spam evidence: %+v", got[keys[0]])
	}
}
