// The decision: the verdict, Authentication-Results, X-Mailwall-Verdict
// and X-Mailwall-Score, the Subject tag and the ARC seal.

package verdict

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mailwall/internal/arc"
	"mailwall/internal/authres"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/lists"
	"mailwall/internal/spf"
)

// Finish runs the end-of-message stages (authentication, then the
// analyzers) and returns the verdict with the headers to add.
func (m *Message) Finish() Result {
	c, r := m.c, &m.res
	r.Remove = forgedResults(m.fields, c.AuthServID)
	if m.internal {
		r.Verdict = "pass"
		ar := authres.Header{AuthServID: c.AuthServID}
		if m.env.AuthUser != "" {
			ar.Results = append(ar.Results, authres.Result{Method: "auth", Value: "pass", Props: []authres.Prop{{Type: "smtp", Name: "auth", Value: m.env.AuthUser}}})
		}
		r.Headers = append(r.Headers, HeaderField{"Authentication-Results", " " + ar.String()})
		if m.signing != nil {
			sig, err := m.signing.Finish()
			if err != nil {
				r.Reasons = append(r.Reasons, "dkim: signing failed: "+err.Error())
			} else {
				name, value, _ := strings.Cut(strings.TrimSuffix(sig, "\r\n"), ":")
				r.Headers = append(r.Headers, HeaderField{name, value})
				r.Signed = true
			}
		}
		if m.dbg != nil {
			m.debugStart()
			m.debugResult()
		}
		return *r
	}
	m.authenticate()
	m.analyze()
	m.blocklistReply()
	m.applyLists()
	m.releaseBody()
	switch {
	case r.Action == Reject || r.Action == Quarantine || r.DMARC.Result == dmarc.Fail && r.Override == "":
		r.Verdict = "fail"
	case r.Action == Accept && r.Stage == "lists":
		r.Verdict = "pass" // allow-listed: its reason is not a doubt
	case r.Action == Tag || len(r.Reasons) > 0:
		r.Verdict = "suspicious"
	default:
		r.Verdict = "pass"
	}
	ar := m.authResults()
	if m.sealing != nil && (r.Action == Accept || r.Action == Tag) {
		m.seal(ar)
	}
	r.Headers = append(r.Headers, HeaderField{"Authentication-Results", " " + ar.String()})
	stages := "none"
	if r.Stage != "" && r.Action != Accept {
		stages = r.Stage
	}
	r.Headers = append(r.Headers, HeaderField{"X-Mailwall-Verdict", " " + r.Verdict + " (action=" + string(r.Action) + "; stage=" + stages + ")"})
	if len(r.Analyses) > 0 {
		rules := "none"
		if len(r.Hits) > 0 {
			rules = strings.Join(r.Rules(), " ")
		}
		// A mail client rule can sort on the number; the rules say why.
		r.Headers = append(r.Headers, HeaderField{"X-Mailwall-Score", " " + strconv.Itoa(r.Score()) + " (" + foldRules(rules) + ")"})
	}
	if m.dbg != nil {
		m.debugResult()
	}
	return *r
}

// blocklistReply rewords a rejection by the score that the DNS
// blocklists' hits decided (the score without them is under the reject
// threshold): "likely phishing" would be wrong, and the sending admin
// must learn that a list is why, to ask for delisting (as Postfix's
// reject_rbl_client names the list).
func (m *Message) blocklistReply() {
	r := &m.res
	if r.Action != Reject || r.Stage != "score" {
		return
	}
	listed, rest := 0, 0
	for _, h := range r.Hits {
		if strings.HasPrefix(h.Rule, "dnsbl:") && h.Weight > 0 {
			listed += h.Weight
		} else {
			rest += h.Weight
		}
	}
	if listed == 0 || rest >= m.c.Policy.ScoreReject {
		return
	}
	r.Reply = "550 5.7.1 Message rejected: listed on DNS blocklists (" + strings.Join(r.Rules(), ", ") + ")"
}

// ListReply is the reply to mail a block entry matched.
const ListReply = "550 5.7.1 sender is on this site's block list"

// applyLists applies the site's allow and block lists once
// authentication and the score are known. A block entry rejects. An
// allow entry accepts in place of whatever the checks and the score
// decided, the headers still added; a sender or From entry only for an
// identity authenticated (internal/lists), and an envelope sender's
// entry never carries a From that fails DMARC: SPF passing for a bounce
// domain says nothing of the From a spoofer wrote beside it.
func (m *Message) applyLists() {
	r := &m.res
	set := m.c.Lists.Set()
	if set.Len() == 0 {
		return
	}
	dmarcFail := r.DMARC.Result == dmarc.Fail && r.Override == ""
	q := lists.Query{IP: m.env.ClientIP, MailFrom: m.env.MailFrom, From: m.from().addrs, FromDomain: r.DMARC.HeaderFrom,
		MailFromAuth: m.env.MailFrom != "" && r.SPF.Result == spf.Pass && r.SPF.Identity == spf.MailFrom && !dmarcFail,
		FromAuth:     r.DMARC.Result == dmarc.Pass || r.DMARC.Result == dmarc.None && (r.DMARC.DKIMAligned || r.DMARC.SPFAligned),
		Rcpts:        m.env.Rcpts}
	d := set.Check(q)
	switch {
	case d.Blocked():
		r.decide(Reject, "lists", d.Block.String(), ListReply)
		r.Reasons = append(r.Reasons, d.Reasons()[1:]...)
	case d.Allowed():
		r.Reasons = append(r.Reasons, d.Reasons()...)
		if r.Action != Accept && r.Action != "" {
			r.Reasons = append(r.Reasons, fmt.Sprintf("lists: %s (stage %s) set aside", r.Action, r.Stage))
		}
		if dmarcFail {
			localPolicy(&r.DMARC.Row, Accept)
		}
		r.Action, r.Stage, r.Reply = Accept, "lists", ""
	default:
		r.Reasons = append(r.Reasons, d.Reasons()...)
	}
}

// foldRules folds the list of rules for a header line.
func foldRules(rules string) string {
	var b strings.Builder
	col := len("X-Mailwall-Score: 100 (")
	for i, w := range strings.Fields(rules) {
		if i > 0 {
			if col+1+len(w) > 76 {
				b.WriteString("\r\n\t")
				col = 8
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

// seal adds our ARC set on top, its AAR holding our results (RFC 8617
// §5.1); a Subject we are about to tag is sealed as it will be sent.
func (m *Message) seal(ar authres.Header) {
	r := &m.res
	fields := m.fields
	if subj := m.c.SubjectTagged(*r, fields); subj != "" {
		fields = append([]dkim.Field(nil), fields...)
		for i, f := range fields {
			if strings.EqualFold(f.Name, "Subject") {
				fields[i] = dkim.NewField(f.Name, subj)
			}
		}
	}
	m.sealing.SetFields(fields)
	set, err := m.sealing.Finish(r.ARC.Result, ar.ResultsString())
	if err != nil {
		r.Reasons = append(r.Reasons, "arc: not sealed: "+err.Error())
		return
	}
	for _, f := range []string{set.Seal, set.AMS, set.AAR} {
		name, value, _ := strings.Cut(strings.TrimSuffix(f, "\r\n"), ":")
		r.Headers = append(r.Headers, HeaderField{name, value})
	}
}

// SubjectTagged returns the new Subject value for tagged mail, or "" when
// nothing changes.
func (c *Checker) SubjectTagged(r Result, fields []dkim.Field) string {
	if c.Policy.SubjectTag == "" || r.Action != Tag {
		return ""
	}
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Subject") {
			return " " + foldSafe(c.Policy.SubjectTag+" "+strings.TrimSpace(f.Value()))
		}
	}
	return " " + foldSafe(c.Policy.SubjectTag)
}

// foldSafe returns v with every line break a CRLF followed by white
// space (RFC 5322 §2.2.3 folding): a CR or LF on its own, which a
// sender may put in a folded Subject, would otherwise reach the message
// as a bare CR or end the field (issue 23). A milter hands the value on
// with LF line ends (MilterValue).
func foldSafe(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	v = strings.ReplaceAll(v, "\r", " ")
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\n' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 == len(v) {
			break // a field does not end in a fold
		}
		b.WriteString("\r\n")
		if c := v[i+1]; c != ' ' && c != '\t' {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// MilterValue is a header value as the milter protocol carries it: line
// ends LF alone; the MTA adds the CR (libmilter's smfi_addheader and
// smfi_chgheader: "The line feed must not be preceded by a carriage
// return"). A CRLF sent on would reach the message as a bare CR.
func MilterValue(v string) string { return strings.ReplaceAll(v, "\r\n", "\n") }

func (m *Message) authResults() authres.Header {
	r := &m.res
	// iprev, spf, each dkim signature, arc, dmarc; sorted below.
	h := authres.Header{AuthServID: m.c.AuthServID, Results: make([]authres.Result, 0, 4+max(len(r.DKIM), 1))}
	if r.IPRev.Result != "" {
		res := authres.Result{Method: "iprev", Value: r.IPRev.Result, Props: []authres.Prop{{Type: "policy", Name: "iprev", Value: m.env.ClientIP.String()}}}
		if r.IPRev.Name != "" {
			res.Props[0].Comment = r.IPRev.Name
		}
		h.Results = append(h.Results, res)
	}
	spfRes := authres.Result{Method: "spf", Value: string(r.SPF.Result)}
	if m.env.MailFrom != "" {
		spfRes.Props = []authres.Prop{{Type: "smtp", Name: "mailfrom", Value: m.env.MailFrom}}
	} else {
		spfRes.Props = []authres.Prop{{Type: "smtp", Name: "helo", Value: m.env.Helo}}
	}
	if r.SPF.Problem != "" {
		spfRes.Comment = r.SPF.Problem
	}
	spfRes.Comment = withDNSSEC(spfRes.Comment, r.SPF.DNSSEC, 0) // d4_dnssec.go
	h.Results = append(h.Results, spfRes)
	if len(r.DKIM) == 0 {
		h.Results = append(h.Results, authres.Result{Method: "dkim", Value: "none"})
	}
	for _, d := range r.DKIM {
		res := authres.Result{Method: "dkim", Value: string(d.Status), Comment: d.Reason,
			Props: []authres.Prop{{Type: "header", Name: "d", Value: d.Domain}, {Type: "header", Name: "s", Value: d.Selector}}}
		res.Comment = withDNSSEC(res.Comment, d.KeyDNSSEC, d.KeyBits)
		if d.Algorithm != "" {
			res.Props = append(res.Props, authres.Prop{Type: "header", Name: "a", Value: d.Algorithm})
		}
		if d.HeaderB != "" {
			res.Props = append(res.Props, authres.Prop{Type: "header", Name: "b", Value: d.HeaderB})
		}
		h.Results = append(h.Results, res)
	}
	if r.ARC.Result != "" {
		// RFC 8617 §10.2: arc=, header.oldest-pass, smtp.remote-ip.
		a := authres.Result{Method: "arc", Value: string(r.ARC.Result), Comment: r.ARC.Reason}
		a.Comment = withDNSSEC(a.Comment, r.ARC.KeyDNSSEC, 0) // the seal keys' DNSSEC status (d4_dnssec.go)
		if r.ARC.Result == arc.Pass {
			a.Props = []authres.Prop{{Type: "header", Name: "oldest-pass", Value: strconv.Itoa(r.ARC.OldestPass)}}
		}
		if r.ARC.Result != arc.None && m.env.ClientIP.IsValid() {
			a.Props = append(a.Props, authres.Prop{Type: "smtp", Name: "remote-ip", Value: m.env.ClientIP.String()})
		}
		h.Results = append(h.Results, a)
	}
	dm := authres.Result{Method: "dmarc", Value: r.DMARC.Result}
	if r.Override != "" {
		dm.Reason = "overridden: " + r.Override
	}
	if r.DMARC.Record != nil {
		dm.Comment = "p=" + string(r.DMARC.Policy) + " dis=" + string(r.DMARC.Disposition)
	}
	dm.Comment = withDNSSEC(dm.Comment, r.DMARC.PolicyDNSSEC, 0)
	if r.DMARC.Result == dmarc.TempError {
		dm.Comment = r.DMARC.Reason // a DNSSEC bogus answer names the failing link
	}
	if r.DMARC.HeaderFrom != "" {
		dm.Props = []authres.Prop{{Type: "header", Name: "from", Value: r.DMARC.HeaderFrom}}
	}
	h.Results = append(h.Results, dm)
	// spf and dmarc first, and a few results per method: thousands of
	// junk DKIM-Signature fields must not push dmarc= past where an MTA
	// cuts a long field (issue 23).
	slices.SortStableFunc(h.Results, func(a, b authres.Result) int { return arRank(a.Method) - arRank(b.Method) })
	h.Limit(MaxResultsPerMethod)
	return h
}

// MaxResultsPerMethod is how many results of one method (dkim, say) our
// Authentication-Results field shows; the rest are counted in a comment.
const MaxResultsPerMethod = 5

func arRank(method string) int {
	switch method {
	case "spf":
		return 0
	case "dmarc":
		return 1
	}
	return 2
}
