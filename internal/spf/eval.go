package spf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// evaluator holds the state of one check_host() run, shared across
// include and redirect recursion so the limits of §4.6.4 apply to the
// whole evaluation.
type evaluator struct {
	ctx                 context.Context
	c                   *Checker
	ip                  netip.Addr
	env                 macroEnv
	lookups, voids      int
	maxLookups, maxVoid int
	decider             string

	ptrDone  bool
	ptrValid []string

	deadline time.Time // zero: no bound beyond ctx

	// dnssec is the weakest DNSSEC status of the answers the evaluation
	// used (Outcome.DNSSEC); seen tells whether a validator spoke.
	dnssec     dnsx.Security
	dnssecSeen bool
}

// errTooSlow ends an evaluation that ran past Checker.Timeout.
var errTooSlow = errors.New("SPF evaluation time limit exceeded")

// Query makes every lookup of the evaluation go through the time limit:
// RFC 7208 §4.6.4 lets receivers bound the whole evaluation (at least 20
// seconds recommended) and return temperror past it. Checking the clock
// before each lookup costs less than a timer per evaluation; the overrun is
// at most one lookup's own timeout.
func (e *evaluator) Query(ctx context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	if !e.deadline.IsZero() && time.Now().After(e.deadline) {
		return nil, &dnsx.Error{Name: name, Type: qtype, Temporary: true, Err: errTooSlow}
	}
	a, err := e.c.Resolver.Query(ctx, name, qtype)
	if err == nil && (a.Security != dnsx.Unvalidated || a.SecurityReason != "") {
		// Unvalidated < Insecure < Secure: one unprotected answer makes
		// the whole evaluation unprotected.
		if !e.dnssecSeen || secRank(a.Security) < secRank(e.dnssec) {
			e.dnssec, e.dnssecSeen = a.Security, true
		}
	}
	return a, err
}

func secRank(s dnsx.Security) int {
	switch s {
	case dnsx.Secure:
		return 2
	case dnsx.Insecure:
		return 1
	}
	return 0
}

// evalError ends an evaluation with permerror or temperror.
type evalError struct {
	result Result
	msg    string
}

func (e *evalError) Error() string { return e.msg }

func permErr(format string, args ...any) error {
	return &evalError{PermError, fmt.Sprintf(format, args...)}
}

func tempErr(err error) error {
	return &evalError{TempError, err.Error()}
}

// checkHost is §4: fetch and evaluate the record of domain.
func (e *evaluator) checkHost(domain string, depth int) (Result, string, error) {
	if !validDomain(domain) {
		return None, "", fmt.Errorf("%q is not a valid domain name", domain)
	}
	rec, res, err := e.fetch(domain)
	if rec == nil {
		return res, "", err
	}
	saved := e.env.domain
	e.env.domain = domain
	defer func() { e.env.domain = saved }()

	for _, d := range rec.Directives {
		match, err := e.match(&d, domain, depth)
		if err != nil {
			var ee *evalError
			if errors.As(err, &ee) {
				return ee.result, "", err
			}
			return PermError, "", err
		}
		if match {
			e.decider = d.Text
			res := qualifierResult(d.Qualifier)
			if res == Fail && rec.Exp != nil {
				return res, e.explain(rec.Exp), nil
			}
			return res, "", nil
		}
	}
	if rec.Redirect != nil {
		// §6.1: only when no mechanism matched (an "all" always does).
		if err := e.countLookup(); err != nil {
			return PermError, "", err
		}
		target := e.target(rec.Redirect.spec, domain)
		res, expl, err := e.checkHost(target, depth+1)
		if res == None {
			// §6.1: a redirect to a domain without a record is permerror.
			if err == nil {
				err = fmt.Errorf("redirect target %s has no SPF record", target)
			}
			return PermError, "", fmt.Errorf("redirect=%s: %w", target, err)
		}
		e.decider = "redirect=" + target + " " + e.decider
		return res, expl, err
	}
	return Neutral, "", nil
}

// fetch looks up and selects the SPF record of domain (§4.4, §4.5). A nil
// record comes with the result to return.
func (e *evaluator) fetch(domain string) (*Record, Result, error) {
	txts, err := dnsx.TXT(e.ctx, e, domain)
	if err != nil {
		if dnsx.IsTemporary(err) {
			return nil, TempError, err
		}
		return nil, None, err
	}
	var spf []string
	for _, t := range txts {
		if IsSPF(t) {
			spf = append(spf, t)
		}
	}
	switch len(spf) {
	case 0:
		return nil, None, nil
	case 1:
	default:
		return nil, PermError, fmt.Errorf("%s has %d SPF records", domain, len(spf))
	}
	rec, err := e.c.parse(spf[0])
	if err != nil {
		return nil, PermError, fmt.Errorf("%s: %w", domain, err)
	}
	return rec, None, nil
}

func qualifierResult(q byte) Result {
	switch q {
	case '-':
		return Fail
	case '~':
		return Softfail
	case '?':
		return Neutral
	}
	return Pass
}

func (e *evaluator) countLookup() error {
	e.lookups++
	if e.lookups > e.maxLookups {
		return permErr("DNS lookup limit of %d exceeded", e.maxLookups)
	}
	return nil
}

func (e *evaluator) countVoid() error {
	e.voids++
	if e.voids > e.maxVoid {
		return permErr("Void lookup limit of %d exceeded", e.maxVoid)
	}
	return nil
}

// target expands a domain-spec, or returns the current domain when the
// mechanism has none. §7.3: an expansion over 253 octets loses labels on
// the left until it fits.
func (e *evaluator) target(spec macroString, domain string) string {
	if spec == nil {
		return domain
	}
	t := strings.TrimSuffix(spec.expand(&e.env), ".")
	for len(t) > 253 {
		i := strings.IndexByte(t, '.')
		if i < 0 {
			break
		}
		t = t[i+1:]
	}
	return strings.ToLower(t)
}

// queryable reports whether a DNS query can be made for name: a target
// with an empty or over-long label is treated as non-existent.
func queryable(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

func (e *evaluator) addrType() uint16 {
	if e.ip.Is4() {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// match evaluates one mechanism (§5).
func (e *evaluator) match(d *Directive, domain string, depth int) (bool, error) {
	switch d.Mechanism {
	case "all":
		return true, nil
	case "ip4", "ip6":
		return d.net.Addr().Is4() == e.ip.Is4() && d.net.Contains(e.ip), nil
	}
	if err := e.countLookup(); err != nil {
		return false, err
	}
	target := e.target(d.domain, domain)
	switch d.Mechanism {
	case "include":
		res, _, err := e.checkHost(target, depth+1)
		switch res {
		case Pass:
			return true, nil
		case Fail, Softfail, Neutral:
			return false, nil
		case TempError:
			return false, &evalError{TempError, fmt.Sprintf("include:%s: %v", target, err)}
		case None:
			// §5.2: an include of a domain without a record is permerror.
			return false, permErr("include:%s: no SPF record", target)
		default:
			return false, &evalError{PermError, fmt.Sprintf("include:%s: %v", target, err)}
		}
	case "a":
		if !queryable(target) {
			return false, nil
		}
		ips, err := e.lookupIPs(target, e.addrType())
		if err != nil {
			return false, err
		}
		if len(ips) == 0 {
			return false, e.countVoid()
		}
		return e.anyInCIDR(ips, d), nil
	case "mx":
		if !queryable(target) {
			return false, nil
		}
		mxs, err := dnsx.MX(e.ctx, e, target)
		if err != nil {
			return false, e.dnsErr(err)
		}
		if len(mxs) == 0 {
			return false, e.countVoid()
		}
		// §4.6.4: no more than 10 address lookups per mx mechanism.
		if len(mxs) > 10 {
			return false, permErr("mx:%s has %d MX records, limit 10", target, len(mxs))
		}
		for _, mx := range mxs {
			if !queryable(mx) {
				continue
			}
			ips, err := e.lookupIPs(mx, e.addrType())
			if err != nil {
				return false, err
			}
			if e.anyInCIDR(ips, d) {
				return true, nil
			}
		}
		return false, nil
	case "ptr":
		// §5.5: DNS errors here make the mechanism not match, no more.
		names, err := dnsx.PTR(e.ctx, e, e.ip)
		if err != nil {
			return false, nil
		}
		if len(names) == 0 {
			return false, e.countVoid()
		}
		for _, n := range e.validate(names) {
			if n == target || strings.HasSuffix(n, "."+target) {
				return true, nil
			}
		}
		return false, nil
	case "exists":
		if !queryable(target) {
			return false, nil
		}
		// §5.7: always an A query, whatever the client's address family.
		ips, err := e.lookupIPs(target, dns.TypeA)
		if err != nil {
			return false, err
		}
		if len(ips) == 0 {
			return false, e.countVoid()
		}
		return true, nil
	}
	return false, permErr("unknown mechanism %q", d.Mechanism)
}

func (e *evaluator) lookupIPs(name string, qtype uint16) ([]netip.Addr, error) {
	ips, err := dnsx.IPs(e.ctx, e, name, qtype)
	if err != nil {
		return nil, e.dnsErr(err)
	}
	return ips, nil
}

// dnsErr maps a lookup failure: timeouts and SERVFAIL are temperror (§5);
// a name that cannot be queried is treated as having no records.
func (e *evaluator) dnsErr(err error) error {
	if dnsx.IsTemporary(err) {
		return tempErr(err)
	}
	return nil
}

func (e *evaluator) anyInCIDR(ips []netip.Addr, d *Directive) bool {
	bits := d.cidr6
	if e.ip.Is4() {
		bits = d.cidr4
	}
	p, err := e.ip.Prefix(bits)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// validate returns the names (at most the first 10, §4.6.4) whose
// addresses include the client's: the "validated domain names" of §5.5.
func (e *evaluator) validate(names []string) []string {
	if len(names) > 10 {
		names = names[:10]
	}
	var out []string
	for _, n := range names {
		if !queryable(n) {
			continue
		}
		ips, err := dnsx.IPs(e.ctx, e, n, e.addrType())
		if err != nil {
			continue // §5.5: skip the name on a DNS error
		}
		for _, ip := range ips {
			if ip.Unmap() == e.ip {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// validatedPTR is the %{p} macro (§7.3): a validated name of the client,
// preferring the current domain or a subdomain of it, else "unknown". The
// PTR and address lookups are made once per evaluation.
func (e *evaluator) validatedPTR() string {
	if !e.ptrDone {
		e.ptrDone = true
		if names, err := dnsx.PTR(e.ctx, e, e.ip); err == nil {
			e.ptrValid = e.validate(names)
		}
	}
	for _, n := range e.ptrValid {
		if n == e.env.domain || strings.HasSuffix(n, "."+e.env.domain) {
			return n
		}
	}
	if len(e.ptrValid) > 0 {
		return e.ptrValid[0]
	}
	return "unknown"
}

// explain computes the exp= explanation (§6.2). Any problem (DNS error,
// no or several records, bad syntax, non-ASCII) means no explanation.
func (e *evaluator) explain(m *Modifier) string {
	target := e.target(m.spec, e.env.domain)
	if !queryable(target) {
		return ""
	}
	txts, err := dnsx.TXT(e.ctx, e, target)
	if err != nil || len(txts) != 1 {
		return ""
	}
	ms, err := parseMacroString(txts[0], true, 0)
	if err != nil {
		return ""
	}
	return ms.expand(&e.env)
}
