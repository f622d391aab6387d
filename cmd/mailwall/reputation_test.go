package main

import (
	"context"
	"math"
	"testing"

	"mailwall/internal/config"
	"mailwall/internal/reputation"
	"mailwall/internal/verdict"
)

// TestFeedbackReputation: mailwall learn's feedback reaches the
// identities our Authentication-Results names (another host's field
// claiming a pass is not read); a change of mind moves the evidence; an
// unlearn takes it back.
func TestFeedbackReputation(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t)
	cfg := config.Default()
	cfg.Hostname = "mx.rcpt.test"
	cfg.Checks.Reputation.Enabled = true
	raw := []byte("Authentication-Results: mx.rcpt.test; spf=pass smtp.mailfrom=bounce@mail.example.org;\r\n" +
		"\tdkim=pass header.d=example.org header.s=s1; dkim=fail header.d=other.example header.s=s2;\r\n" +
		"\tdmarc=pass header.from=example.org; iprev=pass policy.iprev=192.0.2.7\r\n" +
		"Authentication-Results: mx.elsewhere.example; dkim=pass header.d=forged.example\r\n" +
		"From: Alice <alice@example.org>\r\nSubject: hello\r\nMessage-ID: <1@example.org>\r\n\r\nHello.\r\n")
	keys := []reputation.Key{{Kind: reputation.FromDomain, Identity: "example.org"}, {Kind: reputation.DKIM, Identity: "example.org"},
		{Kind: reputation.SPF, Identity: "mail.example.org"}, {Kind: reputation.Net, Identity: "192.0.2.0/24"}}
	check := func(step string, ham, spam float64) {
		t.Helper()
		got, err := st.ReputationCounts(ctx, append(keys, reputation.Key{Kind: reputation.DKIM, Identity: "forged.example"},
			reputation.Key{Kind: reputation.DKIM, Identity: "other.example"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(keys) {
			t.Errorf("%s: %d identities written, want %d: %v", step, len(got), len(keys), got)
		}
		for _, k := range keys {
			if c := got[k]; math.Abs(c.Ham-ham) > 0.01 || math.Abs(c.Spam-spam) > 0.01 {
				t.Errorf("%s: %s ham %g spam %g, want %g %g", step, k, c.Ham, c.Spam, ham, spam)
			}
		}
	}
	if err := feedbackReputation(ctx, cfg, st, raw, "", "spam"); err != nil {
		t.Fatal(err)
	}
	check("learn spam", 0, 3)
	if err := feedbackReputation(ctx, cfg, st, raw, "junk", "ham"); err != nil {
		t.Fatal(err)
	}
	check("then learn ham", 3, 0)
	if err := feedbackReputation(ctx, cfg, st, raw, "", "!ham"); err != nil {
		t.Fatal(err)
	}
	check("unlearn ham", 0, 0)
}

// TestReputationWiring: checks.reputation puts the analyzer in the
// pipeline with the config's weights; it reads the history once given
// it, and the milter's observation of a message we signed records its
// recipients (those outside our signing domains) only while the
// analyzer is on.
func TestReputationWiring(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t)
	cfg := config.Default()
	cfg.Checks.Reputation.Enabled = true
	cfg.Checks.Reputation.Weights.Bad = 55
	cfg.Checks.Signing = []config.SigningConfig{{Domain: "Our.test"}}
	as, err := newAnalyzers(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ra, ok := as[len(as)-1].(*reputation.Analyzer)
	if !ok || ra.Rules.Bad != 55 || ra.Rep != nil {
		t.Fatalf("last analyzer %#v, want reputation with reputation_bad 55 and no history yet", as[len(as)-1])
	}
	rep := reputation.New(st, reputationConfig(cfg), nil)
	signed := &verdict.Result{Action: verdict.Accept, Internal: true, Signed: true}
	observeReputation(rep, as, signed, verdict.Envelope{Rcpts: []string{"dave@partner.example"}}) // no history given: off
	setReputation(as, rep)
	if ra.Rep != rep {
		t.Fatal("setReputation did not give the analyzer its history")
	}
	observeReputation(rep, as, signed, verdict.Envelope{Rcpts: []string{"alice@partner.example", "bob@our.test", "carol@partner.example"}})
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	known, err := st.KnownCorrespondents(ctx, []string{"alice@partner.example", "bob@our.test", "carol@partner.example", "dave@partner.example"})
	if err != nil || len(known) != 2 || !known["alice@partner.example"] || !known["carol@partner.example"] {
		t.Errorf("correspondents %v %v, want alice and carol (bob is at our own domain, dave's mail went while the analyzer was off)", known, err)
	}
	cfg.Checks.Reputation.Enabled = false
	if as, _ := newAnalyzers(ctx, cfg, nil); len(as) > 0 {
		if _, ok := as[len(as)-1].(*reputation.Analyzer); ok {
			t.Error("reputation off, yet in the pipeline")
		}
	}
}
