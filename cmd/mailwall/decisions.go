package main

import (
	"mailwall/internal/metrics"
	"mailwall/internal/policyd"
	"mailwall/internal/spf"
	"mailwall/internal/store"
)

// recordPolicy is the policy server's record hook: each refusal counted
// and, with a store, queued for it (never blocking the answer).
func recordPolicy(met *metrics.Metrics, rec *store.Recorder, node string) func(policyd.Decision) {
	return func(d policyd.Decision) {
		met.Decision("policy", d.Action)
		if rec != nil {
			rec.Record(policyVerdict(d, node))
		}
	}
}

// policyVerdict is a policy server refusal as the verdict list keeps it:
// source policy, the recipient it was about, the reply the client got
// and why.
func policyVerdict(d policyd.Decision, node string) store.Verdict {
	v := store.Verdict{At: d.At, Node: node, Source: "policy", QueueID: d.QueueID, ClientIP: d.ClientIP, ClientName: d.ClientName,
		Helo: d.Helo, MailFrom: d.Sender, Action: d.Action, Stage: d.Stage, Verdict: "fail", Reply: d.Reply}
	if d.Recipient != "" {
		v.Rcpts = []string{d.Recipient}
	}
	why := d.Answer
	if d.Stage == "spf" && d.SPF.Result != "" {
		v.SPF = string(d.SPF.Result)
		why = spfWhy(d.SPF)
	}
	v.Reasons = []string{d.Stage + ": " + why}
	v.Details.Stages = []store.StageResult{{Stage: d.Stage, Result: d.Action, Reason: why}}
	for _, f := range []store.Fact{{Name: "protocol_state", Value: d.ProtocolState}, {Name: "policy answer", Value: d.Answer},
		{Name: "instance", Value: d.Instance}} {
		if f.Value != "" {
			v.Details.Facts = append(v.Details.Facts, f)
		}
	}
	if d.SASL {
		v.Details.Facts = append(v.Details.Facts, store.Fact{Name: "authenticated", Value: "yes"})
	}
	return v
}

// spfWhy says what an SPF outcome rests on: the identity and domain, the
// mechanism that matched, the problem or the domain's explanation.
func spfWhy(o spf.Outcome) string {
	why := string(o.Result) + " for " + string(o.Identity) + " " + o.Domain
	if o.Mechanism != "" {
		why += " (matched " + o.Mechanism + ")"
	}
	if o.Problem != "" {
		why += ": " + o.Problem
	} else if o.Result == spf.Fail && o.Explanation != "" {
		why += ": " + o.Explanation
	}
	return why
}
