// Package verdict is the receive pipeline: connection, HELO, SPF, DKIM and
// DMARC checks in, one action and the headers to add out, with the reason
// for each decision. Protocol adapters (the milter, check-message) feed it;
// it knows nothing of them.
package verdict

import (
	"context"
	"fmt"
	"io"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/idna"

	"mailwall/internal/arc"
	"mailwall/internal/authres"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/phish"
	"mailwall/internal/spf"
)

// Action is what happens to a message, weakest first.
type Action string

// Actions.
const (
	Accept     Action = "accept"
	Tag        Action = "tag"        // deliver with the verdict header and Subject tag
	Quarantine Action = "quarantine" // Postfix: the hold queue
	TempFail   Action = "tempfail"
	Reject     Action = "reject"
)

func (a Action) rank() int {
	switch a {
	case Tag:
		return 1
	case Quarantine:
		return 2
	case TempFail:
		return 3
	case Reject:
		return 4
	}
	return 0
}

// ParseAction reads an action name from the config.
func ParseAction(s string) (Action, error) {
	switch a := Action(strings.ToLower(s)); a {
	case Accept, Tag, Quarantine, TempFail, Reject:
		return a, nil
	}
	return "", fmt.Errorf("verdict: %q is not accept, tag, quarantine, tempfail or reject", s)
}

// Policy maps check outcomes to actions.
type Policy struct {
	HeloInvalid     Action // HELO not a valid host name or address literal
	HeloRequireFQDN bool
	IPRevFail       Action // no PTR, or no PTR name resolving back
	S25R            Action // dynamic-looking client name
	SPFFail         Action // SPF fail (DMARC usually decides instead)
	DMARCReject     Action // DMARC fail under p=reject (OpenDMARC's RejectFailures)
	DMARCQuarantine Action // DMARC fail under p=quarantine
	// TempError applies when a check could not finish (DNS down): tempfail
	// by default, as Postfix's milter_default_action.
	TempError  Action
	SubjectTag string // prefix for the Subject of tagged mail; "" for none
	// Score thresholds: a message whose phishing score reaches one gets
	// that action (tag, quarantine, reject); 0 turns a threshold off.
	ScoreTag, ScoreQuarantine, ScoreReject int
}

// DefaultPolicy is what an admin expects of OpenDKIM+OpenDMARC with
// RejectFailures on and Postfix's milter_default_action = tempfail.
func DefaultPolicy() Policy {
	return Policy{HeloInvalid: Reject, IPRevFail: Tag, S25R: Tag, SPFFail: Accept,
		DMARCReject: Reject, DMARCQuarantine: Quarantine, TempError: TempFail,
		ScoreTag: 30, ScoreQuarantine: 60, ScoreReject: 100}
}

// New returns a Checker on res with the default policy and the SPF, DKIM
// and DMARC checks at their defaults; callers add HELO tables, S25R,
// internal networks and signers.
func New(res dnsx.Resolver, authServID string) *Checker {
	return &Checker{Resolver: res, AuthServID: authServID, Policy: DefaultPolicy(),
		SPF: &spf.Checker{Resolver: res}, DKIM: &dkim.Verifier{Resolver: res}, DMARC: &dmarc.Evaluator{Resolver: res},
		ARC: &arc.Verifier{Resolver: res}}
}

// Checker runs the pipeline. Resolver and AuthServID are required.
type Checker struct {
	Resolver   dnsx.Resolver
	AuthServID string
	Policy     Policy
	SPF        *spf.Checker
	DKIM       *dkim.Verifier
	DMARC      *dmarc.Evaluator
	ARC        *arc.Verifier // nil: ARC chains are not validated
	// TrustedSealers are ARC sealer domains (lower case) whose recorded
	// dmarc=pass overrides a DMARC fail here, as large receivers do for
	// known mailing lists and forwarders.
	TrustedSealers []string
	// Sealer, when set, adds an ARC set to received mail that is
	// delivered: for a host that forwards or runs mailing lists.
	Sealer *arc.Sealer
	// Phish scores content and context; nil: no score.
	Phish      *phish.Checker
	S25R       *conncheck.S25R // nil: no S25R check
	HeloTables []*conncheck.RegexpTable
	// Internal networks and authenticated senders are signed, not checked
	// (OpenDKIM's InternalHosts).
	Internal []netip.Prefix
	// Signers by lower-case domain: mail from these domains is signed when
	// it comes from an internal host or an authenticated sender.
	Signers map[string]*dkim.Signer

	// bodies holds maxContent buffers for large bodies: growing a fresh
	// one by appends for every 1 MB message was a third of the milter's
	// allocations, and the GC work that goes with them.
	bodies sync.Pool
}

// Envelope is what the SMTP transaction says about a message.
type Envelope struct {
	ClientIP   netip.Addr
	ClientName string // the MTA's verified name, "unknown" or "" if none
	Helo       string
	MailFrom   string // without angle brackets; "" for a bounce
	Rcpts      []string
	AuthUser   string // SASL login ({auth_authen}); "" if none
	QueueID    string
	// Local marks mail submitted on this host (Postfix's sendmail command,
	// seen through non_smtpd_milters): no network client to check.
	Local bool
}

// Result is the pipeline's outcome for a message.
type Result struct {
	Action  Action   `json:"action"`
	Reply   string   `json:"reply,omitempty"` // SMTP reply for reject and tempfail
	Stage   string   `json:"stage,omitempty"` // the stage that decided
	Reasons []string `json:"reasons"`
	Verdict string   `json:"verdict"` // pass, suspicious, fail

	Internal bool            `json:"internal,omitempty"`
	Signed   bool            `json:"signed,omitempty"`
	Helo     string          `json:"helo"`
	IPRev    conncheck.IPRev `json:"iprev"`
	S25R     string          `json:"s25r,omitempty"`
	SPF      spf.Outcome     `json:"spf"`
	DKIM     []dkim.Result   `json:"dkim"`
	DMARC    dmarc.Result    `json:"dmarc"`
	ARC      arc.Outcome     `json:"arc"`
	Phish    *phish.Report   `json:"phish,omitempty"`
	// Override names the local policy that set a DMARC fail aside
	// (RFC 9990's trusted_forwarder), with the sealer that vouched.
	Override string            `json:"dmarc_override,omitempty"`
	Headers  []HeaderField     `json:"headers"` // to add at the top, in order
	Remove   []HeaderReference `json:"remove,omitempty"`
}

// Score is the phishing score; 0 when the rules did not run.
func (r Result) Score() int {
	if r.Phish == nil {
		return 0
	}
	return r.Phish.Score
}

// Rules lists the phishing rules that fired as "rule=weight".
func (r Result) Rules() []string {
	if r.Phish == nil {
		return nil
	}
	return r.Phish.Rules()
}

// HeaderField is a header to add.
type HeaderField struct {
	Name, Value string
}

// HeaderReference names the index-th (from 1) field called Name, to remove.
type HeaderReference struct {
	Name  string
	Index int
}

// decide raises the action to a if it is stronger, noting why.
func (r *Result) decide(a Action, stage, reason, reply string) {
	if a == "" {
		a = Accept
	}
	if reason != "" {
		r.Reasons = append(r.Reasons, stage+": "+reason)
	}
	if a.rank() > r.Action.rank() || r.Action == "" {
		r.Action, r.Stage = a, stage
		if reply != "" {
			r.Reply = reply
		}
	}
}

// CheckHelo runs the HELO stage: the regexp tables, then syntax. It
// returns the action and the SMTP reply Postfix would give.
func (c *Checker) CheckHelo(helo string) (Action, string, string) {
	for _, t := range c.HeloTables {
		res, ok := t.Lookup(helo)
		if !ok {
			continue
		}
		d := conncheck.ParseAction(res)
		if act, ok := heloRefusal(d.Kind); ok {
			return act, d.Reply("Helo command", helo), fmt.Sprintf("%s: %s", t.Name, res)
		}
		switch d.Kind {
		case "hold":
			return Quarantine, "", fmt.Sprintf("%s: %s", t.Name, res)
		case "ok":
			return Accept, "", ""
		}
	}
	if reply := conncheck.HeloSyntax(helo, c.Policy.HeloRequireFQDN); reply != "" {
		return c.Policy.HeloInvalid, reply, "invalid HELO " + helo
	}
	return Accept, "", ""
}

// heloRefusal is the action of a HELO table decision that refuses:
// Reject or TempFail, and false for the kinds that do not.
func heloRefusal(kind string) (Action, bool) {
	switch kind {
	case "reject":
		return Reject, true
	case "defer", "defer_if_permit", "defer_if_reject":
		return TempFail, true
	}
	return "", false
}

// HeloCanRefuse reports whether CheckHelo can answer Reject or TempFail.
// The milter asks Postfix to wait for its answer at HELO only then: the
// wait is a round trip per connection, about a third of the time one
// message takes when connections come one at a time.
func (c *Checker) HeloCanRefuse() bool {
	if c.Policy.HeloInvalid == Reject || c.Policy.HeloInvalid == TempFail {
		return true
	}
	for _, t := range c.HeloTables {
		for _, r := range t.Rules() {
			if _, ok := heloRefusal(conncheck.ParseAction(r.Result).Kind); ok {
				return true
			}
			if action, _, _ := strings.Cut(strings.TrimSpace(r.Result), " "); strings.Contains(action, "$") {
				return true // the action comes from the match: it may refuse
			}
		}
	}
	return false
}

// IsInternal reports whether mail from ip (or an authenticated user) is
// ours to sign rather than to check.
func (c *Checker) IsInternal(env Envelope) bool {
	if env.AuthUser != "" || env.Local {
		return true
	}
	for _, p := range c.Internal {
		if p.Contains(env.ClientIP.Unmap()) {
			return true
		}
	}
	return false
}

// Message is one message going through the pipeline: the envelope checks
// run at Start, header fields and body stream in, Finish decides.
type Message struct {
	c        *Checker
	ctx      context.Context
	env      Envelope
	res      Result
	fields   []dkim.Field
	verify   *dkim.Verification
	arc      *arc.Validation
	sealing  *arc.Sealing
	body     []byte  // kept for content checks, up to maxContent
	pooled   *[]byte // body's buffer when it came from c.bodies
	signing  *dkim.Signing
	internal bool
}

// Start begins a message. The connection and SPF checks run here, before
// the body arrives.
func (c *Checker) Start(ctx context.Context, env Envelope) *Message {
	m := &Message{c: c, ctx: ctx, env: env, internal: c.IsInternal(env)}
	m.res.Action = Accept
	m.res.Internal = m.internal
	if m.internal {
		return m
	}
	act, reply, why := c.CheckHelo(env.Helo)
	m.res.Helo = "pass"
	if why != "" {
		m.res.Helo = "fail"
		m.res.decide(act, "helo", why, reply)
	}
	m.res.IPRev = conncheck.CheckIPRev(ctx, c.Resolver, env.ClientIP)
	switch m.res.IPRev.Result {
	case "fail", "permerror":
		m.res.decide(c.Policy.IPRevFail, "iprev", m.res.IPRev.Result+": "+m.res.IPRev.Reason, "")
	case "temperror":
		m.res.Reasons = append(m.res.Reasons, "iprev: temperror: "+m.res.IPRev.Reason)
	}
	if c.S25R != nil {
		name := ""
		if m.res.IPRev.Result == "pass" {
			name = m.res.IPRev.Name
		}
		if rule, hit := c.S25R.Match(env.ClientIP, name); hit {
			m.res.S25R = rule
			m.res.decide(c.Policy.S25R, "s25r", "dynamic-looking client ("+rule+")", "")
		}
	}
	m.res.SPF = c.SPF.CheckMailFrom(ctx, env.ClientIP, env.MailFrom, env.Helo)
	switch m.res.SPF.Result {
	case spf.Fail:
		m.res.decide(c.Policy.SPFFail, "spf", "fail: "+m.res.SPF.Explanation, "550 5.7.23 SPF fail: "+m.res.SPF.Explanation)
	case spf.TempError:
		m.res.Reasons = append(m.res.Reasons, "spf: temperror: "+m.res.SPF.Problem)
	}
	return m
}

// Header adds one header field as received.
func (m *Message) Header(f dkim.Field) { m.fields = append(m.fields, f) }

// EndOfHeaders starts hashing: verification for received mail, signing for
// our own.
func (m *Message) EndOfHeaders() {
	if m.internal {
		if s := m.signer(); s != nil {
			m.signing, _ = s.Start(m.fields)
		}
		return
	}
	m.verify = m.c.DKIM.Start(m.fields)
	if m.c.ARC != nil {
		m.arc = m.c.ARC.Start(m.fields)
	}
	if m.c.Sealer != nil {
		m.sealing, _ = m.c.Sealer.Start(m.fields)
	}
}

// signer picks the key for the From domain.
func (m *Message) signer() *dkim.Signer {
	doms := fromDomains(m.fields)
	if len(doms) != 1 {
		return nil
	}
	return m.c.Signers[doms[0]]
}

// Write feeds body octets.
func (m *Message) Write(p []byte) (int, error) {
	switch {
	case m.signing != nil:
		m.signing.Write(p)
	case m.verify != nil:
		m.verify.Write(p)
		if m.arc != nil {
			m.arc.Write(p)
		}
		if m.sealing != nil {
			m.sealing.Write(p)
		}
		if m.c.Phish != nil && len(m.body) < maxContent {
			m.keepBody(p[:min(len(p), maxContent-len(m.body))])
		}
	}
	return len(p), nil
}

// keepBody appends to the copy the content checks read. A body that
// outgrows smallBody moves to a pooled buffer of maxContent: small
// messages, most mail, never hold one.
func (m *Message) keepBody(p []byte) {
	const smallBody = 64 << 10
	if len(m.body)+len(p) > smallBody && cap(m.body) < maxContent {
		buf, _ := m.c.bodies.Get().(*[]byte)
		if buf == nil {
			b := make([]byte, 0, maxContent)
			buf = &b
		}
		m.pooled = buf
		m.body = append((*buf)[:0], m.body...)
	}
	m.body = append(m.body, p...)
}

// releaseBody gives a pooled body buffer back; the content checks have
// copied what they keep (phish.Extract).
func (m *Message) releaseBody() {
	if m.pooled != nil {
		m.c.bodies.Put(m.pooled)
	}
	m.body, m.pooled = nil, nil
}

// maxContent is how much of a body the content checks read: phishing
// text and links come first; what follows is attachments. At 2 MB the
// copies and decoding of a 1 MB message cost more than its DKIM hash.
const maxContent = 512 << 10

// Finish runs DKIM and DMARC and returns the verdict with the headers.
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
		return *r
	}
	if m.verify == nil {
		m.EndOfHeaders()
	}
	// DKIM and ARC draw on one budget of verification work per message.
	vctx := dkim.WithBudget(m.ctx, c.DKIM.Budget)
	r.DKIM = m.verify.Finish(vctx)
	if r.DKIM == nil {
		r.DKIM = []dkim.Result{} // "dkim": [] in JSON, not null
	}
	in := dmarc.Input{FromDomains: fromDomains(m.fields), SPFResult: string(r.SPF.Result), SourceIP: m.env.ClientIP}
	if len(m.env.Rcpts) > 0 {
		_, in.EnvelopeTo, _ = strings.Cut(m.env.Rcpts[0], "@")
	}
	if _, d, ok := strings.Cut(m.env.MailFrom, "@"); ok {
		in.SPFDomain, in.SPFScope = strings.ToLower(d), "mfrom"
	} else {
		in.SPFDomain, in.SPFScope = strings.ToLower(m.env.Helo), "helo"
	}
	for _, d := range r.DKIM {
		if d.Domain == "" {
			// No d= (the count of signatures past max_signatures, or one
			// too broken to name its domain): nothing to align or report.
			continue
		}
		in.DKIM = append(in.DKIM, dmarc.DKIMResult{Domain: d.Domain, Selector: d.Selector, Result: string(d.Status)})
	}
	r.DMARC = c.DMARC.Evaluate(m.ctx, in)
	if m.arc != nil {
		// Without validation there is no arc= to report, not arc=none.
		r.ARC = m.arc.Finish(vctx)
	}
	if r.ARC.Result == arc.Fail {
		r.Reasons = append(r.Reasons, "arc: fail: "+r.ARC.Reason)
	}
	if r.DMARC.Result == dmarc.Fail {
		if sealer := c.trustedPass(r.ARC, r.DMARC.HeaderFrom); sealer != "" {
			// RFC 9989 §5.4 leaves the final disposition to the receiver;
			// RFC 9990 reports it as the trusted_forwarder override.
			r.Override = "trusted_forwarder " + sealer
			r.DMARC.Disposition = dmarc.PolicyNone
			r.DMARC.Row.Disposition = dmarc.PolicyNone
			r.DMARC.Row.Reasons = append(r.DMARC.Row.Reasons, "trusted_forwarder")
			r.Reasons = append(r.Reasons, fmt.Sprintf("dmarc: fail for %s set aside: trusted ARC sealer %s saw dmarc=pass", r.DMARC.HeaderFrom, sealer))
		}
	}
	switch r.DMARC.Result {
	case dmarc.Fail:
		why := fmt.Sprintf("fail for %s (p=%s, disposition %s): %s", r.DMARC.HeaderFrom, r.DMARC.Policy, r.DMARC.Disposition, r.DMARC.Reason)
		switch r.DMARC.Disposition {
		case dmarc.PolicyReject:
			r.decide(c.Policy.DMARCReject, "dmarc", why, "550 5.7.1 Rejected by DMARC policy for "+r.DMARC.HeaderFrom)
			localPolicy(&r.DMARC.Row, c.Policy.DMARCReject)
		case dmarc.PolicyQuarantine:
			r.decide(c.Policy.DMARCQuarantine, "dmarc", why, "")
			localPolicy(&r.DMARC.Row, c.Policy.DMARCQuarantine)
		default:
			r.Reasons = append(r.Reasons, "dmarc: "+why)
		}
	case dmarc.TempError:
		r.decide(c.Policy.TempError, "dmarc", "temperror: "+r.DMARC.Reason, "451 4.7.5 DMARC check failed temporarily, try again later")
	case dmarc.PermError:
		r.Reasons = append(r.Reasons, "dmarc: permerror: "+r.DMARC.Reason)
	}
	if r.SPF.Result == spf.TempError && r.DMARC.Result != dmarc.Pass {
		r.decide(c.Policy.TempError, "spf", "", "451 4.7.24 SPF check failed temporarily, try again later")
	}
	for _, d := range r.DKIM {
		if d.Status == dkim.TempError && r.DMARC.Result != dmarc.Pass {
			r.decide(c.Policy.TempError, "dkim", "temperror: "+d.Reason, "451 4.7.5 DKIM check failed temporarily, try again later")
		}
	}
	if c.Phish != nil {
		m.score()
	}
	m.releaseBody()
	switch {
	case r.Action == Reject || r.Action == Quarantine || r.DMARC.Result == dmarc.Fail && r.Override == "":
		r.Verdict = "fail"
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
	r.Headers = append(r.Headers, HeaderField{"X-Mailwall-Verdict", fmt.Sprintf(" %s (action=%s; stage=%s)", r.Verdict, r.Action, stages)})
	if r.Phish != nil {
		rules := "none"
		if len(r.Phish.Hits) > 0 {
			rules = strings.Join(r.Phish.Rules(), " ")
		}
		// A mail client rule can sort on the number; the rules say why.
		r.Headers = append(r.Headers, HeaderField{"X-Mailwall-Score", fmt.Sprintf(" %d (%s)", r.Phish.Score, foldRules(rules))})
	}
	return *r
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

// score runs the phishing rules and maps the score to an action.
func (m *Message) score() {
	c, r := m.c, &m.res
	in := phish.Input{Fields: m.fields, Body: m.body, ClientIP: m.env.ClientIP, IPRev: r.IPRev.Result, S25R: r.S25R != "",
		SPF: string(r.SPF.Result), DMARC: r.DMARC.Result, DMARCOverridden: r.Override != "", ARC: string(r.ARC.Result)}
	if r.IPRev.Result == "pass" {
		in.PTRName = r.IPRev.Name
	}
	if r.DMARC.Record != nil {
		in.DMARCPolicy = string(r.DMARC.Policy)
	}
	for _, d := range r.DKIM {
		switch d.Status {
		case dkim.Pass:
			in.DKIMPass = append(in.DKIMPass, d.Domain)
		case dkim.Fail:
			in.DKIMFail = true
		}
	}
	rep := c.Phish.Check(m.ctx, in)
	r.Phish = &rep
	if len(rep.Hits) == 0 {
		return
	}
	rules := strings.Join(rep.Rules(), ", ")
	why := fmt.Sprintf("score %d: %s", rep.Score, rules)
	p := c.Policy
	switch {
	case p.ScoreReject > 0 && rep.Score >= p.ScoreReject:
		r.decide(Reject, "score", why, "550 5.7.1 Message rejected as likely phishing ("+rules+")")
	case p.ScoreQuarantine > 0 && rep.Score >= p.ScoreQuarantine:
		r.decide(Quarantine, "score", why, "")
	case p.ScoreTag > 0 && rep.Score >= p.ScoreTag:
		r.decide(Tag, "score", why, "")
	default:
		r.Reasons = append(r.Reasons, why)
	}
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

// trustedPass returns the first trusted sealer of a passing chain whose
// recorded results say dmarc=pass for the From domain, or "".
func (c *Checker) trustedPass(o arc.Outcome, from string) string {
	if o.Result != arc.Pass || len(c.TrustedSealers) == 0 {
		return ""
	}
	for i, sealer := range o.Sealers {
		if !slices.Contains(c.TrustedSealers, strings.ToLower(sealer)) {
			continue
		}
		h, err := authres.Parse(o.Results[i])
		if err != nil {
			continue
		}
		for _, res := range h.Results {
			if res.Method == "dmarc" && strings.EqualFold(res.Value, "pass") &&
				(res.Prop("header", "from") == "" || strings.EqualFold(res.Prop("header", "from"), from)) {
				return sealer
			}
		}
	}
	return ""
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
	h.Results = append(h.Results, spfRes)
	if len(r.DKIM) == 0 {
		h.Results = append(h.Results, authres.Result{Method: "dkim", Value: "none"})
	}
	for _, d := range r.DKIM {
		res := authres.Result{Method: "dkim", Value: string(d.Status), Comment: d.Reason,
			Props: []authres.Prop{{Type: "header", Name: "d", Value: d.Domain}, {Type: "header", Name: "s", Value: d.Selector}}}
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
		dm.Comment = fmt.Sprintf("p=%s dis=%s", r.DMARC.Policy, r.DMARC.Disposition)
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

// forgedResults lists Authentication-Results fields that claim our
// authserv-id: a sender must not be able to hand us our own verdict
// (RFC 8601 §5).
func forgedResults(fields []dkim.Field, id string) []HeaderReference {
	var out []HeaderReference
	n := 0
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		n++
		if authres.IsOurs(strings.TrimSpace(f.Value()), id) {
			out = append(out, HeaderReference{Name: f.Name, Index: n})
		}
	}
	return out
}

// fromDomains extracts the RFC5322.From domains, as A-labels (RFC 9989
// §5.3.1). Every From field counts: a message with two From fields has two
// author domains.
func fromDomains(fields []dkim.Field) []string {
	var out []string
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "From") {
			continue
		}
		v := strings.TrimSpace(strings.ReplaceAll(f.Value(), "\r\n", ""))
		addrs, err := mail.ParseAddressList(v)
		if err != nil {
			// Unparseable: take anything that looks like @domain, so a
			// malformed From cannot dodge DMARC.
			for _, part := range strings.Split(v, "@")[1:] {
				if end := strings.IndexAny(part, " >,;\t\"()"); end >= 0 {
					part = part[:end]
				}
				if d := strings.TrimRight(part, "."); d != "" {
					out = append(out, toASCII(d))
				}
			}
			continue
		}
		for _, a := range addrs {
			if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
				out = append(out, toASCII(a.Address[i+1:]))
			}
		}
	}
	return out
}

func toASCII(d string) string {
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		return strings.ToLower(a)
	}
	return strings.ToLower(d)
}

// CheckMessage runs the whole pipeline on a message read from r, as the
// milter would during SMTP.
func (c *Checker) CheckMessage(ctx context.Context, env Envelope, r io.Reader) (Result, []dkim.Field, error) {
	m := c.Start(ctx, env)
	br := newReader(r)
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		return Result{}, nil, err
	}
	for _, f := range fields {
		m.Header(f)
	}
	m.EndOfHeaders()
	if _, err := io.Copy(m, br); err != nil {
		return Result{}, nil, err
	}
	return m.Finish(), fields, nil
}
