package config

import (
	"strings"
	"testing"
	"time"
)

func TestReputationDefaults(t *testing.T) {
	c := Default()
	r := c.Checks.Reputation
	if r.Enabled || r.HalfLife.D() != 30*24*time.Hour || r.Weights.Good >= 0 || r.Weights.Bad <= 0 {
		t.Errorf("checks.reputation defaults: %+v, want off, a 30-day half-life, a negative good weight", r)
	}
	if a := c.Checks.Classifier.Autolearn; !a.Enabled || a.Balance != 3 || a.PerDomainPerDay != 20 {
		t.Errorf("checks.classifier.autolearn defaults: %+v, want on with its guards", a)
	}
	last := c.Checks.Analyzers[len(c.Checks.Analyzers)-1]
	if last != "reputation" {
		t.Errorf("analyzers %v: reputation must run last (it weighs the others' hits)", c.Checks.Analyzers)
	}
}

func TestReputationValidate(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string // want: part of the error, "" for valid
	}{
		{"checks: {reputation: {enabled: true, half_life: 168h}}", ""},
		{"checks: {reputation: {half_life: 10m}}", "half_life"},
		{"checks: {reputation: {weights: {reputation_good: 15}}}", "reputation_good"},
		{"checks: {reputation: {weights: {reputation_bad: -1}}}", "reputation_bad"},
		{"checks: {reputation: {min_evidence: 0}}", "min_evidence"},
		{"checks: {reputation: {feedback_weight: 0}}", "feedback_weight"},
		{"checks: {reputation: {lookup_timeout: 1m}}", "lookup_timeout"},
		{"checks: {reputation: {cache_size: 0}}", "cache_size"},
		{"checks: {reputation: {enabled: true}}\nstore: {dsn: \"\"}", "needs a store"},
		{"checks: {reputation: {no_such_key: 1}}", "no_such_key"},
		{"checks: {classifier: {autolearn: {balance: 0.5}}}", "autolearn.balance"},
		{"checks: {classifier: {autolearn: {spam_probability: 0.2}}}", "autolearn.spam_probability"},
		{"checks: {classifier: {autolearn: {per_domain_per_day: -1}}}", "per_domain_per_day"},
		{"checks: {analyzers: [phish, reputation, reputation]}", "checks.analyzers"},
	} {
		_, err := Parse([]byte(tc.yaml))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want one naming %s", tc.yaml, err, tc.want)
		}
	}
}
