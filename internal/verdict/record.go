package verdict

import (
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/mailbox"
	"mailwall/internal/spf"
	"mailwall/internal/store"
)

// Record is what the store keeps of this result: the envelope, each
// stage's result and the action, the reply the client got, every rule
// that fired with its weight and explanation, the headers added, and the
// DMARC evaluation as aggregate reports count it (only when a DMARC
// record was found and applied). The store bounds every field.
func (r *Result) Record(env Envelope, node string, at time.Time) store.Verdict {
	v := store.Verdict{
		At: at, Node: node, Source: "milter", QueueID: env.QueueID, ClientName: env.ClientName, Helo: env.Helo, MailFrom: env.MailFrom,
		FromDomain: r.DMARC.HeaderFrom, Rcpts: env.Rcpts,
		Action: string(r.Action), Stage: r.Stage, Verdict: r.Verdict,
		IPRev: r.IPRev.Result, SPF: string(r.SPF.Result), DKIM: DKIMSummary(r.DKIM), DMARC: r.DMARC.Result, ARC: string(r.ARC.Result),
		Score: r.Score(), Rules: r.Rules(), Reasons: r.Reasons, Reply: r.SentReply(),
		Details: store.Details{Stages: r.stageResults()},
	}
	v.Features = r.featureHashes() // the classifier's hashes, for a later "spam" click
	if env.ClientIP.IsValid() {
		v.ClientIP = env.ClientIP.Unmap().String()
	}
	if r.Internal {
		v.Stage, v.Verdict = "internal", "internal"
	}
	if len(r.Hits) > 0 {
		v.Details.Hits = make([]store.Hit, len(r.Hits))
		for i, h := range r.Hits {
			v.Details.Hits[i] = store.Hit{Rule: h.Rule, Weight: h.Weight, Detail: h.Detail}
		}
	}
	if len(r.Headers) > 0 {
		v.Details.Headers = make([]store.Header, len(r.Headers))
		for i, h := range r.Headers {
			v.Details.Headers[i] = store.Header{Name: h.Name, Value: OneLine(h.Value)}
		}
	}
	if d := r.DMARC; d.Record != nil && d.Row.PolicyDomain != "" && (d.Result == dmarc.Pass || d.Result == dmarc.Fail) {
		v.DMARCRow = &store.DMARCRow{Row: d.Row, RUA: d.Record.RUA, RI: d.Record.RI}
	}
	return v
}

// OneLine is s with its runs of white space (a folded header's line
// breaks among them) made one space and none at either end, as
// strings.Join(strings.Fields(s), " ") has it; s itself, or a part of
// it, when it is so already. The ends are cut first: a field's value
// begins with the space after the colon, which made a copy of every
// one.
func OneLine(s string) string {
	for len(s) > 0 && asciiSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && asciiSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	// One pass: b is started at the first run of white space that is
	// not a single space, the text before it and between such runs
	// copied whole (one allocation; []byte and string() took two, and
	// a pass to look and one to copy byte by byte twice the time).
	var b strings.Builder
	from := 0 // s[from:] is not in b yet
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' {
			if c >= utf8.RuneSelf {
				return strings.Join(strings.Fields(s), " ") // Unicode's spaces too
			}
			continue
		}
		if !asciiSpace(c) {
			continue
		}
		j := i + 1
		for asciiSpace(s[j]) { // s ends in other than white space
			j++
		}
		if c != ' ' || j > i+1 {
			if b.Cap() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[from:i])
			b.WriteByte(' ')
			from = j
		}
		i = j - 1
	}
	if b.Cap() == 0 {
		return s
	}
	b.WriteString(s[from:])
	return b.String()
}

// asciiSpace is strings.Fields's white space in ASCII.
func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// SentReply is the SMTP reply a client gets for r: its Reply for a
// reject or tempfail when it has one of the right class, else the
// milter's default; "" for the actions that deliver.
func (r *Result) SentReply() string {
	switch r.Action {
	case Reject:
		if r.Reply == "" || r.Reply[0] != '5' {
			return "550 5.7.1 Message rejected: " + strings.Join(r.Reasons, "; ")
		}
		return r.Reply
	case TempFail:
		if r.Reply == "" || r.Reply[0] != '4' {
			return "451 4.7.1 Temporary failure, try again later"
		}
		return r.Reply
	}
	return ""
}

// stageResults are each check's result and why, in pipeline order;
// checks that did not run are left out.
func (r *Result) stageResults() []store.StageResult {
	// internal, helo, iprev, s25r, spf, dkim, arc, dmarc, analyses: one
	// allocation, where growing took five.
	out := make([]store.StageResult, 0, 8+max(1, len(r.DKIM))+len(r.Analyses))
	add := func(stage, result, reason string) {
		if result != "" {
			out = append(out, store.StageResult{Stage: stage, Result: result, Reason: reason})
		}
	}
	if r.Internal {
		add("internal", "signed, not checked", "internal host or authenticated sender")
	}
	add("helo", r.Helo, "")
	ipr := r.IPRev.Reason
	if r.IPRev.Name != "" {
		ipr = strings.TrimPrefix(ipr+"; name "+r.IPRev.Name, "; ")
	}
	add("iprev", r.IPRev.Result, ipr)
	if r.S25R != "" {
		add("s25r", "dynamic-looking", r.S25R)
	}
	spfWhy := r.SPF.Problem
	switch {
	case spfWhy == "" && r.SPF.Mechanism != "" && r.SPF.Domain != "":
		spfWhy = strings.TrimSuffix("domain "+r.SPF.Domain+"; matched "+r.SPF.Mechanism, "; ") // one string, not two
	case spfWhy == "" && r.SPF.Mechanism != "":
		spfWhy = "matched " + r.SPF.Mechanism
	case r.SPF.Domain != "":
		spfWhy = strings.TrimSuffix("domain "+r.SPF.Domain+"; "+spfWhy, "; ")
	}
	if r.SPF.Result == spf.Fail && r.SPF.Explanation != "" {
		spfWhy += "; " + r.SPF.Explanation
	}
	if r.SPF.DNSSEC != "" {
		spfWhy = strings.TrimPrefix(spfWhy+"; dnssec "+r.SPF.DNSSEC, "; ") // issue 27
	}
	add("spf", string(r.SPF.Result), spfWhy)
	if len(r.DKIM) == 0 && r.DMARC.Result != "" {
		add("dkim", "none", "no signature")
	}
	for _, d := range r.DKIM {
		why := "d=" + d.Domain + " s=" + d.Selector
		if d.KeyDNSSEC != "" {
			why += " key dnssec " + d.KeyDNSSEC
		}
		if d.Reason != "" {
			why += ": " + d.Reason
		}
		add("dkim", string(d.Status), why)
	}
	add("arc", string(r.ARC.Result), r.ARC.Reason)
	dm := r.DMARC.Reason
	if r.DMARC.PolicyDomain != "" {
		dm = strings.TrimSuffix("policy domain "+r.DMARC.PolicyDomain+", p="+string(r.DMARC.Policy)+"; "+dm, "; ")
	}
	if r.DMARC.PolicyDNSSEC != "" {
		dm = strings.TrimPrefix(dm+"; policy dnssec "+r.DMARC.PolicyDNSSEC, "; ")
	}
	if r.Override != "" {
		dm += "; set aside: " + r.Override
	}
	add("dmarc", r.DMARC.Result, dm)
	for _, a := range r.Analyses {
		score := "score 0" // most analyzers' on most mail: no string made
		if s := analysis.Score(a.Hits); s != 0 {
			score = "score " + strconv.Itoa(s)
		}
		add(a.Name, score, strings.Join(a.Problems, "; "))
	}
	if len(out) == 0 {
		return nil // as before: no stage, no list
	}
	return out
}

// MessageFacts are what the store keeps of a message's header: the From
// address, the Message-ID without brackets and the Subject, decoded
// (RFC 2047) where it can be.
func MessageFacts(fields []dkim.Field) (from, messageID, subject string) {
	from = FieldValue(fields, "From")
	// The plain forms without net/mail's parser (mailbox.Simple answers
	// as ParseAddress would).
	if _, addr, ok := mailbox.Simple(from); ok {
		from = addr
	} else if a, err := mail.ParseAddress(from); err == nil {
		from = a.Address
	} else if i, j := strings.LastIndexByte(from, '<'), strings.LastIndexByte(from, '>'); i >= 0 && j > i {
		from = from[i+1 : j]
	}
	messageID = strings.Trim(FieldValue(fields, "Message-ID"), "<> ")
	subject = FieldValue(fields, "Subject")
	// RFC 2047 encoded words in the charsets Go knows (UTF-8,
	// ISO-8859-1, US-ASCII); others stay encoded.
	if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = dec
	}
	return strings.ToLower(from), messageID, subject
}

// FieldValue is the first field named name, its white space made single
// spaces and trimmed (OneLine); "" when there is none.
func FieldValue(fields []dkim.Field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return OneLine(f.Value())
		}
	}
	return ""
}

// DKIMSummary lists the signatures' results as "status:domain", space
// separated, for logs and the store.
func DKIMSummary(rs []dkim.Result) string {
	switch len(rs) {
	case 0:
		return ""
	case 1: // most mail: one string made
		return string(rs[0].Status) + ":" + rs[0].Domain
	}
	n := 0
	for _, r := range rs {
		n += len(r.Status) + 1 + len(r.Domain) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(r.Status))
		b.WriteByte(':')
		b.WriteString(r.Domain)
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
