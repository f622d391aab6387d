package dmarc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"

	"mailwall/internal/dnsx"
)

// Evaluator checks messages against DMARC. Resolver is required.
type Evaluator struct {
	Resolver dnsx.Resolver
	// PublicSuffixList selects RFC 7489's method: Organizational Domains
	// from the Public Suffix List and policy discovery at the Author
	// Domain and its Organizational Domain only, instead of the tree walk.
	PublicSuffixList bool
	// MaxAuthorDomains bounds the From domains evaluated when a message has
	// several (RFC 9989 §11.5); default 5. Past it the result is permerror.
	MaxAuthorDomains int
	// Sample returns a number in [0, 100) for RFC 7489 pct= sampling;
	// nil uses math/rand.
	Sample func() float64
}

// DKIMResult is one verified signature as DMARC needs it.
type DKIMResult struct {
	Domain, Selector string
	Result           string // pass, fail, ...
}

// Input is what DMARC evaluates.
type Input struct {
	FromDomains []string // RFC5322.From domains (A-labels), in order
	SPFDomain   string   // MAIL FROM domain, or the HELO name for a bounce
	SPFScope    string   // "mfrom" or "helo"
	SPFResult   string
	DKIM        []DKIMResult
	SourceIP    netip.Addr
	EnvelopeTo  string
}

// Result values (RFC 8601 §2.7.2 names).
const (
	Pass      = "pass"
	Fail      = "fail"
	None      = "none"
	TempError = "temperror"
	PermError = "permerror"
)

// Result is one message's DMARC outcome. Row holds what an aggregate
// report needs about it.
type Result struct {
	Result       string  `json:"result"`
	Reason       string  `json:"reason,omitempty"`
	HeaderFrom   string  `json:"header_from"`
	PolicyDomain string  `json:"policy_domain,omitempty"`
	OrgDomain    string  `json:"org_domain,omitempty"`
	Record       *Record `json:"-"`
	// Policy is the policy that applies (p, sp or np); Disposition what the
	// Domain Owner asks for this message after t=y or pct, "none" on pass.
	Policy      Policy `json:"policy,omitempty"`
	Disposition Policy `json:"disposition,omitempty"`
	DKIMAligned bool   `json:"dkim_aligned"`
	SPFAligned  bool   `json:"spf_aligned"`
	AlignedDKIM string `json:"aligned_dkim_domain,omitempty"`
	// PolicyDNSSEC is the DNSSEC status of the policy record's answer:
	// "secure", "insecure", "unvalidated" (a trust_ad server not
	// trusted), or "" with dns.dnssec off. A bogus one is a temperror.
	PolicyDNSSEC string `json:"policy_dnssec,omitempty"`
	Row          Row    `json:"-"`
}

// Row is one evaluation as an aggregate report (RFC 9990) records it.
type Row struct {
	SourceIP     netip.Addr
	HeaderFrom   string
	EnvelopeFrom string
	EnvelopeTo   string
	PolicyDomain string
	Published    PublishedPolicy
	Disposition  Policy
	DKIMAligned  string // pass or fail
	SPFAligned   string
	DKIM         []DKIMResult
	SPFDomain    string
	SPFScope     string
	SPFResult    string
	Reasons      []string // policy_override reasons (sampled_out, ...)
}

// PublishedPolicy is the <policy_published> part of a report.
type PublishedPolicy struct {
	Domain             string
	P, SP, NP          Policy
	ADKIM, ASPF        string
	Testing            bool
	PSD                string
	Pct                int // RFC 7489 records; -1 when absent
	DiscoveryMethod    string
	FailureReportingFO string
}

// errTemp marks DNS failures that make the result temperror.
var errTemp = errors.New("temporary DNS failure")

// Evaluate runs DMARC for a message.
func (e *Evaluator) Evaluate(ctx context.Context, in Input) Result {
	max := e.MaxAuthorDomains
	if max <= 0 {
		max = 5
	}
	domains := uniqueDomains(in.FromDomains)
	switch {
	case len(domains) == 0:
		return Result{Result: PermError, Reason: "no RFC5322.From domain"}
	case len(domains) > max:
		return Result{Result: PermError, Reason: fmt.Sprintf("%d From domains, more than the %d evaluated", len(domains), max), HeaderFrom: strings.Join(domains, ",")}
	}
	w := &walker{e: e, ctx: ctx, cache: map[string]walkEntry{}}
	// RFC 9989 §11.5: with several author domains, evaluate each and keep
	// the strictest outcome among those that fail.
	var worst Result
	for i, d := range domains {
		r := w.evaluate(d, in)
		if i == 0 || worse(r, worst) {
			worst = r
		}
	}
	if len(domains) > 1 {
		worst.Reason = strings.TrimPrefix(worst.Reason+"; ", "; ") + fmt.Sprintf("%d From domains, the strictest result kept", len(domains))
	}
	return worst
}

func uniqueDomains(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// worse orders results: fail with a stricter disposition beats everything,
// then temperror, permerror, fail, none, pass.
func worse(a, b Result) bool {
	rank := func(r Result) int {
		switch r.Result {
		case Fail:
			return 10 + r.Disposition.rank()
		case TempError:
			return 5
		case PermError:
			return 4
		case None:
			return 1
		}
		return 0
	}
	return rank(a) > rank(b)
}

type walkEntry struct {
	rec    *Record
	err    error
	dnssec string // the answer's DNSSEC status, Result.PolicyDNSSEC
}

// walker does the DNS work of one message, remembering every _dmarc
// lookup so the tree walks for the author and the identifiers share them.
type walker struct {
	e     *Evaluator
	ctx   context.Context
	cache map[string]walkEntry
}

// lookup fetches the DMARC record at _dmarc.domain: exactly one valid
// record, or nil (none, or several: §4.10 step 2 discards them all).
func (w *walker) lookup(domain string) (*Record, error) {
	if e, ok := w.cache[domain]; ok {
		return e.rec, e.err
	}
	var rec *Record
	var txts []string
	var sec string
	a, err := w.e.Resolver.Query(w.ctx, "_dmarc."+domain, dns.TypeTXT)
	if err == nil {
		for _, rr := range a.Records {
			if t, ok := rr.(*dns.TXT); ok {
				txts = append(txts, dnsx.JoinTXT(t.Txt))
			}
		}
		if a.Security != dnsx.Unvalidated || a.SecurityReason != "" {
			sec = a.Security.String()
		}
	}
	if err != nil {
		if dnsx.IsTemporary(err) {
			err = fmt.Errorf("%w: _dmarc.%s: %v", errTemp, domain, err)
		} else {
			err = nil // a name that cannot exist has no record
		}
	}
	if err == nil {
		n := 0
		for _, t := range txts {
			if r, perr := ParseRecord(t); perr == nil {
				rec = r
				n++
			}
		}
		if n != 1 {
			rec = nil
		}
	}
	w.cache[domain] = walkEntry{rec, err, sec}
	return rec, err
}

type found struct {
	domain string
	rec    *Record
}

// walk is the DNS Tree Walk of §4.10 from start: at most eight queries,
// stopping at a record with psd=y or psd=n.
func (w *walker) walk(start string) ([]found, error) {
	var out []found
	labels := dns.SplitDomainName(start)
	for i := 0; i < len(labels); {
		d := strings.Join(labels[i:], ".")
		rec, err := w.lookup(d)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			out = append(out, found{d, rec})
			if rec.PSD == 'y' || rec.PSD == 'n' {
				break
			}
		}
		// Step 4: from eight labels or more, jump to the last seven.
		if rest := len(labels) - i; rest >= 8 {
			i = len(labels) - 7
		} else {
			i++
		}
	}
	return out, nil
}

// orgDomain is the Organizational Domain of d (§4.10.2 selection, or the
// Public Suffix List in RFC 7489 mode).
func (w *walker) orgDomain(d string) (string, []found, error) {
	if w.e.PublicSuffixList {
		org, err := publicsuffix.EffectiveTLDPlusOne(d)
		if err != nil {
			return d, nil, nil
		}
		return org, nil, nil
	}
	recs, err := w.walk(d)
	if err != nil {
		return "", nil, err
	}
	return selectOrg(d, recs), recs, nil
}

// selectOrg applies §4.10.2's selection, longest name to shortest.
func selectOrg(start string, recs []found) string {
	for _, f := range recs {
		if f.rec.PSD == 'n' {
			return f.domain
		}
		if f.rec.PSD == 'y' && f.domain != start {
			// The Organizational Domain is one label below the PSD.
			labels := dns.SplitDomainName(start)
			n := dns.CountLabel(f.domain) + 1
			return strings.Join(labels[len(labels)-n:], ".")
		}
	}
	if len(recs) > 0 {
		return recs[len(recs)-1].domain
	}
	return start
}

// aligned reports whether identifier id aligns with the author domain.
func (w *walker) aligned(id, author, authorOrg string, mode byte) (bool, error) {
	id = strings.TrimSuffix(strings.ToLower(id), ".")
	if id == author {
		return true, nil
	}
	if mode == 's' || id == "" {
		return false, nil
	}
	org, _, err := w.orgDomain(id)
	if err != nil {
		return false, err
	}
	return org == authorOrg, nil
}

func (w *walker) evaluate(author string, in Input) Result {
	res := Result{HeaderFrom: author}
	res.Row = Row{SourceIP: in.SourceIP, HeaderFrom: author, EnvelopeTo: in.EnvelopeTo, DKIM: in.DKIM,
		SPFDomain: in.SPFDomain, SPFScope: in.SPFScope, SPFResult: in.SPFResult}
	if in.SPFScope == "mfrom" {
		res.Row.EnvelopeFrom = in.SPFDomain
	}
	rec, policyDomain, org, err := w.discover(author)
	if err != nil {
		res.Result, res.Reason = TempError, err.Error()
		return res
	}
	if rec == nil {
		res.Result, res.Reason = None, "no DMARC policy record"
		return res
	}
	// §4.10.1: no valid p=, or an invalid sp=/np=: p=none if rua= has a
	// valid address, else no DMARC processing.
	if !rec.PValid || rec.SPNPInvalid {
		if len(rec.RUA) == 0 {
			res.Result, res.Reason = None, "policy record has no valid p= and no rua="
			return res
		}
		rec = withPolicyNone(rec)
	}
	res.Record, res.PolicyDomain, res.OrgDomain = rec, policyDomain, org
	res.PolicyDNSSEC = w.cache[policyDomain].dnssec
	res.Policy = rec.P
	if policyDomain != author {
		res.Policy = rec.P
		if rec.SP != "" {
			res.Policy = rec.SP
		}
		if rec.NP != "" {
			exists, err := w.exists(author)
			if err != nil {
				res.Result, res.Reason = TempError, err.Error()
				return res
			}
			if !exists {
				res.Policy = rec.NP
			}
		}
	}
	res.Row.PolicyDomain = policyDomain
	res.Row.Published = published(policyDomain, rec, w.e.PublicSuffixList)

	for _, d := range in.DKIM {
		if d.Result != "pass" {
			continue
		}
		ok, err := w.aligned(d.Domain, author, org, rec.ADKIM)
		if err != nil {
			res.Result, res.Reason = TempError, err.Error()
			return res
		}
		if ok {
			res.DKIMAligned, res.AlignedDKIM = true, strings.ToLower(d.Domain)
			break
		}
	}
	if in.SPFResult == "pass" {
		ok, err := w.aligned(in.SPFDomain, author, org, rec.ASPF)
		if err != nil {
			res.Result, res.Reason = TempError, err.Error()
			return res
		}
		res.SPFAligned = ok
	}
	res.Row.DKIMAligned, res.Row.SPFAligned = passFail(res.DKIMAligned), passFail(res.SPFAligned)
	if res.DKIMAligned || res.SPFAligned {
		res.Result, res.Disposition = Pass, PolicyNone
		// RFC 9990 reports a pass under an enforcing policy as "pass"
		// and keeps "none" for a pass under p=none.
		res.Row.Disposition = PolicyNone
		if res.Policy != PolicyNone {
			res.Row.Disposition = ReportPass
		}
		return res
	}
	res.Result = Fail
	res.Disposition = res.Policy
	switch {
	case rec.Testing && res.Policy != PolicyNone:
		res.Disposition = res.Policy.downgrade()
		res.Reason = "t=y: policy applied one level down"
		res.Row.Reasons = append(res.Row.Reasons, "policy_test_mode")
	case rec.Pct >= 0 && rec.Pct < 100 && res.Policy != PolicyNone:
		// RFC 7489 §6.6.4: outside the sampled percentage the next less
		// strict policy applies.
		if w.sample() >= float64(rec.Pct) {
			res.Disposition = res.Policy.downgrade()
			res.Reason = fmt.Sprintf("pct=%d: not sampled, policy applied one level down", rec.Pct)
			res.Row.Reasons = append(res.Row.Reasons, "sampled_out")
		}
	}
	if res.Reason == "" {
		res.Reason = "no aligned identifier passed"
	}
	res.Row.Disposition = res.Disposition
	return res
}

func (w *walker) sample() float64 {
	if w.e.Sample != nil {
		return w.e.Sample()
	}
	return rand.Float64() * 100
}

// discover finds the policy record for an author domain (§4.10.1): the
// author's own, else the Organizational Domain's, else the PSD's.
func (w *walker) discover(author string) (rec *Record, policyDomain, org string, err error) {
	if w.e.PublicSuffixList {
		if rec, err = w.lookup(author); err != nil || rec != nil {
			org, _, _ = w.orgDomain(author)
			return rec, author, org, err
		}
		org, _, _ = w.orgDomain(author)
		if org == author {
			return nil, "", org, nil
		}
		rec, err = w.lookup(org)
		return rec, org, org, err
	}
	org, recs, err := w.orgDomain(author)
	if err != nil {
		return nil, "", "", err
	}
	if len(recs) > 0 && recs[0].domain == author {
		return recs[0].rec, author, org, nil
	}
	for _, f := range recs {
		if f.domain == org {
			return f.rec, org, org, nil
		}
	}
	for _, f := range recs {
		if f.rec.PSD == 'y' {
			return f.rec, f.domain, org, nil
		}
	}
	return nil, "", org, nil
}

// exists reports whether a domain exists: not NXDOMAIN (RFC 8020, RFC
// 9989 §3.2.13).
func (w *walker) exists(d string) (bool, error) {
	a, err := w.e.Resolver.Query(w.ctx, d, dns.TypeA)
	if err != nil {
		if dnsx.IsTemporary(err) {
			return false, fmt.Errorf("%w: %s: %v", errTemp, d, err)
		}
		return false, nil
	}
	return !a.NXDomain(), nil
}

func withPolicyNone(r *Record) *Record {
	c := *r
	c.P, c.PValid, c.SP, c.NP = PolicyNone, true, "", ""
	return &c
}

func passFail(b bool) string {
	if b {
		return "pass"
	}
	return "fail"
}

func published(domain string, r *Record, psl bool) PublishedPolicy {
	p := PublishedPolicy{Domain: domain, P: r.P, SP: r.SP, NP: r.NP, ADKIM: string(r.ADKIM), ASPF: string(r.ASPF),
		Testing: r.Testing, PSD: string(r.PSD), Pct: r.Pct, DiscoveryMethod: "treewalk", FailureReportingFO: strings.Join(r.FO, ":")}
	if psl {
		p.DiscoveryMethod = "psl"
	}
	return p
}
