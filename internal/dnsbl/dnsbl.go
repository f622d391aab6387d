// Package dnsbl asks DNS block and allow lists (DNSxLs, RFC 5782) about a
// client's address and about the domains a message names, and turns the
// answers into a weighted score with a readable hit per listing.
//
// Lists are configured in the syntax of Postfix's postscreen_dnsbl_sites
// (domain[=filter][*weight], see ParseSites): an answer filter keeps only
// the return codes wanted, a weight (default 1, negative for allow lists
// such as list.dnswl.org) is added once per matching entry.
//
// Answers that mean "you are asking wrongly" are errors, never listings:
// any address outside 127.0.0.0/8 (RFC 5782 §2.3), the lists' own refusal
// codes (Spamhaus's 127.255.255.252/254/255, URIBL's and SURBL's 127.0.0.1,
// dnswl.org's 127.0.0.255, Spamhaus DBL's 127.0.1.255) and a REFUSED from
// the resolver. A timeout or SERVFAIL is a temporary error for that zone,
// never "not listed". Both are counted in Stats.
package dnsbl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/debuglog"
	"mailwall/internal/dnsx"
)

// Options configure a Checker. Zero values take the defaults noted.
type Options struct {
	// IPSites are the lists asked about addresses (RFC 5782 §2.1).
	IPSites []Site
	// DomainSites are the lists asked about domains (RFC 5782 §2.2):
	// URIBL, Spamhaus DBL, SURBL.
	DomainSites []Site
	// Timeout bounds each query; default 2s.
	Timeout time.Duration
	// Budget bounds one Check call, all zones and names together; default
	// 4s. What is not asked in time is a temporary error.
	Budget time.Duration
	// Concurrency bounds the queries of one Check in flight; default 8.
	Concurrency int
	// MaxInFlight bounds the queries of all Checks together, so a flood
	// of connections cannot open sockets without end; default 64. A
	// question waits for a slot within its budget.
	MaxInFlight int
	// MaxNames bounds the addresses and domains of one Check (after
	// deduplication, registered domains first); default 20.
	MaxNames int
	// TXT asks a listing's TXT record for the list's reason.
	TXT bool
	// MaxReason bounds a TXT reason, in octets; default 200.
	MaxReason int
	// ErrorAnswers are return codes that mean the list refuses to answer
	// (nil: DefaultErrorAnswers). Answers outside 127.0.0.0/8 are errors
	// whatever this says.
	ErrorAnswers map[netip.Addr]string
	// ErrorRanges are like ErrorAnswers for whole ranges (nil:
	// DefaultErrorRanges).
	ErrorRanges map[netip.Prefix]string
	// Logger receives a warning for refusals and bogus answers and an
	// info line for temporary errors, at most one line per zone and kind
	// each LogEvery (default 1 minute) with the number left unlogged:
	// a list that refuses us refuses every connection. Default discard.
	Logger   *slog.Logger
	LogEvery time.Duration
}

// DefaultErrorAnswers are the refusal codes of well-known lists. None of
// them is a listing code of any list the codes come from.
func DefaultErrorAnswers() map[netip.Addr]string {
	return map[netip.Addr]string{
		// URIBL: "query refused"; SURBL: "you are blocked" (public
		// resolver or over the free-use limit). RFC 5782 §5 also forbids
		// lists to contain 127.0.0.1, so no list uses it as a code.
		netip.AddrFrom4([4]byte{127, 0, 0, 1}): "query refused (URIBL/SURBL code 127.0.0.1: public resolver or over the free-use limit)",
		// dnswl.org: over the free-use limit.
		netip.AddrFrom4([4]byte{127, 0, 0, 255}): "query refused (dnswl.org code 127.0.0.255: over the free-use limit)",
		// Spamhaus DBL: an address asked of a domain list.
		netip.AddrFrom4([4]byte{127, 0, 1, 255}): "query refused (Spamhaus DBL code 127.0.1.255: an address asked of a domain list)",
		// Spamhaus return codes for errors.
		netip.AddrFrom4([4]byte{127, 255, 255, 252}): "query refused (Spamhaus code 127.255.255.252: typing error in the list's name)",
		netip.AddrFrom4([4]byte{127, 255, 255, 254}): "query refused (Spamhaus code 127.255.255.254: asked through a public or open resolver)",
		netip.AddrFrom4([4]byte{127, 255, 255, 255}): "query refused (Spamhaus code 127.255.255.255: excessive number of queries)",
	}
}

// DefaultErrorRanges: Spamhaus reserves 127.255.255.0/24 for errors.
func DefaultErrorRanges() map[netip.Prefix]string {
	return map[netip.Prefix]string{
		netip.MustParsePrefix("127.255.255.0/24"): "query refused (Spamhaus error range 127.255.255.0/24)",
	}
}

var loopback8 = netip.MustParsePrefix("127.0.0.0/8")

// ErrorKind says what kind of failure a LookupError is.
type ErrorKind int

const (
	// TempError: a timeout, SERVFAIL, or the budget ran out before the
	// query was answered or made. Says nothing about the listing.
	TempError ErrorKind = iota + 1
	// Refused: the list or the resolver refuses us (a refusal code, a
	// REFUSED RCODE). Needs the admin: another resolver, a data feed.
	Refused
	// Bogus: an answer outside 127.0.0.0/8 (RFC 5782 §2.3), as a
	// wildcarding resolver or an expired list domain gives.
	Bogus
)

func (k ErrorKind) String() string {
	switch k {
	case TempError:
		return "temperror"
	case Refused:
		return "refused"
	case Bogus:
		return "bogus"
	}
	return "unknown"
}

// LookupError is one zone that could not be read for one subject.
type LookupError struct {
	Subject string // the address or domain asked about
	Zone    string
	Kind    ErrorKind
	Answers []netip.Addr // the answers that were refused, if any
	Err     error
}

func (e *LookupError) Error() string {
	return fmt.Sprintf("dnsbl: %s in %s: %s: %v", e.Subject, e.Zone, e.Kind, e.Err)
}

func (e *LookupError) Unwrap() error { return e.Err }

// MarshalJSON writes the error for stored results and the dashboard.
func (e *LookupError) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Subject string       `json:"subject"`
		Zone    string       `json:"zone"`
		Kind    string       `json:"kind"`
		Answers []netip.Addr `json:"answers,omitempty"`
		Error   string       `json:"error"`
	}{e.Subject, e.Zone, e.Kind.String(), e.Answers, e.Err.Error()})
}

// Hit is one site's listing of one subject.
type Hit struct {
	Subject string       `json:"subject"` // the address or domain listed
	Zone    string       `json:"zone"`
	Filter  string       `json:"filter,omitempty"` // the site's filter, "" for any
	Answers []netip.Addr `json:"answers"`          // the answers the filter kept
	Reason  string       `json:"reason,omitempty"` // the list's TXT, sanitized
	Weight  int          `json:"weight"`
}

// Rule names the hit for a score line: dnsbl:zone, or dnswl:zone for an
// allow list (negative weight).
func (h Hit) Rule() string {
	if h.Weight < 0 {
		return "dnswl:" + h.Zone
	}
	return "dnsbl:" + h.Zone
}

// Explanation reads "192.0.2.1 is listed in zen.example.test (127.0.0.2,
// 127.0.0.4): weight 3", with the list's reason after it when it gave one.
func (h Hit) Explanation() string { return h.explain(h.Subject, h.Zone) }

// explain is Explanation with the subject and zone named as the caller
// shows them (the analyzer says where a name came from, and may hide a
// keyed zone's name).
func (h Hit) explain(subject, zone string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is listed in %s (", subject, zone)
	for i, a := range h.Answers {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	fmt.Fprintf(&b, "): weight %d", h.Weight)
	if h.Reason != "" {
		fmt.Fprintf(&b, ": %q", h.Reason)
	}
	return b.String()
}

// Result is what a Check found: the sum of the weights of the hits, the
// hits, and the lookups that failed. A failed lookup adds nothing to the
// score; callers decide whether errors matter (a DNS failure must not be
// taken for "not listed").
type Result struct {
	Score   int            `json:"score"`
	Hits    []Hit          `json:"hits,omitempty"`
	Errors  []*LookupError `json:"errors,omitempty"`
	Queries int            `json:"queries"` // questions (subject × zone), asked or not
	Dropped int            `json:"dropped,omitempty"`
	Invalid []string       `json:"invalid,omitempty"` // hosts that were no domain
	// Cached is how many of the questions the resolver's cache answered
	// (a dnsx.Cache: asked a moment ago, by the policy server at RCPT or
	// by an earlier message), without a query.
	Cached int `json:"cached,omitempty"`

	cachedZones []string // a few: the configured zones
}

// ZoneCached reports whether the cache answered every question to zone
// in this check: the lookup counters count such a check apart, so that
// a client asked at RCPT and again at end of message is one lookup.
func (r *Result) ZoneCached(zone string) bool { return slices.Contains(r.cachedZones, zone) }

// TempErrors reports whether some lookup failed temporarily.
func (r *Result) TempErrors() bool {
	for _, e := range r.Errors {
		if e.Kind == TempError {
			return true
		}
	}
	return false
}

// Stats are a Checker's counters since it was made.
type Stats struct {
	Queries    uint64 // A lookups made (cache hits included, read or asked)
	Listed     uint64 // lookups with at least one usable answer
	NotListed  uint64 // NXDOMAIN or no A records
	Hits       uint64 // site hits (a lookup may feed several sites)
	TempErrors uint64 // timeouts, SERVFAIL, budget exhausted
	Refused    uint64 // refusal codes and REFUSED
	Bogus      uint64 // answers outside 127.0.0.0/8
	TXTLookups uint64
	Dropped    uint64 // names over MaxNames
}

// Checker asks the configured lists. It is safe for concurrent use.
type Checker struct {
	r         dnsx.Resolver
	opts      Options
	ipZones   []zone
	domZones  []zone
	errAddrs  map[netip.Addr]string
	errRanges map[netip.Prefix]string
	log       *slog.Logger
	inFlight  chan struct{}

	logMu   sync.Mutex
	logNext map[logKey]time.Time // when a zone and kind may log again
	logSkip map[logKey]int       // lines left unlogged since

	queries, listed, notListed, hits, temp, refused, bogus, txt, dropped atomic.Uint64
}

type logKey struct {
	zone string
	kind ErrorKind
}

// zone is one list domain with the sites that read its answers.
type zone struct {
	name  string
	sites []Site
}

// group gathers sites by zone, in the order the zones first appear.
func group(sites []Site) []zone {
	var zs []zone
	idx := map[string]int{}
	for _, s := range sites {
		i, ok := idx[s.Zone]
		if !ok {
			i = len(zs)
			idx[s.Zone] = i
			zs = append(zs, zone{name: s.Zone})
		}
		zs[i].sites = append(zs[i].sites, s)
	}
	return zs
}

// New returns a Checker asking r.
func New(r dnsx.Resolver, opts Options) *Checker {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Budget <= 0 {
		opts.Budget = 4 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.MaxNames <= 0 {
		opts.MaxNames = 20
	}
	if opts.MaxReason <= 0 {
		opts.MaxReason = 200
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 64
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = time.Minute
	}
	c := &Checker{r: r, opts: opts, ipZones: group(opts.IPSites), domZones: group(opts.DomainSites),
		errAddrs: opts.ErrorAnswers, errRanges: opts.ErrorRanges, log: opts.Logger,
		inFlight: make(chan struct{}, opts.MaxInFlight),
		logNext:  map[logKey]time.Time{}, logSkip: map[logKey]int{}}
	if c.errAddrs == nil {
		c.errAddrs = DefaultErrorAnswers()
	}
	if c.errRanges == nil {
		c.errRanges = DefaultErrorRanges()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats returns the counters.
func (c *Checker) Stats() Stats {
	return Stats{
		Queries: c.queries.Load(), Listed: c.listed.Load(), NotListed: c.notListed.Load(),
		Hits: c.hits.Load(), TempErrors: c.temp.Load(), Refused: c.refused.Load(),
		Bogus: c.bogus.Load(), TXTLookups: c.txt.Load(), Dropped: c.dropped.Load(),
	}
}

// CheckIP asks the IP lists about a client address (IPv4-mapped addresses
// are asked as IPv4).
func (c *Checker) CheckIP(ctx context.Context, ip netip.Addr) *Result {
	return c.Check(ctx, []netip.Addr{ip}, nil)
}

// CheckDomains asks about hosts and domains from a message (From and
// Reply-To domains, DKIM d=, the envelope sender's domain, URL hosts):
// each is normalized and asked with its registered domain in the domain
// lists; address literals are asked in the IP lists.
func (c *Checker) CheckDomains(ctx context.Context, hosts []string) *Result {
	return c.Check(ctx, nil, hosts)
}

// job is one question: one subject in one zone.
type job struct {
	subject string
	qname   string
	// fqdn is qname with the root's dot, qname its substring: the
	// cache's key, which it would otherwise build for each Peek.
	fqdn string
	zone *zone
}

// newJob is the question about subject in z, whose name is fqdn.
func newJob(subject, fqdn string, z *zone) job {
	return job{subject: subject, qname: fqdn[:len(fqdn)-1], fqdn: fqdn, zone: z}
}

// Check asks the IP lists about ips and the domain lists about hosts
// (address literals among hosts go to the IP lists), all in parallel
// within the budget, and sums the weights.
func (c *Checker) Check(ctx context.Context, ips []netip.Addr, hosts []string) *Result {
	n := collect(ips, hosts, c.opts.MaxNames)
	res := &Result{Dropped: n.dropped, Invalid: n.invalid}
	c.dropped.Add(uint64(n.dropped))

	jobs := make([]job, 0, len(n.ips)*len(c.ipZones)+len(n.domains)*len(c.domZones))
	for _, ip := range n.ips {
		subject := ip.String()
		for i := range c.ipZones {
			z := &c.ipZones[i]
			jobs = append(jobs, newJob(subject, ipQueryFqdn(ip, z.name), z))
		}
	}
	for _, d := range n.domains {
		for i := range c.domZones {
			z := &c.domZones[i]
			if len(d)+1+len(z.name) > maxName {
				res.Errors = append(res.Errors, &LookupError{Subject: d, Zone: z.name, Kind: Bogus,
					Err: errors.New("query name longer than 253 octets")})
				continue
			}
			jobs = append(jobs, newJob(d, d+"."+z.name+".", z))
		}
	}
	if len(jobs) == 0 {
		return res
	}

	type outcome struct {
		hits []Hit
		err  *LookupError
	}
	out := make([]outcome, len(jobs))
	// Answers the cache holds are read first, in the caller: they need
	// neither a deadline nor a worker, and a message whose names were all
	// asked a moment ago (by the policy server at RCPT, by the message
	// before) costs no goroutine and no timer.
	todo := make([]int, 0, len(jobs))
	// fresh: the zones asked upstream (not only cached). A slice: there
	// are a few zones, and this is every message's.
	var fresh []string
	addFresh := func(zone string) {
		if !slices.Contains(fresh, zone) {
			fresh = append(fresh, zone)
		}
	}
	if p, ok := c.peeker(); ok {
		// A debug peer's detail log shows every answer, those from the
		// cache too: they are asked through Query, which logs them.
		debug := debuglog.From(ctx) != nil
		for i, j := range jobs {
			if ans, _, hit := p.Peek(j.fqdn, dns.TypeA); hit {
				res.Cached++
				if debug {
					out[i].hits, out[i].err = c.ask(ctx, j, true)
				} else {
					c.queries.Add(1)
					out[i].hits, out[i].err = c.read(ctx, j, ans)
				}
				continue
			}
			todo = append(todo, i)
			addFresh(j.zone.name)
		}
	} else {
		for i, j := range jobs {
			todo = append(todo, i)
			addFresh(j.zone.name)
		}
	}
	if len(todo) > 0 {
		c.askAll(ctx, jobs, todo, func(i int, hits []Hit, err *LookupError) { out[i].hits, out[i].err = hits, err })
	}
	// Results in job order: deterministic for tests and for score lines.
	for _, o := range out {
		if o.err != nil {
			res.Errors = append(res.Errors, o.err)
		}
		for _, h := range o.hits {
			res.Hits = append(res.Hits, h)
			res.Score += h.Weight
		}
	}
	res.Queries = len(jobs)
	for _, j := range jobs {
		if z := j.zone.name; !slices.Contains(fresh, z) && !slices.Contains(res.cachedZones, z) {
			if res.cachedZones == nil {
				res.cachedZones = make([]string, 0, len(c.ipZones)+len(c.domZones))
			}
			res.cachedZones = append(res.cachedZones, z)
		}
	}
	return res
}

// peeker is a resolver with a cache that can be read without asking
// upstream (dnsx.Cache).
type peeker interface {
	Peek(name string, qtype uint16) (*dnsx.Answer, time.Duration, bool)
}

// peeker returns the Checker's resolver's cache, under the debug-log
// wrapper serve puts around it.
func (c *Checker) peeker() (peeker, bool) {
	r := c.r
	if d, ok := r.(debuglog.Resolver); ok {
		r = d.Resolver
	}
	p, ok := r.(peeker)
	return p, ok
}

// askAll asks the jobs of todo upstream, in parallel within the budget,
// handing each outcome to set.
func (c *Checker) askAll(ctx context.Context, jobs []job, todo []int, set func(i int, hits []Hit, err *LookupError)) {
	// When every question starts at once (one wave of workers), the
	// check's own deadline, the budget or the per-query timeout whichever
	// comes first, bounds each query too: no context per query.
	limit, perQuery := c.opts.Budget, true
	if len(todo) <= c.opts.Concurrency && c.opts.Timeout <= limit {
		limit, perQuery = c.opts.Timeout, false
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	work := func() {
		for {
			k := int(next.Add(1) - 1)
			if k >= len(todo) {
				return
			}
			i := todo[k]
			hits, err := c.ask(ctx, jobs[i], perQuery)
			set(i, hits, err)
		}
	}
	// The caller is one of the workers.
	for range min(c.opts.Concurrency, len(todo)) - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

// ask makes one A query and reads it through the zone's sites.
func (c *Checker) ask(ctx context.Context, j job, perQuery bool) ([]Hit, *LookupError) {
	lerr := func(kind ErrorKind, answers []netip.Addr, err error) *LookupError {
		return c.lookupError(j, kind, answers, err)
	}
	// The deadline is compared too: ctx.Err() is set by a timer that can
	// fire a little after the deadline has passed.
	if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
		return nil, lerr(TempError, nil, fmt.Errorf("budget of %s spent before the query: %w", c.opts.Budget, dnsx.ErrTimeout))
	}
	select {
	case c.inFlight <- struct{}{}:
		defer func() { <-c.inFlight }()
	case <-ctx.Done():
		return nil, lerr(TempError, nil, fmt.Errorf("budget of %s spent waiting for one of %d query slots: %w", c.opts.Budget, c.opts.MaxInFlight, dnsx.ErrTimeout))
	}
	c.queries.Add(1)
	qctx := ctx
	if perQuery {
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	ans, err := c.r.Query(qctx, j.qname, dns.TypeA)
	if err != nil {
		// dnsx reports an RCODE other than NOERROR and NXDOMAIN as
		// ErrServFail with the RCODE's name; REFUSED is a resolver
		// that will not ask for us (TestCheckDNSFailures keeps this
		// reading in step with dnsx).
		if errors.Is(err, dnsx.ErrServFail) && strings.Contains(err.Error(), "REFUSED") {
			return nil, lerr(Refused, nil, fmt.Errorf("the resolver answered REFUSED: %w", err))
		}
		if qctx.Err() != nil && !errors.Is(err, dnsx.ErrTimeout) {
			err = fmt.Errorf("%w: %w", dnsx.ErrTimeout, err)
		}
		return nil, lerr(TempError, nil, err)
	}
	return c.read(ctx, j, ans)
}

// lookupError counts, logs and returns a failed question.
func (c *Checker) lookupError(j job, kind ErrorKind, answers []netip.Addr, err error) *LookupError {
	e := &LookupError{Subject: j.subject, Zone: j.zone.name, Kind: kind, Answers: answers, Err: err}
	switch kind {
	case TempError:
		c.temp.Add(1)
	case Refused:
		c.refused.Add(1)
	case Bogus:
		c.bogus.Add(1)
	}
	c.logError(e)
	return e
}

// read reads an answer to j through the zone's sites.
func (c *Checker) read(ctx context.Context, j job, ans *dnsx.Answer) ([]Hit, *LookupError) {
	lerr := func(kind ErrorKind, answers []netip.Addr, err error) *LookupError {
		return c.lookupError(j, kind, answers, err)
	}
	var addrs []netip.Addr
	for _, rr := range ans.Records {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				addrs = append(addrs, ip)
			}
		}
	}
	if len(addrs) == 0 {
		c.notListed.Add(1)
		return nil, nil
	}
	// One refusal or bogus answer spoils the whole answer: a list that
	// refuses us says nothing true about the subject.
	for _, a := range addrs {
		if !loopback8.Contains(a) {
			return nil, lerr(Bogus, addrs, fmt.Errorf("answer %s is outside 127.0.0.0/8 (RFC 5782 §2.3): a wildcarding resolver or a lapsed list domain", a))
		}
	}
	for _, a := range addrs {
		if why, ok := c.errAddrs[a]; ok {
			return nil, lerr(Refused, addrs, fmt.Errorf("%s", why))
		}
		for p, why := range c.errRanges {
			if p.Contains(a) {
				return nil, lerr(Refused, addrs, fmt.Errorf("%s: %s", a, why))
			}
		}
	}
	c.listed.Add(1)
	var hits []Hit
	for _, s := range j.zone.sites {
		var kept []netip.Addr
		for _, a := range addrs {
			if s.Filter == nil || s.Filter.Match(a) {
				kept = append(kept, a)
			}
		}
		if len(kept) == 0 {
			continue
		}
		h := Hit{Subject: j.subject, Zone: j.zone.name, Answers: kept, Weight: s.Weight}
		if s.Filter != nil {
			h.Filter = s.Filter.String()
		}
		hits = append(hits, h)
	}
	c.hits.Add(uint64(len(hits)))
	if len(hits) > 0 && c.opts.TXT {
		reason := c.reason(ctx, j.qname)
		for i := range hits {
			hits[i].Reason = reason
		}
	}
	return hits, nil
}

// logError logs e, at most once per zone and kind each LogEvery.
func (c *Checker) logError(e *LookupError) {
	key := logKey{e.Zone, e.Kind}
	now := time.Now()
	c.logMu.Lock()
	if now.Before(c.logNext[key]) {
		c.logSkip[key]++
		c.logMu.Unlock()
		return
	}
	skipped := c.logSkip[key]
	c.logNext[key] = now.Add(c.opts.LogEvery)
	c.logSkip[key] = 0
	c.logMu.Unlock()
	args := []any{"zone", e.Zone, "subject", e.Subject, "kind", e.Kind.String(), "err", e.Err, "unlogged", skipped}
	switch e.Kind {
	case Refused:
		c.log.Warn("dnsbl: the list refuses our queries; its answers are ignored until this is fixed", args...)
	case Bogus:
		c.log.Warn("dnsbl: the list answered outside 127.0.0.0/8 (RFC 5782 §2.3); its answers are ignored", append(args, "answers", e.Answers)...)
	default:
		c.log.Info("dnsbl: lookup failed; the subject is neither listed nor clean", args...)
	}
}

// reason reads the listing's TXT record (RFC 5782 §2.1: "a TXT record
// that describes the reason for the entry"), best effort: a failure
// leaves the hit without one.
func (c *Checker) reason(ctx context.Context, qname string) string {
	c.txt.Add(1)
	qctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	txts, err := dnsx.TXT(qctx, c.r, qname)
	if err != nil || len(txts) == 0 {
		return ""
	}
	return sanitize(txts[0], c.opts.MaxReason)
}
