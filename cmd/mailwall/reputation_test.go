package main

import (
	"context"
	"math"
	"testing"

	"mailwall/internal/config"
	"mailwall/internal/reputation"
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
