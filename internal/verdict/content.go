// The content stage: the analyzers the config lists (the phishing rules,
// the classifier, ...) in its order, their hits summed into the score,
// the score mapped to an action.

package verdict

import (
	"strconv"
	"strings"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
	"mailwall/internal/phish"
)

// analysisMessage fills in what the analyzers read: the message and
// what authentication found. The text is decoded once, by the first
// analyzer that asks (phish.Extract). It lives in the Message, not in
// an allocation of its own.
func (m *Message) analysisMessage() *analysis.Message {
	r := &m.res
	m.am = analysis.Message{Fields: m.fields, Body: m.body, Rcpts: m.env.Rcpts,
		ClientIP: m.env.ClientIP, IPRev: r.IPRev.Result, S25R: r.S25R != "", SPF: string(r.SPF.Result), SPFDomain: spfDomain(m.env),
		DMARC: r.DMARC.Result, HeaderFrom: r.DMARC.HeaderFrom, DMARCOverridden: r.Override != "", ARC: string(r.ARC.Result),
		Decode: phish.Extract}
	am := &m.am
	if r.IPRev.Result == "pass" {
		am.PTRName = r.IPRev.Name
	}
	if r.DMARC.Record != nil {
		am.DMARCPolicy = string(r.DMARC.Policy)
	}
	for _, d := range r.DKIM {
		switch d.Status {
		case dkim.Pass:
			am.DKIMPass = append(am.DKIMPass, d.Domain)
		case dkim.Fail:
			am.DKIMFail = true
		}
	}
	return am
}

// spfDomain is the domain SPF checked: MAIL FROM's, or HELO's for a
// bounce (RFC 7208 §2.4).
func spfDomain(env Envelope) string {
	if _, d, ok := strings.Cut(env.MailFrom, "@"); ok {
		return strings.ToLower(d)
	}
	return strings.ToLower(env.Helo)
}

// analyze runs the analyzers, adds their weights into the score and maps
// the score to an action.
func (m *Message) analyze() {
	c, r := m.c, &m.res
	if len(c.Analyzers) == 0 {
		return
	}
	am := m.analysisMessage()
	r.Analyses = make([]Analysis, 0, len(c.Analyzers))
	for _, a := range c.Analyzers {
		out := a.Analyze(m.ctx, am)
		r.Analyses = append(r.Analyses, Analysis{Name: a.Name(), Result: out})
		r.Hits = append(r.Hits, out.Hits...)
		am.Hits = r.Hits[:len(r.Hits):len(r.Hits)] // an analyzer appending to it copies
		if rep, ok := out.Report.(*phish.Report); ok {
			r.Phish = rep
		}
	}
	if m.dbg != nil {
		m.debugAnalyses()
	}
	if len(r.Hits) == 0 {
		return
	}
	r.rules = analysis.Rules(r.Hits)
	score := r.Score()
	why := "score " + strconv.Itoa(score) + ": " + strings.Join(r.rules, ", ")
	p := c.Policy
	switch {
	case p.ScoreReject > 0 && score >= p.ScoreReject:
		// The sender sees a generic text; the rules are in why, for the
		// log and the dashboard, not for whoever tunes a phish to pass.
		text := p.ScoreRejectText
		if text == "" {
			text = DefaultScoreRejectText
		}
		r.decide(Reject, "score", why, "550 5.7.1 "+text)
	case p.ScoreQuarantine > 0 && score >= p.ScoreQuarantine:
		r.decide(Quarantine, "score", why, "")
	case p.ScoreTag > 0 && score >= p.ScoreTag:
		r.decide(Tag, "score", why, "")
	default:
		r.Reasons = append(r.Reasons, why)
	}
}

// DefaultScoreRejectText is the reply text of a rejection by the score
// when the config gives none.
const DefaultScoreRejectText = "Message rejected as likely phishing"
