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
	var t recordText
	var stack [512]byte // most records' texts: the one string is all they make
	stages, buf := r.stageResultsIn(&t, stack[:0])
	v := store.Verdict{
		At: at, Node: node, Source: "milter", QueueID: env.QueueID, ClientName: env.ClientName, Helo: env.Helo, MailFrom: env.MailFrom,
		FromDomain: r.DMARC.HeaderFrom, Rcpts: env.Rcpts,
		Action: string(r.Action), Stage: r.Stage, Verdict: r.Verdict,
		IPRev: r.IPRev.Result, SPF: string(r.SPF.Result), DMARC: r.DMARC.Result, ARC: string(r.ARC.Result),
		Score: analysis.Score(r.Hits), Rules: r.Rules(), Reasons: r.Reasons, Reply: r.SentReply(),
		Details: store.Details{Stages: stages},
	}
	if len(r.DKIM) > 0 {
		from := len(buf)
		buf = t.span(appendDKIMSummary(buf, r.DKIM), spanDKIM, 0, from)
	}
	if env.ClientIP.IsValid() {
		from := len(buf)
		buf = env.ClientIP.Unmap().AppendTo(buf)
		buf = t.span(buf, spanClient, 0, from)
	}
	t.finish(&v, buf)
	v.Features = r.featureHashes() // the classifier's hashes, for a later "spam" click
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
	if d := &r.DMARC; d.Record != nil && d.Row.PolicyDomain != "" && (d.Result == dmarc.Pass || d.Result == dmarc.Fail) {
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
// checks that did not run are left out. (Record's stages, without the
// rest of the record: for tests.)
func (r *Result) stageResults() []store.StageResult {
	var t recordText
	out, buf := r.stageResultsIn(&t, nil)
	t.finish(nil, buf)
	return out
}

// stageResultsIn is stageResults, the texts it makes of more than one
// value written in t, set when t is finished.
func (r *Result) stageResultsIn(t *recordText, buf []byte) ([]store.StageResult, []byte) {
	// internal, helo, iprev, s25r, spf, dkim, arc, dmarc, analyses: one
	// allocation, where growing took five. It never grows: t's texts
	// name their stage by its index.
	out := make([]store.StageResult, 0, 8+max(1, len(r.DKIM))+len(r.Analyses))
	t.out = out[:cap(out)]
	add := func(stage, result, reason string) {
		if result != "" {
			out = append(out, store.StageResult{Stage: stage, Result: result, Reason: reason})
		}
	}
	// made adds a stage whose reason is t's text from from on.
	made := func(buf []byte, stage, result string, from int) []byte {
		if result == "" {
			return buf[:from]
		}
		out = append(out, store.StageResult{Stage: stage, Result: result})
		return t.span(buf, spanReason, len(out)-1, from)
	}
	if r.Internal {
		add("internal", "signed, not checked", "internal host or authenticated sender")
	}
	add("helo", r.Helo, "")
	if r.IPRev.Name != "" {
		// TrimPrefix(reason+"; name "+name, "; ")
		from := len(buf)
		buf = append(append(append(buf, r.IPRev.Reason...), "; name "...), r.IPRev.Name...)
		buf = trimPrefix(buf, from, "; ")
		buf = made(buf, "iprev", r.IPRev.Result, from)
	} else {
		add("iprev", r.IPRev.Result, r.IPRev.Reason)
	}
	if r.S25R != "" {
		add("s25r", "dynamic-looking", r.S25R)
	}
	if b, ok := r.spfText(buf); ok {
		buf = made(b, "spf", string(r.SPF.Result), len(buf)) // b[len(buf):] is the new text
	} else {
		add("spf", string(r.SPF.Result), r.SPF.Problem)
	}
	if len(r.DKIM) == 0 && r.DMARC.Result != "" {
		add("dkim", "none", "no signature")
	}
	for _, d := range r.DKIM {
		from := len(buf)
		buf = append(append(append(append(buf, "d="...), d.Domain...), " s="...), d.Selector...)
		if d.KeyDNSSEC != "" {
			buf = append(append(buf, " key dnssec "...), d.KeyDNSSEC...)
		}
		if d.Reason != "" {
			buf = append(append(buf, ": "...), d.Reason...)
		}
		buf = made(buf, "dkim", string(d.Status), from)
	}
	add("arc", string(r.ARC.Result), r.ARC.Reason)
	if r.DMARC.PolicyDomain == "" && r.DMARC.PolicyDNSSEC == "" && r.Override == "" {
		add("dmarc", r.DMARC.Result, r.DMARC.Reason)
	} else {
		from := len(buf)
		if r.DMARC.PolicyDomain != "" {
			// TrimSuffix("policy domain "+pd+", p="+p+"; "+reason, "; ")
			buf = append(append(append(append(buf, "policy domain "...), r.DMARC.PolicyDomain...), ", p="...), r.DMARC.Policy...)
			buf = append(append(buf, "; "...), r.DMARC.Reason...)
			buf = trimSuffix(buf, from, "; ")
		} else {
			buf = append(buf, r.DMARC.Reason...)
		}
		if r.DMARC.PolicyDNSSEC != "" {
			buf = append(append(buf, "; policy dnssec "...), r.DMARC.PolicyDNSSEC...)
			buf = trimPrefix(buf, from, "; ")
		}
		if r.Override != "" {
			buf = append(append(buf, "; set aside: "...), r.Override...)
		}
		buf = made(buf, "dmarc", r.DMARC.Result, from)
	}
	for _, a := range r.Analyses {
		// Most analyzers' on most mail: "score 0", no text made.
		out = append(out, store.StageResult{Stage: a.Name, Result: "score 0"})
		i := len(out) - 1
		if s := analysis.Score(a.Hits); s != 0 {
			from := len(buf)
			buf = strconv.AppendInt(append(buf, "score "...), int64(s), 10)
			buf = t.span(buf, spanResult, i, from)
		}
		switch len(a.Problems) {
		case 0:
		case 1:
			out[i].Reason = a.Problems[0]
		default:
			from := len(buf)
			for j, p := range a.Problems {
				if j > 0 {
					buf = append(buf, "; "...)
				}
				buf = append(buf, p...)
			}
			buf = t.span(buf, spanReason, i, from)
		}
	}
	if len(out) == 0 {
		return nil, buf // as before: no stage, no list
	}
	return out, buf
}

// spfText appends SPF's reason to buf, made of the problem, the domain,
// the mechanism, the explanation and DNSSEC's word; ok is false, buf
// as it was, when it is the problem alone.
func (r *Result) spfText(buf []byte) (_ []byte, ok bool) {
	o := &r.SPF
	explain := o.Result == spf.Fail && o.Explanation != ""
	if o.Mechanism == "" && o.Domain == "" && !explain && o.DNSSEC == "" {
		return buf, false
	}
	from := len(buf)
	switch {
	case o.Problem == "" && o.Mechanism != "" && o.Domain != "":
		buf = append(append(append(append(buf, "domain "...), o.Domain...), "; matched "...), o.Mechanism...)
		buf = trimSuffix(buf, from, "; ")
	case o.Problem == "" && o.Mechanism != "":
		buf = append(append(buf, "matched "...), o.Mechanism...)
	case o.Domain != "":
		buf = append(append(append(append(buf, "domain "...), o.Domain...), "; "...), o.Problem...)
		buf = trimSuffix(buf, from, "; ")
	default:
		buf = append(buf, o.Problem...)
	}
	if explain {
		buf = append(append(buf, "; "...), o.Explanation...)
	}
	if o.DNSSEC != "" {
		buf = append(append(buf, "; dnssec "...), o.DNSSEC...) // issue 27
		buf = trimPrefix(buf, from, "; ")
	}
	return buf, true
}

// recordText keeps the places of the texts Record makes of more than
// one value (the stages' reasons and scores, the DKIM summary, the
// client's address), written one after the other in one buffer (on
// Record's stack when they fit) and made one string at the end: one
// allocation where each text took its own.
type recordText struct {
	out   []store.StageResult // the stages, to their capacity
	spans [24]textSpan
	n     int
}

// textSpan is a text's place: buf[from:to], for the field of what
// of the stage i (or of the record).
type textSpan struct {
	what     uint8
	i        int32
	from, to int32
}

// What a textSpan is the text of.
const (
	spanReason = iota // the stage's Reason
	spanResult        // the stage's Result
	spanDKIM          // the record's DKIM
	spanClient        // the record's ClientIP
)

// span marks buf[from:] as the text of what (of stage i). Two places
// are kept for the record's own texts.
func (t *recordText) span(buf []byte, what uint8, i, from int) []byte {
	if t.n < len(t.spans)-2 || what == spanDKIM || what == spanClient {
		t.spans[t.n] = textSpan{what, int32(i), int32(from), int32(len(buf))}
		t.n++
		return buf
	}
	// More stage texts than spans holds (a message with many
	// signatures): this one made on its own.
	t.setStage(what, i, string(buf[from:]))
	return buf[:from]
}

func (t *recordText) setStage(what uint8, i int, s string) {
	if what == spanResult {
		t.out[i].Result = s
	} else {
		t.out[i].Reason = s
	}
}

// trimPrefix is strings.TrimPrefix on buf[from:].
func trimPrefix(buf []byte, from int, prefix string) []byte {
	if b := buf[from:]; len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix {
		return append(buf[:from], b[len(prefix):]...)
	}
	return buf
}

// trimSuffix is strings.TrimSuffix on buf[from:].
func trimSuffix(buf []byte, from int, suffix string) []byte {
	if b := buf[from:]; len(b) >= len(suffix) && string(b[len(b)-len(suffix):]) == suffix {
		return buf[:len(buf)-len(suffix)]
	}
	return buf
}

// finish makes buf one string and sets each text in v (nil: stages
// alone) and its stages.
func (t *recordText) finish(v *store.Verdict, buf []byte) {
	if t.n == 0 {
		return
	}
	s := string(buf)
	for _, sp := range t.spans[:t.n] {
		text := s[sp.from:sp.to]
		switch sp.what {
		case spanDKIM:
			v.DKIM = text
		case spanClient:
			v.ClientIP = text
		default:
			t.setStage(sp.what, int(sp.i), text)
		}
	}
}

// MessageFacts are what the store keeps of a message's header: the From
// address, the Message-ID without brackets and the Subject, decoded
// (RFC 2047) where it can be.
func MessageFacts(fields []dkim.Field) (from, messageID, subject string) {
	from, _, messageID, subject = MessageFactsID(fields)
	return from, messageID, subject
}

// MessageFactsID is MessageFacts and the Message-ID field's value as
// FieldValue has it (brackets kept), as the milter logs it.
func MessageFactsID(fields []dkim.Field) (from, idField, messageID, subject string) {
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
	idField = FieldValue(fields, "Message-ID")
	messageID = strings.Trim(idField, "<> ")
	subject = FieldValue(fields, "Subject")
	// RFC 2047 encoded words in the charsets Go knows (UTF-8,
	// ISO-8859-1, US-ASCII); others stay encoded.
	if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = dec
	}
	return strings.ToLower(from), idField, messageID, subject
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
	return string(appendDKIMSummary(nil, rs))
}

// appendDKIMSummary appends DKIMSummary's text of rs to b.
func appendDKIMSummary(b []byte, rs []dkim.Result) []byte {
	for i, r := range rs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(append(append(b, r.Status...), ':'), r.Domain...)
	}
	return b
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
