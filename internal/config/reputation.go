package config

import "time"

// ReputationConfig is checks.reputation: the history of authenticated
// identities (internal/reputation) as an analyzer.
type ReputationConfig struct {
	Enabled  bool     `yaml:"enabled"`
	HalfLife Duration `yaml:"half_life"`
	// Weights of the rules.
	Weights ReputationWeights `yaml:"weights"`
	// How much evidence a history needs before it counts.
	MinEvidence    float64  `yaml:"min_evidence"`
	NetMinEvidence float64  `yaml:"net_min_evidence"`
	GoodMinHam     float64  `yaml:"good_min_ham"`
	NetGoodMinHam  float64  `yaml:"net_good_min_ham"`
	StrongHit      int      `yaml:"strong_hit"`
	BrandRules     []string `yaml:"brand_rules"`
	// Evidence from outcomes and feedback.
	OutcomeSpam    float64 `yaml:"outcome_spam"`
	OutcomeHam     float64 `yaml:"outcome_ham"`
	FeedbackWeight float64 `yaml:"feedback_weight"`
	HamMaxScore    int     `yaml:"ham_max_score"`
	// The cache and the writer.
	CacheSize     int      `yaml:"cache_size"`
	CacheTTL      Duration `yaml:"cache_ttl"`
	LookupTimeout Duration `yaml:"lookup_timeout"`
	FlushInterval Duration `yaml:"flush_interval"`
}

// ReputationWeights are the points of reputation's rules.
type ReputationWeights struct {
	Bad                int `yaml:"reputation_bad"`
	NetBad             int `yaml:"reputation_bad_net"`
	Good               int `yaml:"reputation_good"`
	NewBrand           int `yaml:"reputation_new_brand"`
	KnownCorrespondent int `yaml:"known_correspondent"`
}

// AutolearnConfig is checks.classifier.autolearn: learning the store's
// model without asking.
type AutolearnConfig struct {
	Enabled         bool    `yaml:"enabled"`
	SpamProbability float64 `yaml:"spam_probability"`
	HamMaxScore     int     `yaml:"ham_max_score"`
	Balance         float64 `yaml:"balance"`
	PerDomainPerDay int     `yaml:"per_domain_per_day"`
}

// validateReputation checks checks.reputation and
// checks.classifier.autolearn.
func (c *Config) validateReputation(check func(ok bool, format string, args ...any)) {
	r := c.Checks.Reputation
	check(r.HalfLife.D() >= time.Hour, "checks.reputation.half_life: %s is under 1h", r.HalfLife.D())
	w := r.Weights
	check(w.Bad >= 0 && w.NetBad >= 0 && w.NewBrand >= 0, "checks.reputation.weights: reputation_bad, reputation_bad_net and reputation_new_brand must not be negative")
	check(w.Good <= 0 && w.KnownCorrespondent <= 0, "checks.reputation.weights: reputation_good and known_correspondent must not be positive (they lower the score)")
	check(r.MinEvidence > 0 && r.NetMinEvidence > 0 && r.GoodMinHam > 0 && r.NetGoodMinHam > 0,
		"checks.reputation: min_evidence, net_min_evidence, good_min_ham and net_good_min_ham must be positive")
	check(r.StrongHit > 0, "checks.reputation.strong_hit must be at least 1")
	check(r.OutcomeSpam >= 0 && r.OutcomeHam >= 0 && r.FeedbackWeight > 0, "checks.reputation: outcome_spam and outcome_ham must not be negative, feedback_weight must be positive")
	check(r.CacheSize > 0 && r.CacheTTL > 0 && r.LookupTimeout > 0 && r.FlushInterval > 0,
		"checks.reputation: cache_size, cache_ttl, lookup_timeout and flush_interval must be positive")
	check(r.LookupTimeout.D() <= 10*time.Second, "checks.reputation.lookup_timeout: %s is over 10s (a message waits for it)", r.LookupTimeout.D())
	check(!r.Enabled || c.Store.DSN != "", "checks.reputation: needs a store (store.dsn)")
	a := c.Checks.Classifier.Autolearn
	check(a.SpamProbability > 0.5 && a.SpamProbability <= 1, "checks.classifier.autolearn.spam_probability: %g is not above 0.5 and at most 1", a.SpamProbability)
	check(a.Balance >= 1, "checks.classifier.autolearn.balance: %g is under 1", a.Balance)
	check(a.PerDomainPerDay >= 0, "checks.classifier.autolearn.per_domain_per_day must not be negative")
}
