package verdict

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/spf"
)

// TestRecordExplains: a result's record carries each stage's result and
// why, every hit with its weight and explanation, the headers added
// (unfolded) and the reply sent.
func TestRecordExplains(t *testing.T) {
	r := Result{Action: Reject, Stage: "dmarc", Verdict: "fail", Reasons: []string{"dmarc: fail"},
		Helo: "pass", IPRev: conncheck.IPRev{Result: "fail", Reason: "no PTR record"},
		SPF:      spf.Outcome{Result: spf.Fail, Domain: "bank.test", Mechanism: "-all", Explanation: "not authorized"},
		DKIM:     []dkim.Result{{Status: dkim.Status("fail"), Domain: "bank.test", Selector: "s1", Reason: "body hash mismatch"}},
		DMARC:    dmarc.Result{Result: "fail", Reason: "no aligned identifier", PolicyDomain: "bank.test", Policy: dmarc.PolicyReject},
		Analyses: []Analysis{{Name: "phish", Result: analysis.Result{Hits: []analysis.Hit{{Rule: "brand_from_domain", Weight: 45, Detail: "bank.test looks like bank.example"}}}}},
		Hits:     []analysis.Hit{{Rule: "brand_from_domain", Weight: 45, Detail: "bank.test looks like bank.example"}},
		Headers:  []HeaderField{{"Authentication-Results", " mx.test;\r\n\tspf=fail"}}}
	env := Envelope{ClientIP: netip.MustParseAddr("::ffff:192.0.2.1"), ClientName: "unknown", MailFrom: "a@bank.test", QueueID: "Q1"}
	v := r.Record(env, "mx1", time.Unix(1_800_000_000, 0))
	if v.Source != "milter" || v.ClientIP != "192.0.2.1" || v.ClientName != "unknown" || !strings.HasPrefix(v.Reply, "550 5.7.1 Message rejected: dmarc: fail") {
		t.Errorf("record: %+v", v)
	}
	stages := map[string]string{}
	for _, s := range v.Details.Stages {
		stages[s.Stage] = s.Result + " / " + s.Reason
	}
	for stage, want := range map[string]string{
		"helo":  "pass / ",
		"iprev": "fail / no PTR record",
		"spf":   "fail / domain bank.test; matched -all; not authorized",
		"dkim":  "fail / d=bank.test s=s1: body hash mismatch",
		"dmarc": "fail / policy domain bank.test, p=reject; no aligned identifier",
		"phish": "score 45 / ",
	} {
		if stages[stage] != want {
			t.Errorf("stage %s: %q, want %q", stage, stages[stage], want)
		}
	}
	if len(v.Details.Hits) != 1 || v.Details.Hits[0].Weight != 45 || v.Details.Hits[0].Detail != "bank.test looks like bank.example" {
		t.Errorf("hits: %+v", v.Details.Hits)
	}
	if len(v.Details.Headers) != 1 || v.Details.Headers[0].Value != "mx.test; spf=fail" {
		t.Errorf("headers: %+v", v.Details.Headers)
	}
	for _, c := range []struct {
		r    Result
		want string
	}{
		{Result{Action: Accept}, ""},
		{Result{Action: Quarantine}, ""},
		{Result{Action: Reject, Reply: "554 5.7.1 no"}, "554 5.7.1 no"},
		{Result{Action: Reject, Reply: "451 4.7.1 wrong class", Reasons: []string{"x"}}, "550 5.7.1 Message rejected: x"},
		{Result{Action: TempFail}, "451 4.7.1 Temporary failure, try again later"},
		{Result{Action: TempFail, Reply: "451 4.7.24 DNS"}, "451 4.7.24 DNS"},
	} {
		if got := c.r.SentReply(); got != c.want {
			t.Errorf("%s %q: reply %q, want %q", c.r.Action, c.r.Reply, got, c.want)
		}
	}
}

func TestMessageFacts(t *testing.T) {
	for _, c := range []struct {
		header               string
		from, msgid, subject string
	}{
		{"From: Alice <Alice@Bank.test>\r\nMessage-ID: <a.1@bank.test>\r\nSubject: =?UTF-8?Q?r=C3=A9sum=C3=A9?= ok\r\n", "alice@bank.test", "a.1@bank.test", "résumé ok"},
		{"From: \"PayPal\" ,_<x@evil.test>\r\nSubject: plain\r\n  folded\r\n", "x@evil.test", "", "plain folded"},
		{"Subject: =?x-unknown?Q?abc?=\r\n", "", "", "=?x-unknown?Q?abc?="},
	} {
		fields, err := dkim.ReadHeader(bufio.NewReader(strings.NewReader(c.header + "\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		from, msgid, subject := MessageFacts(fields)
		if from != c.from || msgid != c.msgid || subject != c.subject {
			t.Errorf("%q: %q %q %q, want %q %q %q", c.header, from, msgid, subject, c.from, c.msgid, c.subject)
		}
	}
}
