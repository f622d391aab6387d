package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/debuglog"
	"mailwall/internal/dkim"
	"mailwall/internal/metrics"
	"mailwall/internal/milter"
	"mailwall/internal/report"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// milterFilter adapts the receive pipeline to the milter protocol: one per
// SMTP connection. It only translates; every decision is the pipeline's.
type milterFilter struct {
	pipe    *verdict.Checker
	log     *slog.Logger
	timeout time.Duration
	node    string
	rec     *store.Recorder         // nil: no store
	metrics *metrics.Metrics        // nil: no metrics
	inbox   *reportInbox            // nil: no report addresses
	failure *report.FailureReporter // nil: no failure reports
	noReply uint32                  // the stages Postfix need not wait at
	limits  headerLimits
	rep     *reputation.Reputation // nil: no reputation history
	// rcpt greylists and applies the blocklists at RCPT when the
	// milter does it in place of the policy server (nil: not here).
	rcpt *milterRcptConn
	// debug are log.debug_peers: a client in them gets a detail log
	// through the message's context (nil: none).
	debug *debuglog.Peers

	client   netip.Addr
	host     string // the MTA's name for the client, from connect
	helo     string
	heloHold string // a HELO table said HOLD: quarantine the messages
	env      verdict.Envelope
	fields   []dkim.Field
	msg      *verdict.Message
	ctx      context.Context
	cancel   context.CancelFunc
	// raw collects the message when it is addressed to a report address.
	raw     []byte
	keepRaw bool
	tooBig  bool
	// after is the last verdict's work left for after the reply.
	after func()
	// headerBytes counts the header's octets; overLimit is why the
	// header went past f.limits (the fields are no longer kept).
	headerBytes int
	// bodyBytes counts the body's octets, for the log line's size.
	bodyBytes int64
	overLimit string
}

// headerLimits bound one message's header in the milter
// (milter.max_header_fields, max_header_bytes, too_many_headers). The
// file path (dkim.ReadHeader) stops at the same defaults. Postfix's
// header_size_limit bounds a field, not the header, so without these a
// message of millions of small fields reaches the milter whole.
type headerLimits struct {
	fields, bytes int
	tempfail      bool
}

// milterHeaderLimits reads the limits from the milter section.
func milterHeaderLimits(c config.MilterConfig) headerLimits {
	return headerLimits{fields: c.MaxHeaderFields, bytes: c.MaxHeaderBytes, tempfail: c.TooManyHeaders == "tempfail"}
}

// milterMacros are the macros milterFilter reads: the server keeps no
// others.
func milterMacros() []string { return []string{"i", "auth_authen"} }

// milterMaxConns is milter.max_connections, lowered to half the file
// descriptors the process may open: idle milter connections alone then
// cannot take the descriptors the policy server, the dashboard and the
// store need (Go raises the soft limit to the hard one at start, so this
// bites only where the hard limit is low).
func milterMaxConns(configured int, log *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 || lim.Cur >= uint64(2*configured) {
		return configured
	}
	half := max(int(lim.Cur/2), 1)
	log.Warn("milter.max_connections lowered to half the file descriptor limit", "max_connections", configured, "fd_limit", lim.Cur, "now", half)
	return half
}

// refusal is the answer to a message whose header went past the limits.
// X.3.4 (RFC 3463 §3.4, "message too big for system": a per-message
// limit, physical or administrative) with 552 (RFC 5321 §4.2.2, exceeded
// storage allocation), as Postfix answers past message_size_limit: the
// message is not malformed (5.6.x) and no policy judged it (5.7.x).
func (l headerLimits) refusal(why string) (verdict.Action, string) {
	if l.tempfail {
		return verdict.TempFail, "452 4.3.4 " + why + ", try again later"
	}
	return verdict.Reject, "552 5.3.4 " + why
}

// NoReply tells the milter server at which stages Postfix need not wait
// (milter.NoReplier). When HELO replies are left out, a HELO rule that
// came to refuse after a reload still counts: the pipeline's Start checks
// the HELO again, and the message is refused at its end.
func (f *milterFilter) NoReply() uint32 {
	if f.rcpt != nil {
		return f.noReply &^ milter.ProtoNRRcpt // a recipient may be refused
	}
	return f.noReply
}

func (f *milterFilter) Connect(c milter.Conn, m *milter.Macros) milter.Response {
	f.client = c.Addr
	f.host = c.Hostname
	return milter.Continue
}

func (f *milterFilter) Helo(name string, m *milter.Macros) milter.Response {
	f.helo = name
	act, reply, why := f.pipe.CheckHeloClient(f.client, name)
	if dl := f.debug.Logger(f.client); dl != nil {
		dl.Info("debug: helo", "helo", debuglog.Clip(name, debuglog.MaxValue), "client_name", f.host, "action", string(act), "reason", why, "reply", reply)
	}
	if f.metrics != nil {
		f.metrics.Helo(string(act))
	}
	switch act {
	case verdict.Reject, verdict.TempFail:
		f.log.Info("helo rejected", "client", f.client.String(), "helo", name, "reason", why, "reply", reply)
		f.recordRefusal("helo", act, reply, why)
		return milter.ReplyCode(reply)
	case verdict.Quarantine:
		f.heloHold = why
	}
	return milter.Continue
}

func (f *milterFilter) MailFrom(from string, args []string, m *milter.Macros) milter.Response {
	f.reset()
	f.env = verdict.Envelope{ClientIP: f.client, Helo: f.helo, MailFrom: strings.Trim(from, "<>"), AuthUser: m.Get("auth_authen"), QueueID: m.Get("i"),
		Local: !f.client.IsValid(), ClientName: milterClientName(f.host)}
	return milter.Continue
}

func (f *milterFilter) RcptTo(rcpt string, args []string, m *milter.Macros) milter.Response {
	addr := strings.Trim(rcpt, "<>")
	if f.rcpt != nil {
		reply := f.rcpt.check(f.pipe, f.env, f.host, addr)
		if dl := f.debug.Logger(f.client); dl != nil {
			dl.Info("debug: rcpt", "rcpt", debuglog.Clip(addr, debuglog.MaxValue), "reply", reply)
		}
		if reply != "" {
			f.recordRcptRefusal(addr, reply)
			return milter.ReplyCode(reply)
		}
	}
	f.env.Rcpts = append(f.env.Rcpts, addr)
	if f.inbox != nil && f.inbox.wants(addr) {
		f.keepRaw = true
	}
	return milter.Continue
}

func (f *milterFilter) Header(name, value string) milter.Response {
	if f.overLimit != "" {
		return f.refuse() // the server calls no more after a final answer
	}
	f.headerBytes += len(name) + len(value) + 3 // ":" and CRLF
	switch {
	case f.limits.fields > 0 && len(f.fields) >= f.limits.fields:
		f.overLimit = fmt.Sprintf("Message header has more than %d fields", f.limits.fields)
	case f.limits.bytes > 0 && f.headerBytes > f.limits.bytes:
		f.overLimit = fmt.Sprintf("Message header exceeds %d octets", f.limits.bytes)
	}
	if f.overLimit != "" {
		// Keep nothing more, and let go of what was kept: the verifiers
		// never see the header.
		f.fields, f.raw, f.keepRaw = nil, nil, false
		return f.refuse()
	}
	if f.fields == nil {
		f.fields = make([]dkim.Field, 0, 24) // most headers' fields, not grown 1, 2, 4, 8, 16
	}
	fl := dkim.NewField(name, value)
	// The name as the start of the field's own copy: name is part of
	// the milter's copy of the packet (milter.cpair), not to be kept.
	fl.Name = fl.Raw[:len(name)]
	f.fields = append(f.fields, fl)
	if f.keepRaw {
		f.keep([]byte(name + ": " + strings.ReplaceAll(value, "\n", "\r\n") + "\r\n"))
	}
	return milter.Continue
}

func (f *milterFilter) EndOfHeaders(m *milter.Macros) milter.Response {
	if f.overLimit != "" {
		return f.refuse()
	}
	if f.env.QueueID == "" {
		f.env.QueueID = m.Get("i")
	}
	ctx, cancel := newLazyTimeout(f.timeout)
	f.ctx, f.cancel = debuglog.With(ctx, f.debug.Logger(f.client)), cancel
	f.msg = f.pipe.Start(f.ctx, f.env)
	for _, fl := range f.fields {
		f.msg.Header(fl)
	}
	f.msg.EndOfHeaders()
	if f.keepRaw {
		f.keep([]byte("\r\n"))
	}
	return milter.Continue
}

func (f *milterFilter) Body(chunk []byte) milter.Response {
	f.bodyBytes += int64(len(chunk))
	if f.msg != nil {
		f.msg.Write(chunk)
	}
	if f.keepRaw {
		f.keep(chunk)
	}
	return milter.Continue
}

func (f *milterFilter) EndOfMessage(m *milter.Macros, mod *milter.Modifier) milter.Response {
	if f.overLimit != "" {
		act, reply := f.limits.refusal(f.overLimit)
		f.after = f.afterwards(&verdict.Result{Action: act, Reply: reply, Stage: "limits", Verdict: "fail", Reasons: []string{f.overLimit}}, 0)
		f.reset()
		return milter.ReplyCode(reply)
	}
	if f.msg == nil {
		f.EndOfHeaders(m)
	}
	start := time.Now()
	f.msg.Finish()
	took := time.Since(start)
	r := f.msg.Result() // kept for after the reply: not copied
	defer f.reset()
	f.after = f.afterwards(r, took)
	// Forged results first, from the last so indexes stay right.
	for i := len(r.Remove) - 1; i >= 0; i-- {
		mod.DeleteHeader(uint32(r.Remove[i].Index), r.Remove[i].Name)
	}
	// Inserting at the top in reverse keeps the listed order.
	for i := len(r.Headers) - 1; i >= 0; i-- {
		mod.InsertHeader(0, r.Headers[i].Name, strings.ReplaceAll(r.Headers[i].Value, "\r\n", "\n"))
	}
	if subj := f.pipe.SubjectTagged(*r, f.fields); subj != "" {
		mod.ChangeHeader(1, "Subject", verdict.MilterValue(subj))
	}
	switch r.Action {
	case verdict.Reject, verdict.TempFail:
		// The reply the store records as sent.
		return milter.ReplyCode(r.SentReply())
	case verdict.Quarantine:
		mod.Quarantine("mailwall: " + strings.Join(r.Reasons, "; "))
	}
	if f.heloHold != "" {
		mod.Quarantine("mailwall: " + f.heloHold)
	}
	return milter.Continue
}

// afterwards is the work on a verdict that Postfix need not wait for:
// metrics, the store, reports and the log line. It runs once the reply is
// sent (EndOfMessageSent), so it holds what it needs of the message.
func (f *milterFilter) afterwards(r *verdict.Result, took time.Duration) func() {
	env, client, helo, raw, tooBig, fields := f.env, f.client, f.helo, f.raw, f.tooBig, f.fields
	keepRaw := f.keepRaw
	// The header's octets, the blank line, the body's: the size Postfix
	// passed to the milter (as it logs size= in its qmgr line).
	size := int64(f.headerBytes) + 2 + f.bodyBytes
	return func() {
		if f.metrics != nil {
			f.metrics.Message(r, took)
		}
		var rec *store.Verdict // what the log line can take from (nil: none)
		var msgID string       // the Message-ID field as logged, when rec is not nil
		if f.rec != nil {
			v := r.Record(env, f.node, time.Now())
			v.HeaderFrom, msgID, v.MessageID, v.Subject = verdict.MessageFactsID(fields)
			v.Size = size
			f.rec.Record(v)
			rec = &v
		}
		if f.rep != nil {
			observeReputation(f.rep, f.pipe.Analyzers, r, env)
		}
		if f.failure != nil && r.Action != verdict.TempFail { // a tempfail comes back: reported then
			f.reportFailure(r, client, env, fields)
		}
		if keepRaw && r.Action != verdict.Reject && r.Action != verdict.TempFail {
			// A report must pass DMARC (RFC 9990 §3.3) to be believed:
			// refused ones went with the rest, and those that fail under
			// p=none are stored apart, marked unauthenticated.
			f.inbox.take(raw, tooBig, env.QueueID, report.VerdictAuth(r.DMARC.Result, r.DMARC.HeaderFrom))
		}
		f.logMessage(r, env, client, helo, fields, size, took, rec, msgID)
	}
}

// logMessage writes the "message" line of a verdict. Its attributes are
// typed (LogAttrs): one a message, with the rules joined once, it was a
// tenth of the work after the reply as key-value pairs boxed in any.
// What the store's record v (nil: none) has made already, the DKIM
// summary, the client's address, the rules, and with it msgID, the
// Message-ID field, it takes from there.
func (f *milterFilter) logMessage(r *verdict.Result, env verdict.Envelope, client netip.Addr, helo string, fields []dkim.Field, size int64, took time.Duration,
	v *store.Verdict, msgID string) {
	ctx := context.Background()
	h := f.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	dkimSum, clientIP, rules, score := "", "", []string(nil), 0
	if v != nil {
		dkimSum, rules, score = v.DKIM, v.Rules, v.Score // as Record made them
		if client == env.ClientIP && !client.Is4In6() {
			clientIP = v.ClientIP // Unmap's String, the same for these
		}
	} else {
		dkimSum, rules, score = verdict.DKIMSummary(r.DKIM), r.Rules(), r.Score()
		msgID = verdict.FieldValue(fields, "Message-ID")
	}
	if clientIP == "" {
		clientIP = client.String()
	}
	attrs := [...]slog.Attr{slog.String("queue_id", env.QueueID), slog.String("client", clientIP),
		slog.String("helo", helo), slog.String("from", env.MailFrom), slog.String("action", string(r.Action)), slog.String("stage", r.Stage),
		slog.String("verdict", r.Verdict), slog.String("spf", string(r.SPF.Result)), slog.String("dmarc", r.DMARC.Result),
		slog.String("dkim", dkimSum), slog.String("iprev", r.IPRev.Result), slog.String("arc", string(r.ARC.Result)),
		slog.Int("score", score), slog.String("rules", strings.Join(rules, ",")), slog.String("reasons", strings.Join(r.Reasons, "; ")),
		slog.String("header_from", milterFromDomain(r, fields)), slog.String("message_id", msgID),
		slog.Int64("size", size), slog.Duration("duration", took), slog.String("signed_with", milterSigningKey(r))}
	if tl, ok := h.(*textLog); ok {
		// newLogger's text handler: the line formatted here, the same
		// bytes (TestTextLineAsSlog).
		_ = tl.writeLine(time.Now(), slog.LevelInfo, "message", attrs[:])
		return
	}
	// The record as LogAttrs makes it, without the caller's PC (the
	// handlers newLogger makes print no source): runtime.Callers was a
	// tenth of the line's cost.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "message", 0)
	rec.AddAttrs(attrs[:]...)
	_ = h.Handle(ctx, rec) // as Logger.LogAttrs: a handler's error goes nowhere
}

// recordRefusal records and counts a refusal before any message (source
// helo or connect): Postfix gives the client reply and the client may
// go on (another HELO) or leave. It only queues: the recorder writes.
func (f *milterFilter) recordRefusal(source string, act verdict.Action, reply, why string) {
	if f.metrics != nil {
		f.metrics.Decision(source, string(act))
	}
	if f.rec == nil {
		return
	}
	v := store.Verdict{At: time.Now(), Node: f.node, Source: source, ClientName: milterClientName(f.host), Helo: f.helo,
		Action: string(act), Stage: source, Verdict: "fail", Reply: reply, Reasons: []string{source + ": " + why},
		Details: store.Details{Stages: []store.StageResult{{Stage: source, Result: "fail", Reason: why}}}}
	if f.client.IsValid() {
		v.ClientIP = f.client.Unmap().String()
	}
	f.rec.Record(v)
}

// recordRcptRefusal records and counts the milter's refusal of one
// recipient (greylisting or the DNS blocklists at RCPT, in place of the
// policy server): source rcpt, the reply as Postfix passes it on.
func (f *milterFilter) recordRcptRefusal(rcpt, reply string) {
	act, stage := verdict.Reject, "dnsbl"
	if strings.HasPrefix(reply, "4") {
		act = verdict.TempFail
		if strings.Contains(reply, "reylist") {
			stage = "greylist"
		}
	}
	if f.metrics != nil {
		f.metrics.Decision("rcpt", string(act))
	}
	if f.rec == nil {
		return
	}
	v := store.Verdict{At: time.Now(), Node: f.node, Source: "rcpt", QueueID: f.env.QueueID, ClientName: milterClientName(f.host), Helo: f.helo,
		MailFrom: f.env.MailFrom, Rcpts: []string{rcpt}, Action: string(act), Stage: stage, Verdict: "fail", Reply: reply,
		Reasons: []string{stage + ": " + reply}, Details: store.Details{Stages: []store.StageResult{{Stage: stage, Result: string(act), Reason: reply}}}}
	if f.client.IsValid() {
		v.ClientIP = f.client.Unmap().String()
	}
	f.rec.Record(v)
}

// milterClientName is the client's name as the store keeps it: Postfix
// sends its verified name, or "unknown" (milter8.c: smtpd's
// state->name); Sendmail's "[address]" is "unknown" too.
func milterClientName(host string) string {
	if host == "" || strings.HasPrefix(host, "[") {
		return "unknown"
	}
	return strings.ToLower(host)
}

// milterFromDomain is the header From domain: DMARC's (RFC 7489 §3.1),
// else, for internal mail DMARC does not check, the From field's.
func milterFromDomain(r *verdict.Result, fields []dkim.Field) string {
	if r.DMARC.HeaderFrom != "" {
		return r.DMARC.HeaderFrom
	}
	from := verdict.FieldValue(fields, "From")
	if a, err := mail.ParseAddress(from); err == nil {
		from = a.Address
	}
	if _, d, ok := strings.Cut(from, "@"); ok {
		return strings.ToLower(strings.TrimSuffix(d, ">"))
	}
	return ""
}

// milterSigningKey names the key mailwall signed with, from the
// DKIM-Signature it added: "d=DOMAIN s=SELECTOR a=ALGORITHM"; empty when
// the message was not signed here.
func milterSigningKey(r *verdict.Result) string {
	if !r.Signed {
		return ""
	}
	for _, h := range r.Headers {
		if !strings.EqualFold(h.Name, "DKIM-Signature") {
			continue
		}
		tags := map[string]string{}
		for tag := range strings.SplitSeq(h.Value, ";") {
			name, value, _ := strings.Cut(tag, "=")
			tags[strings.TrimSpace(name)] = strings.Join(strings.Fields(value), "")
		}
		return fmt.Sprintf("d=%s s=%s a=%s", tags["d"], tags["s"], tags["a"])
	}
	return ""
}

// EndOfMessageSent does the verdict's remaining work (milter.AfterReply).
func (f *milterFilter) EndOfMessageSent() {
	if after := f.after; after != nil {
		f.after = nil
		after()
	}
}

// reportFailure hands a message to the failure reporter, which decides
// by the DMARC record's ruf= and fo= whether a report is due.
func (f *milterFilter) reportFailure(r *verdict.Result, client netip.Addr, env verdict.Envelope, fields []dkim.Field) {
	if r.DMARC.Record == nil || len(r.DMARC.Record.RUF) == 0 {
		return
	}
	var header []byte
	for _, fl := range fields {
		header = append(header, fl.Raw...)
	}
	m := &report.FailedMessage{Arrival: time.Now(), SourceIP: client, QueueID: env.QueueID, MailFrom: env.MailFrom, Rcpts: env.Rcpts,
		Delivery: map[verdict.Action]string{verdict.Reject: "reject", verdict.Quarantine: "spam"}[r.Action],
		DMARC:    r.DMARC, SPF: string(r.SPF.Result), SPFDomain: r.SPF.Domain, DKIM: r.DKIM, Header: header}
	if m.Delivery == "" {
		m.Delivery = "delivered"
	}
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "Authentication-Results") {
			m.AuthResults = verdict.OneLine(h.Value)
		}
	}
	f.failure.Report(m)
}

func (f *milterFilter) reset() {
	if f.cancel != nil {
		f.cancel()
	}
	f.msg, f.fields, f.ctx, f.cancel = nil, nil, nil, nil
	f.raw, f.keepRaw, f.tooBig = nil, false, false
	f.headerBytes, f.bodyBytes, f.overLimit = 0, 0, ""
}

// refuse is the answer once the header went past the limits: at a header
// or at end of headers when the MTA waits for one (Postfix does not, by
// the protocol flags negotiated), and at end of message.
func (f *milterFilter) refuse() milter.Response {
	_, reply := f.limits.refusal(f.overLimit)
	return milter.ReplyCode(reply)
}

// keep adds to the copy of a report message, up to the inbox's limit.
func (f *milterFilter) keep(b []byte) {
	if f.tooBig {
		return
	}
	if len(f.raw)+len(b) > maxReportMessage {
		f.tooBig, f.raw = true, nil
		return
	}
	f.raw = append(f.raw, b...)
}

// Abort and Close also finish a verdict whose reply went unnoticed,
// should a server not call EndOfMessageSent.
func (f *milterFilter) Abort() { f.EndOfMessageSent(); f.reset() }
func (f *milterFilter) Close() { f.EndOfMessageSent(); f.reset() }
