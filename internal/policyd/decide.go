package policyd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"mailwall/internal/greylist"
	"mailwall/internal/spf"
)

// RejectPolicy says which SPF results are rejected, with policyd-spf.conf's
// names.
type RejectPolicy string

// The policies of HELO_reject and Mail_From_reject.
const (
	RejectFail       RejectPolicy = "Fail"         // Fail
	RejectSoftfail   RejectPolicy = "Softfail"     // Fail, Softfail
	RejectNotPass    RejectPolicy = "SPF_Not_Pass" // Fail, Softfail, Neutral
	RejectNull       RejectPolicy = "Null"         // HELO only: Fail, when the sender is null
	RejectNever      RejectPolicy = "False"        // header only
	RejectNoCheck    RejectPolicy = "No_Check"     // do not check this identity
	defaultReasonMsg              = "Message {rejectdefer} due to: {spf}."
)

// Options are the policyd-spf.conf equivalents.
type Options struct {
	// Observe, when set, hears every decision and how long it took (for
	// metrics); it must not block.
	Observe func(resp Response, took time.Duration)
	// ObserveGreylist, when set, hears every greylisting decision (for
	// metrics); it must not block.
	ObserveGreylist func(greylist.Decision)
	// ObserveHelo, when set, hears every HELO check (helo_reject not
	// "no_check") with the action its result alone leads to (for
	// metrics); it must not block.
	ObserveHelo func(result spf.Result, act Action)

	HeloReject      RejectPolicy
	MailFromReject  RejectPolicy
	PermErrorReject bool
	TempErrorDefer  bool
	SkipAddresses   []netip.Prefix // not checked, header says so
	AllowIPs        []netip.Prefix // relays not checked
	AllowDomains    []string       // clients passing SPF for these are not checked
	HideReceiver    bool
	ReasonMessage   string
	DeferOnError    bool // internal failure: DEFER_IF_PERMIT, not DUNNO
	// Blocklists are asked about the client before SPF (nil: none).
	Blocklists *Blocklists
}

// Action is a policy answer's kind.
type Action string

// Answers.
const (
	Dunno   Action = "DUNNO"
	Prepend Action = "PREPEND"
	Reject  Action = "REJECT"
	Defer   Action = "DEFER_IF_PERMIT"
)

// Response is one decision, before it is written as "action=...".
type Response struct {
	Action Action
	Text   string // header for PREPEND, reply text for REJECT/DEFER
	// Outcome of the check that decided, for logs (zero for skips).
	Outcome spf.Outcome
	// exempt marks the answers of skip_addresses, allow_ips and
	// allow_domains: those clients are not greylisted either.
	exempt bool
	// allowlisted: the allow lists' score exempts the client from
	// greylisting; greyReason: the blocklists' score greylists it.
	allowlisted bool
	greyReason  string
	// blocklisted: the blocklists decided, SPF was not asked.
	blocklisted bool
	// listHit: the site's allow or block list decided (logged by
	// logList, not as SPF).
	listHit bool
	// failed: a panic inside the checks answered (safeDecide).
	failed bool
}

// stage names the check that decided r, for the store: lists, dnsbl,
// error or spf.
func (r Response) stage() string {
	switch {
	case r.listHit:
		return "lists"
	case r.blocklisted:
		return "dnsbl"
	case r.failed:
		return "error"
	}
	return "spf"
}

// Decision is one refusal the policy server answered (REJECT or
// DEFER_IF_PERMIT), as the store keeps it: from the request, who asked
// about what, and the answer.
type Decision struct {
	At            time.Time
	ClientIP      string // as Postfix sent it, unmapped
	ClientName    string // Postfix's verified client name, "unknown" when none
	Helo          string
	Sender        string
	Recipient     string
	QueueID       string // Postfix sends it once the queue file is open
	ProtocolState string // RCPT, DATA, END-OF-MESSAGE...
	Instance      string
	SASL          bool
	Action        string // "reject" or "tempfail"
	// Stage is the check that refused: spf, dnsbl, greylist, lists, or
	// error (the checks failed and policyd.defer_on_error deferred).
	Stage string
	// Answer is the action line's text; Reply the SMTP reply Postfix
	// makes of it (see PostfixReply).
	Answer, Reply string
	// SPF is the SPF outcome when SPF decided (zero otherwise).
	SPF spf.Outcome
}

// SetRecord makes every later refusal heard by f (nil: none), which must
// not block: the store's recorder queues it. It may be set while serving.
func (s *Server) SetRecord(f func(Decision)) {
	if f == nil {
		s.record.Store(nil)
		return
	}
	s.record.Store(&f)
}

// recordRefusal hands a refusal to the record hook, if any.
func (s *Server) recordRefusal(req Request, resp Response, stage string) {
	f := s.record.Load()
	if f == nil {
		return
	}
	ip := req["client_address"]
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.Unmap().String()
	}
	d := Decision{At: time.Now(), ClientIP: ip, ClientName: req["client_name"], Helo: req["helo_name"], Sender: req["sender"],
		Recipient: req["recipient"], QueueID: req["queue_id"], ProtocolState: req["protocol_state"], Instance: req["instance"],
		SASL: req["sasl_username"] != "", Action: "reject", Stage: stage, Answer: strings.TrimPrefix(resp.Line(), "action="),
		Reply: PostfixReply(req, resp)}
	if resp.Action == Defer {
		d.Action = "tempfail"
	}
	if stage == "spf" {
		d.SPF = resp.Outcome
	}
	(*f)(d)
}

// PostfixReply is the SMTP reply Postfix makes of a refusal when the
// policy service is in smtpd_recipient_restrictions (as postfix-config
// puts it), by smtpd_check.c's check_table_result: "NNN X.Y.Z text"
// keeps its code and status; REJECT is 554 5.7.1 and DEFER_IF_PERMIT
// 450 4.7.1 (the defaults of access_map_reject_code and
// access_map_defer_code), a status at the text's start taking the place
// of 5.7.1 or 4.7.1; and before the text, "<recipient>: Recipient
// address rejected: " (or the state's own words outside RCPT).
func PostfixReply(req Request, resp Response) string {
	text := resp.Text
	code, status := "554", "5.7.1"
	if resp.Action == Defer {
		code, status = "450", "4.7.1"
	} else if c, rest, ok := strings.Cut(text, " "); ok && len(c) == 3 && (c[0] == '4' || c[0] == '5') {
		code, text = c, rest
	}
	if st, rest, ok := strings.Cut(text, " "); ok && len(st) >= 5 && st[1] == '.' && (st[0] == '4' || st[0] == '5') {
		status, text = st, rest
	}
	what, name := "Recipient address", req["recipient"]
	switch req["protocol_state"] {
	case "CONNECT":
		what, name = "Client host", req["client_name"]+"["+req["client_address"]+"]"
	case "EHLO", "HELO":
		what, name = "Helo command", req["helo_name"]
	case "MAIL":
		what, name = "Sender address", req["sender"]
	case "DATA", "END-OF-MESSAGE", "BDAT":
		what = "Data command"
	}
	if name == "" {
		return code + " " + status + " " + what + " rejected: " + text
	}
	return code + " " + status + " <" + name + ">: " + what + " rejected: " + text
}

// Line is the response as sent to Postfix.
func (r Response) Line() string {
	switch r.Action {
	case Prepend:
		return "action=PREPEND " + r.Text
	case Reject:
		return "action=" + r.Text
	case Defer:
		return "action=DEFER_IF_PERMIT " + r.Text
	}
	return "action=DUNNO"
}

// rejected reports whether policy p rejects result r (policyd-spf's
// _get_resultcodes).
func (o *Options) action(p RejectPolicy, r spf.Result) Action {
	if p == RejectNever {
		return Prepend
	}
	switch r {
	case spf.Fail:
		return Reject
	case spf.Softfail:
		if p == RejectSoftfail || p == RejectNotPass {
			return Reject
		}
	case spf.Neutral:
		if p == RejectNotPass {
			return Reject
		}
	case spf.TempError:
		if o.TempErrorDefer {
			return Defer
		}
	case spf.PermError:
		if o.PermErrorReject {
			return Reject
		}
	}
	return Prepend
}

// decide runs the checks for one request: the site's allow and block
// lists, skip lists, the DNS blocklists, then SPF in policyd-spf's
// order, HELO then MAIL FROM.
func (s *Server) decide(ctx context.Context, ru *rules, req Request) Response {
	o := &ru.opts
	ip, err := netip.ParseAddr(req["client_address"])
	if err != nil {
		s.log.Warn("policy request without a valid client_address: DUNNO", "client_address", req["client_address"])
		return Response{Action: Dunno}
	}
	ip = ip.Unmap()
	sender := strings.ToLower(req["sender"])
	helo := strings.ToLower(req["helo_name"])
	recipient := strings.ToLower(req["recipient"])
	if o.HideReceiver || recipient == "" {
		recipient = ""
	}
	detail := func() string {
		return fmt.Sprintf("client-ip=%s; helo=%s; envelope-from=%s; receiver=%s", ip,
			commentValue(orUnknown(helo)), commentValue(orUnknown(sender)), commentValue(orUnknown(recipient)))
	}
	set := s.listSet()
	if req["sasl_username"] != "" {
		// Our own users, wherever they roam (as the blocklists): a
		// client network blocked for spam must not refuse them.
		set = nil
	}
	if set != nil {
		if resp := s.checkListsBefore(set, ip, sender, req, detail); resp != nil {
			return *resp
		}
	}
	for _, skip := range []struct {
		list    []netip.Prefix
		comment string
	}{{o.SkipAddresses, "SPF check N/A for local connections - "}, {o.AllowIPs, "SPF skipped for whitelisted relay - "}} {
		for _, p := range skip.list {
			if p.Contains(ip) {
				return Response{Action: Prepend, Text: "X-Comment: " + skip.comment + detail(), exempt: true}
			}
		}
	}
	for _, d := range o.AllowDomains {
		if out := ru.checker.CheckHost(ctx, ip, d, "postmaster@"+d, helo); out.Result == spf.Pass {
			return Response{Action: Prepend, Text: "X-Comment: SPF skipped for whitelisted relay domain - " + detail(), exempt: true}
		}
	}
	bl := s.checkBlocklists(ctx, ru, ip, req)
	if bl.resp != nil {
		resp := *bl.resp
		resp.blocklisted = true
		return resp
	}
	resp := ru.decideSPF(ctx, ip, sender, helo, recipient)
	resp.allowlisted, resp.greyReason = bl.allowlisted, bl.greyReason
	if set != nil {
		s.checkListsAfter(set, sender, &resp, req)
	}
	return resp
}

// decideSPF checks HELO, then MAIL FROM, as policyd-spf does.
func (ru *rules) decideSPF(ctx context.Context, ip netip.Addr, sender, helo, recipient string) Response {
	o := &ru.opts
	if sender == "" && helo == "" {
		return Response{Action: Dunno}
	}
	if helo == "" {
		// policyd-spf: with no HELO, the sender's domain stands in.
		helo = "unknown"
		if _, d, ok := strings.Cut(sender, "@"); ok {
			helo = d
		}
	}
	hdr := spf.HeaderInfo{ClientIP: ip, Helo: helo, EnvelopeFrom: sender, Receiver: recipient}

	checked := false
	var heloOut spf.Outcome
	var heloAct Action
	if o.HeloReject != RejectNoCheck {
		checked = true
		heloOut = ru.checker.CheckHelo(ctx, ip, helo)
		heloAct = o.action(o.HeloReject, heloOut.Result)
		if o.HeloReject == RejectNull && sender != "" {
			heloAct = Prepend // Null: HELO results count only for bounces
		}
		if o.ObserveHelo != nil {
			o.ObserveHelo(heloOut.Result, heloAct)
		}
		if heloAct == Reject || heloAct == Defer || sender == "" {
			return ru.respond(heloAct, heloOut, hdr)
		}
	}
	if sender == "" || o.MailFromReject == RejectNoCheck {
		if !checked {
			return Response{Action: Dunno}
		}
		return ru.respond(heloAct, heloOut, hdr)
	}
	out := ru.checker.CheckMailFrom(ctx, ip, sender, helo)
	act := o.action(o.MailFromReject, out.Result)
	if act == Prepend && out.Result == spf.None && checked && heloOut.Result != spf.None {
		// As policyd-spf: a HELO result says more than a MAIL FROM "none".
		return ru.respond(heloAct, heloOut, hdr)
	}
	return ru.respond(act, out, hdr)
}

// respond builds the answer for one check's outcome.
func (ru *rules) respond(act Action, out spf.Outcome, hdr spf.HeaderInfo) Response {
	switch act {
	case Reject, Defer:
		why := out.Explanation
		if out.Result != spf.Fail {
			why = "SPF " + spf.ResultName(out.Result)
			if out.Problem != "" {
				why += " (" + out.Problem + ")"
			}
		}
		verb := "rejected"
		if act == Defer {
			verb = "deferred"
		}
		msg := strings.NewReplacer("{rejectdefer}", verb, "{spf}", why, "{url}", "").Replace(ru.opts.ReasonMessage)
		msg = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, msg)
		// RFC 7372 §3.2: 5.7.23 for an SPF failure, 5.7.24 (4.7.24) for
		// a permerror or temperror.
		code := "550 5.7.23 "
		if out.Result == spf.PermError || out.Result == spf.TempError {
			code = "550 5.7.24 "
		}
		if act == Defer {
			return Response{Action: Defer, Text: "4.7.24 " + msg, Outcome: out}
		}
		return Response{Action: Reject, Text: code + msg, Outcome: out}
	}
	return Response{Action: Prepend, Text: "Received-SPF: " + spf.ReceivedSPF(out, hdr), Outcome: out}
}

// maxCommentValue bounds each SMTP-supplied value in an X-Comment: the
// longest RFC 5321 path (§4.5.3.1.3) is 256 octets, a domain 255.
const maxCommentValue = 256

// commentValue keeps an SMTP-supplied value (HELO, sender, recipient) in
// an X-Comment header on one line and in one field, as spf.ReceivedSPF
// does for Received-SPF: controls, spaces and ';' become '_' (a CR or LF
// would start a header of the client's choosing), and it is cut to
// maxCommentValue octets on a character boundary.
func commentValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == ';' || (r >= 0x80 && r < 0xa0) {
			return '_'
		}
		return r
	}, s)
	if len(s) <= maxCommentValue {
		return s
	}
	cut := maxCommentValue
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func orUnknown(s string) string {
	if s == "" {
		return "<UNKNOWN>"
	}
	return s
}
