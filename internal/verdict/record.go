package verdict

import (
	"strings"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/store"
)

// Record is what the store keeps of this result: the envelope, each
// stage's result and the action, and the DMARC evaluation as aggregate
// reports count it (only when a DMARC record was found and applied).
func (r *Result) Record(env Envelope, node string, at time.Time) store.Verdict {
	v := store.Verdict{
		At: at, Node: node, QueueID: env.QueueID, ClientName: env.ClientName, Helo: env.Helo, MailFrom: env.MailFrom,
		FromDomain: r.DMARC.HeaderFrom, Rcpts: env.Rcpts,
		Action: string(r.Action), Stage: r.Stage, Verdict: r.Verdict,
		IPRev: r.IPRev.Result, SPF: string(r.SPF.Result), DKIM: DKIMSummary(r.DKIM), DMARC: r.DMARC.Result, ARC: string(r.ARC.Result),
		Score: r.Score(), Rules: r.Rules(), Reasons: r.Reasons,
	}
	if env.ClientIP.IsValid() {
		v.ClientIP = env.ClientIP.String()
	}
	if r.Internal {
		v.Stage, v.Verdict = "internal", "internal"
	}
	if d := r.DMARC; d.Record != nil && d.Row.PolicyDomain != "" && (d.Result == dmarc.Pass || d.Result == dmarc.Fail) {
		v.DMARCRow = &store.DMARCRow{Row: d.Row, RUA: d.Record.RUA, RI: d.Record.RI}
	}
	return v
}

// DKIMSummary lists the signatures' results as "status:domain", space
// separated, for logs and the store.
func DKIMSummary(rs []dkim.Result) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(r.Status) + ":" + r.Domain)
	}
	return b.String()
}

// localPolicy makes the report row say what this host did with a DMARC
// failure when its configuration answers the Domain Owner's policy with a
// weaker action (dmarc_reject: quarantine, say): RFC 9990 §3.1.1.7 wants
// the disposition applied and a local_policy reason when it differs.
func localPolicy(row *dmarc.Row, a Action) {
	applied := dmarc.PolicyNone
	switch a {
	case Reject, TempFail: // a tempfail comes back and is counted then
		applied = dmarc.PolicyReject
	case Quarantine:
		applied = dmarc.PolicyQuarantine
	}
	if applied.Weaker(row.Disposition) {
		row.Disposition = applied
		row.Reasons = append(row.Reasons, "local_policy")
	}
}
