// Package verdict is the receive pipeline: connection, HELO, SPF, DKIM and
// DMARC checks in, one action and the headers to add out, with the reason
// for each decision. Protocol adapters (the milter, check-message) feed it;
// it knows nothing of them.
//
// The stages, one file each: connection.go (HELO, iprev, S25R, SPF at
// the envelope), message.go (header and body streaming in),
// authenticate.go (DKIM, ARC, DMARC at end of message), content.go (the
// analyzers of internal/analysis, composed from the config, and the
// score), decision.go (the verdict and the headers).
package verdict

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"mailwall/internal/analysis"
	"mailwall/internal/arc"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/lists"
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
	// ScoreRejectText is what a rejection by the score tells the sender
	// after "550 5.7.1 " ("" for the default): the rules stay in the
	// reasons, for the log and the dashboard.
	ScoreRejectText string
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
	// Analyzers examine the message after authentication, in order
	// (the phishing rules, the classifier, ...); the weights of their
	// hits add up to the score. None: no score.
	Analyzers []analysis.Analyzer
	// Lists are the site's allow and block lists (nil: none), applied
	// after authentication (decision.go).
	Lists      *lists.Cache
	S25R       *conncheck.S25R // nil: no S25R check
	HeloTables []*conncheck.RegexpTable
	// Internal networks and authenticated senders are signed, not checked
	// (OpenDKIM's InternalHosts).
	Internal []netip.Prefix
	// NotChecked networks' mail is passed on as it is: not checked, not
	// signed (OpenDMARC's IgnoreHosts; checks.not_checked).
	NotChecked []netip.Prefix
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
	// NotChecked: the client is in NotChecked; nothing was checked.
	NotChecked bool `json:"not_checked,omitempty"`
	// Phish is the phishing rules' report when they ran (also among
	// Analyses, under "phish").
	Phish *phish.Report `json:"-"`
	// Analyses are the analyzers' findings in the order they ran; each
	// one's Report is marshalled under its name ("phish", "classifier").
	Analyses []Analysis `json:"-"`
	// Hits are every analyzer's hits, in order; the score is their sum.
	Hits []analysis.Hit `json:"-"`
	// Override names the local policy that set a DMARC fail aside
	// (RFC 9990's trusted_forwarder), with the sealer that vouched.
	Override string            `json:"dmarc_override,omitempty"`
	Headers  []HeaderField     `json:"headers"` // to add at the top, in order
	Remove   []HeaderReference `json:"remove,omitempty"`

	// rules are Hits as Rules lists them, made once by the analyzers'
	// stage: the score's reason, X-Mailwall-Score, the store and the
	// log line each read them.
	rules []string
}

// Analysis is one analyzer's finding.
type Analysis struct {
	Name string
	analysis.Result
}

// Score is the sum of the analyzers' hits; 0 when none ran. (Score
// and Rules take a pointer: a value receiver copied the Result, some
// 1.2 KB, at each of the calls every message makes.)
func (r *Result) Score() int { return analysis.Score(r.Hits) }

// Rules lists the hits as "rule=weight"; nil when no analyzer ran. The
// list may be shared with r's copies: it is not to be changed.
func (r *Result) Rules() []string {
	if len(r.Analyses) == 0 {
		return nil
	}
	if r.rules != nil && len(r.rules) == len(r.Hits) {
		return r.rules // made once by the analyzers' stage
	}
	return analysis.Rules(r.Hits)
}

// MarshalJSON adds each analyzer's report under its name, after the
// pipeline's own fields: check-message --json shows "phish" as it did
// before analyzers were pluggable, and a new analyzer's report with it.
func (r Result) MarshalJSON() ([]byte, error) {
	type fields Result // the same fields without this method
	b, err := json.Marshal(fields(r))
	if err != nil || len(r.Analyses) == 0 {
		return b, err
	}
	b = b[:len(b)-1] // reopen the object
	for _, a := range r.Analyses {
		if a.Report == nil {
			continue
		}
		rep, err := json.Marshal(a.Report)
		if err != nil {
			return nil, fmt.Errorf("verdict: %s report: %w", a.Name, err)
		}
		name, _ := json.Marshal(a.Name)
		b = append(append(append(append(b, ','), name...), ':'), rep...)
	}
	return append(b, '}'), nil
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
