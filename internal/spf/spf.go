// Package spf evaluates Sender Policy Framework records as RFC 7208
// specifies: every mechanism and modifier, macros, the DNS lookup and void
// lookup limits, the HELO and MAIL FROM identities and all seven results.
// It also lints records and writes Received-SPF header fields.
package spf

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailwall/internal/dnsx"
)

// Result is an SPF result (RFC 7208 §2.6).
type Result string

// The seven results.
const (
	None      Result = "none"
	Neutral   Result = "neutral"
	Pass      Result = "pass"
	Fail      Result = "fail"
	Softfail  Result = "softfail"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Identity names which identity was checked (§2.3, §2.4).
type Identity string

// The two identities.
const (
	MailFrom Identity = "mailfrom"
	Helo     Identity = "helo"
)

// DefaultExplanation is the explanation for "fail" when the record has no
// usable exp= modifier.
const DefaultExplanation = "SPF fail - not authorized"

// Checker evaluates SPF. Its zero value is not usable: set Resolver.
type Checker struct {
	Resolver dnsx.Resolver
	// MaxLookups and MaxVoidLookups are the §4.6.4 limits; zero means the
	// RFC's 10 and 2.
	MaxLookups     int
	MaxVoidLookups int
	// Receiver is the %{r} macro: the receiving host's domain name.
	Receiver string
	// DefaultExplanation replaces the package's for "fail" results
	// without an exp= explanation.
	DefaultExplanation string
	// Now is the clock for %{t}; nil means time.Now.
	Now func() time.Time
	// Timeout bounds one evaluation (RFC 7208 §4.6.4); past it the result
	// is temperror. Zero: only the context bounds it.
	Timeout time.Duration

	// parsed remembers parsed records by their text: the same few records
	// come back for most mail, and parsing costs more than a warm lookup.
	parsed  sync.Map // string -> *Record
	nParsed atomic.Int64
}

// maxParsedRecords bounds the parsed-record memo; past it, it starts over.
const maxParsedRecords = 10000

// parse returns the parsed record for txt, from the memo when it can.
// Records are never modified after parsing, so sharing them is safe.
func (c *Checker) parse(txt string) (*Record, error) {
	if r, ok := c.parsed.Load(txt); ok {
		return r.(*Record), nil
	}
	r, err := Parse(txt)
	if err != nil {
		return nil, err
	}
	if c.nParsed.Add(1) > maxParsedRecords {
		c.parsed.Clear()
		c.nParsed.Store(0)
	}
	c.parsed.Store(txt, r)
	return r, nil
}

// Outcome is the result of one check with what led to it.
type Outcome struct {
	Result    Result   `json:"result"`
	Identity  Identity `json:"identity"`
	Domain    string   `json:"domain"`              // the domain checked
	Sender    string   `json:"sender"`              // the sender used (postmaster@ added)
	Mechanism string   `json:"mechanism,omitempty"` // the term that decided, if any
	// Explanation is the text for a "fail": the exp= text of the domain,
	// or the default.
	Explanation string `json:"explanation"`
	// Problem says why a permerror or temperror happened.
	Problem     string `json:"problem,omitempty"`
	Lookups     int    `json:"lookups"`
	VoidLookups int    `json:"void_lookups"`
	// DNSSEC is the weakest DNSSEC status of the answers the evaluation
	// used: "secure" only when all were, else "insecure" or
	// "unvalidated"; "" with dns.dnssec off. A bogus answer is a
	// temperror (Problem names the failing link).
	DNSSEC string `json:"dnssec,omitempty"`
}

// CheckMailFrom checks the MAIL FROM identity. An empty sender (a bounce)
// is checked as postmaster@helo, as §2.4 says.
func (c *Checker) CheckMailFrom(ctx context.Context, ip netip.Addr, sender, helo string) Outcome {
	if sender == "" || sender == "<>" {
		o := c.CheckHelo(ctx, ip, helo)
		o.Identity = MailFrom
		return o
	}
	local, domain := splitSender(sender, helo)
	o := c.checkHost(ctx, ip, domain, local+"@"+domain, local, helo)
	o.Identity = MailFrom
	return o
}

// CheckHelo checks the HELO identity (§2.3). A HELO that is not a fully
// qualified domain name (an address literal, a bare word) yields "none".
func (c *Checker) CheckHelo(ctx context.Context, ip netip.Addr, helo string) Outcome {
	o := c.checkHost(ctx, ip, helo, "postmaster@"+helo, "postmaster", helo)
	o.Identity = Helo
	return o
}

// CheckHost is check_host() of §4 for an explicit domain and sender.
func (c *Checker) CheckHost(ctx context.Context, ip netip.Addr, domain, sender, helo string) Outcome {
	local, _ := splitSender(sender, domain)
	return c.checkHost(ctx, ip, domain, sender, local, helo)
}

func (c *Checker) checkHost(ctx context.Context, ip netip.Addr, domain, sender, local, helo string) Outcome {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	e := &evaluator{
		ctx: ctx, c: c, ip: ip.Unmap(),
		env: macroEnv{
			sender: sender, local: local, senderDomain: domain,
			ip: ip.Unmap(), helo: helo, receiver: c.Receiver,
		},
		maxLookups: c.MaxLookups, maxVoid: c.MaxVoidLookups,
	}
	if e.maxLookups <= 0 {
		e.maxLookups = 10
	}
	if e.maxVoid <= 0 {
		e.maxVoid = 2
	}
	e.env.now = time.Now()
	if c.Timeout > 0 {
		e.deadline = e.env.now.Add(c.Timeout)
	}
	if c.Now != nil {
		e.env.now = c.Now()
	}
	e.env.ptr = e.validatedPTR
	if _, d, ok := strings.Cut(sender, "@"); ok {
		e.env.senderDomain = strings.TrimSuffix(strings.ToLower(d), ".")
	}
	res, expl, err := e.checkHost(domain, 0)
	o := Outcome{Result: res, Domain: domain, Sender: sender, Lookups: e.lookups, VoidLookups: e.voids, Mechanism: e.decider}
	if err != nil {
		o.Problem = err.Error()
	}
	if e.dnssecSeen && res != TempError {
		o.DNSSEC = e.dnssec.String()
	}
	if res == Fail {
		o.Explanation = expl
		if o.Explanation == "" {
			o.Explanation = c.DefaultExplanation
			if o.Explanation == "" {
				o.Explanation = DefaultExplanation
			}
		}
	}
	return o
}

// splitSender splits local@domain. §4.3: a missing local part becomes
// "postmaster"; a sender without "@" is taken as a domain.
func splitSender(sender, fallbackDomain string) (local, domain string) {
	at := strings.LastIndexByte(sender, '@')
	if at < 0 {
		if sender == "" {
			return "postmaster", fallbackDomain
		}
		return "postmaster", sender
	}
	local, domain = sender[:at], sender[at+1:]
	if local == "" {
		local = "postmaster"
	}
	return local, domain
}

// validDomain is the §4.3 check on the domain to evaluate: every label 1 to
// 63 octets, the whole at most 253, and at least two labels.
func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}
