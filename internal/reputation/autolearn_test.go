package reputation_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/netip"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/phish"
	"mailwall/internal/reputation"
)

// spamRaw is a junk message numbered i from domain.
func spamRaw(domain string, i int) []byte {
	return fmt.Appendf(nil, "From: Prize Desk <win@%s>\r\nTo: bob@our.test\r\nSubject: You won $1,000,000 now\r\nMessage-ID: <j%d@%s>\r\n\r\nClaim your prize now, click http://bit.ly/x%d and send your bank details.\r\n", domain, i, domain, i)
}

func hamRaw(from string, i int) []byte {
	return fmt.Appendf(nil, "From: Alice <%s>\r\nTo: bob@our.test\r\nSubject: minutes %d\r\nMessage-ID: <h%d@friend.example>\r\n\r\nHi Bob, the minutes of our meeting; the release is on Thursday.\r\n", from, i, i)
}

func analysisMsg(raw []byte, dmarc, headerFrom string, hits ...analysis.Hit) *analysis.Message {
	fields, body := classify.ParseMessage(raw)
	return &analysis.Message{Fields: fields, Body: body, Rcpts: []string{"bob@our.test"}, ClientIP: netip.MustParseAddr("192.0.2.9"),
		SPF: "none", DMARC: dmarc, HeaderFrom: headerFrom, Hits: hits, Decode: phish.Extract}
}

// TestAutolearn: high-confidence spam and known-correspondent ham are
// learnt into the store's model, within the guards: one domain's daily
// quota, the balance of the classes, never ham from a DMARC failure or
// allow-listed mail; mailwall unlearn takes an automatic lesson back.
func TestAutolearn(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cfg := reputation.DefaultConfig()
	cfg.Learn.PerDomainPerDay = 2
	rep := reputation.New(st, cfg, nil)
	rep.Model = st
	a := &reputation.Analyzer{Rep: rep, Rules: reputation.DefaultRules()}
	strong := []analysis.Hit{{Rule: "url_userinfo", Weight: 70}, {Rule: "brand_from_domain", Weight: 45}}
	deliver := func(raw []byte, dmarc, from, action, stage string, prob float64, hits ...analysis.Hit) {
		t.Helper()
		m := analysisMsg(raw, dmarc, from, hits...)
		out := a.Analyze(ctx, m)
		all := append(append([]analysis.Hit(nil), hits...), out.Hits...)
		rep.Observe(reputation.Outcome{Action: action, Stage: stage, Hits: all, Report: out.Report.(*reputation.Report), Probability: prob})
	}
	counts := func() classify.ModelState {
		s, err := st.ModelCounts(ctx, classify.SiteModel, math.MaxInt64, func(classify.BucketCount) {})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Quota: three rejects from one domain (its subdomains count as it),
	// two learnt.
	deliver(spamRaw("spam.example", 1), "none", "spam.example", "reject", "score", -1, strong...)
	deliver(spamRaw("a.spam.example", 2), "none", "a.spam.example", "reject", "score", -1, strong...)
	deliver(spamRaw("b.spam.example", 3), "none", "b.spam.example", "reject", "score", -1, strong...)
	// Not learnt: allow-listed, or only tagged, or the classifier alone.
	deliver(spamRaw("listed.example", 4), "none", "listed.example", "accept", "lists", -1, strong...)
	deliver(spamRaw("tagged.example", 5), "none", "tagged.example", "tag", "score", -1, analysis.Hit{Rule: "brand_display_name", Weight: 30})
	deliver(spamRaw("alone.example", 6), "none", "alone.example", "quarantine", "score", 0.9999, analysis.Hit{Rule: classify.Rule, Weight: 60})
	// The classifier sure and another rule: learnt.
	deliver(spamRaw("sure.example", 7), "none", "sure.example", "quarantine", "score", 0.9995,
		analysis.Hit{Rule: classify.Rule, Weight: 45}, analysis.Hit{Rule: "url_ip_literal", Weight: 25})
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s := rep.Stats(); s.Learnt != 3 || s.OverQuota != 1 {
		t.Errorf("spam: %+v, want 3 learnt and 1 over the quota", s)
	}
	if c := counts(); c.Junk != 3 || c.Ham != 0 {
		t.Fatalf("model: %+v, want 3 junk", c)
	}

	// Ham: a known correspondent with DMARC pass; not with DMARC fail.
	rep.Wrote([]string{"alice@friend.example"})
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deliver(hamRaw("alice@friend.example", 1), "fail", "friend.example", "accept", "", 0.1)
	deliver(hamRaw("carol@friend.example", 2), "pass", "friend.example", "accept", "", 0.1) // not a correspondent
	deliver(hamRaw("alice@friend.example", 3), "pass", "friend.example", "accept", "", 0.1)
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(); c.Ham != 1 {
		t.Errorf("model: %+v, want 1 ham (DMARC fail and an unknown address teach nothing)", c)
	}

	// Unlearn, as mailwall unlearn does it from the message as a
	// Maildir holds it (LF line ends), takes the lesson back.
	raw := bytes.ReplaceAll(spamRaw("sure.example", 7), []byte("\r\n"), []byte("\n"))
	f, b := classify.ParseMessage(raw)
	l := &classify.Learner{St: st, Name: classify.SiteModel}
	if out, err := l.Learn(ctx, raw, &classify.Message{Fields: f, Body: b}, "!spam"); err != nil || !out.Changed {
		t.Errorf("unlearn of an automatic lesson: %+v %v", out, err)
	}
	if c := counts(); c.Junk != 2 {
		t.Errorf("after unlearn: %+v, want 2 junk", c)
	}

	// Balance: with 1 ham, junk stops at 3*1+10.
	for i := range 20 {
		d := fmt.Sprintf("bulk%d.example", i)
		deliver(spamRaw(d, 100+i), "none", d, "reject", "score", -1, strong...)
	}
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(); c.Junk != 13 {
		t.Errorf("model after 20 more rejects: %+v, want 13 junk (3 times the ham, plus 10)", c)
	}
	if s := rep.Stats(); s.Unbalanced != 9 {
		t.Errorf("stats %+v, want 9 set aside for balance", s)
	}
}
