// Package phish scores what authentication cannot judge: a fresh domain
// with valid SPF, DKIM and DMARC p=none that imitates a brand, links that
// show one site and lead to another, replies diverted elsewhere. Each
// rule has a name and a weight; a message's score is the sum of the
// weights of the rules that fired, each with its explanation.
package phish

import (
	"context"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
)

// Rule names. Those starting with auth_ score authentication outcomes,
// so one threshold covers both.
const (
	BrandFromDomain    = "brand_from_domain"        // From domain imitates a brand it does not belong to
	BrandDisplayName   = "brand_display_name"       // display name names a brand; From is not the brand's
	BrandLocalPart     = "brand_local_part"         // local part names or imitates a brand
	MixedScript        = "mixed_script"             // Latin mixed with Cyrillic or Greek in a From name
	IDNFromDomain      = "idn_from_domain"          // From domain in punycode
	URLUserinfo        = "url_userinfo"             // http://www.yahoo.co:jp@evil.test/
	URLIPLiteral       = "url_ip_literal"           // http://192.0.2.1/login
	URLTextMismatch    = "url_text_mismatch"        // link shows one domain, goes to another
	URLPunycode        = "url_punycode"             // link host in punycode or non-ASCII
	URLBrandLookalike  = "url_brand_lookalike"      // link host imitates a brand
	ReplyToOtherOrg    = "reply_to_other_org"       // Reply-To leaves the From's organization
	DisplayNameAddress = "display_name_address"     // display name holds an address of another domain
	FromMalformed      = "from_malformed"           // From (Reply-To, Sender) is not one well-formed mailbox
	OwnDomain          = "own_domain_impersonation" // unauthenticated From claims the recipient's own domain
	BrandDomainSpoof   = "brand_domain_spoof"       // From is a brand's own domain, unauthenticated, and no DMARC policy enforces it
	FirstSeenDomain    = "first_seen_domain"        // From domain never seen before today
	DMARCNoneBrand     = "dmarc_none_brand"         // p=none (or no DMARC) and a brand hit
	PTRBareDomain      = "ptr_bare_domain"          // client PTR is a bare registered domain
	AuthDMARCFail      = "auth_dmarc_fail"
	AuthSPFFail        = "auth_spf_fail"
	AuthDKIMFail       = "auth_dkim_fail"
	AuthNone           = "auth_none" // neither SPF nor DKIM passed for any domain
	AuthIPRevFail      = "auth_iprev_fail"
	AuthS25R           = "auth_s25r"
	AuthARCFail        = "auth_arc_fail"
)

// DefaultWeights are the points of each rule; 0 turns a rule off. A
// brand imitation alone reaches the tag threshold (30), two strong signs
// quarantine (60), a brand imitation with a deceptive link and a weak
// DMARC policy reject (100).
func DefaultWeights() map[string]int {
	return map[string]int{
		BrandFromDomain: 45, BrandDisplayName: 30, BrandLocalPart: 30, MixedScript: 30, IDNFromDomain: 10,
		URLUserinfo: 40, URLIPLiteral: 25, URLTextMismatch: 35, URLPunycode: 15, URLBrandLookalike: 35,
		ReplyToOtherOrg: 15, DisplayNameAddress: 25, FromMalformed: 30, OwnDomain: 30, BrandDomainSpoof: 30, FirstSeenDomain: 10, DMARCNoneBrand: 20, PTRBareDomain: 10,
		AuthDMARCFail: 20, AuthSPFFail: 10, AuthDKIMFail: 10, AuthNone: 15, AuthIPRevFail: 10, AuthS25R: 10, AuthARCFail: 5,
	}
}

// History remembers sending domains (the store implements it).
type History interface {
	// SeenDomain records a message from domain at now and returns when
	// the domain was first seen, and since when the history is kept.
	SeenDomain(ctx context.Context, domain string, now time.Time) (first, since time.Time, err error)
}

// CachedHistory is a History that can often answer from memory: ok
// false sends the lookup to SeenDomain. It saves a goroutine and a timer
// per message for the domains seen before, which are most.
type CachedHistory interface {
	History
	SeenDomainCached(domain string, now time.Time) (first, since time.Time, ok bool)
}

// Checker scores messages. The zero value is not ready: use New.
type Checker struct {
	weights map[string]int
	brands  *brandIndex
	// History, when set, drives the first-seen rule.
	History History
	// Warmup is how long History must have been kept before the
	// first-seen rule fires: on a new install every domain is new.
	Warmup time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HistoryTimeout bounds the History lookup (default 250ms): a slow or
	// locked store skips the first-seen rule rather than hold the mail.
	HistoryTimeout time.Duration

	// suffixes remembers the public suffix list's answers across
	// messages, hostBrands the brands hosts imitate, textBrands those
	// local parts and display names do (nil: none remembered).
	suffixes               *memo[suffixPair]
	hostBrands, textBrands *memo[[]brandMatch]
	// boxes remembers author fields read, listBoxes Reply-To fields.
	boxes, listBoxes *memo[Mailbox]
}

// New returns a Checker with these brands and weights; rules missing
// from weights take their default.
func New(brands []Brand, weights map[string]int) (*Checker, error) {
	w := DefaultWeights()
	for k, v := range weights {
		if _, ok := w[k]; !ok {
			return nil, fmt.Errorf("phish: unknown rule %q", k)
		}
		if v < 0 {
			return nil, fmt.Errorf("phish: rule %s: negative weight %d", k, v)
		}
		w[k] = v
	}
	for i, b := range brands {
		if b.Name == "" || len(b.Domains) == 0 {
			return nil, fmt.Errorf("phish: brand %d (%q) needs a name and at least one domain", i, b.Name)
		}
	}
	return &Checker{weights: w, brands: newBrandIndex(brands), suffixes: newMemo[suffixPair](),
		hostBrands: newMemo[[]brandMatch](), textBrands: newMemo[[]brandMatch](),
		boxes: newMemo[Mailbox](), listBoxes: newMemo[Mailbox]()}, nil
}

// Input is what the pipeline knows of a message when it scores it.
type Input struct {
	Fields []dkim.Field
	Body   []byte // the body as received, possibly cut at a limit

	ClientIP netip.Addr
	PTRName  string // verified PTR name (iprev pass), "" if none
	IPRev    string // iprev result
	S25R     bool
	SPF      string // spf result for MAIL FROM
	// DKIMPass lists the d= of signatures that verified.
	DKIMPass []string
	DKIMFail bool // a signature failed
	DMARC    string
	// DMARCPolicy is p= (or sp=/np=) of the record that applied; "" when
	// the domain has no DMARC record.
	DMARCPolicy string
	// DMARCOverridden: a trusted forwarder vouched for a DMARC fail.
	DMARCOverridden bool
	ARC             string
	// Rcpts are the envelope recipients (RCPT TO): whose own domain a
	// fake mail administrator claims.
	Rcpts []string
	// SPFDomain is the domain SPF checked (MAIL FROM's, or HELO's).
	SPFDomain string
	// Content is Fields and Body decoded, when the caller has it
	// already; nil: Check decodes them.
	Content *Content
}

// Hit is a rule that fired, in the form every analyzer's hits take.
type Hit = analysis.Hit

// Report is a message's score and the rules behind it.
type Report struct {
	Score  int      `json:"score"`
	Hits   []Hit    `json:"hits"`
	Brands []string `json:"brands,omitempty"` // brands imitated
	// From is the author as a mail client shows it, read tolerantly;
	// nil when the message has no From field.
	From    *Mailbox `json:"from,omitempty"`
	Content Content  `json:"content"`
	// Problems are things that could not be checked (history down, a part
	// that did not decode); the score is what could be.
	Problems []string `json:"problems,omitempty"`
}

// Rules lists the rules that fired as "rule=weight", in order.
func (r Report) Rules() []string {
	out := make([]string, len(r.Hits))
	for i, h := range r.Hits {
		out[i] = h.Rule + "=" + strconv.Itoa(h.Weight)
	}
	return out
}

// Name is the rules' config key, checks.phish.
func (c *Checker) Name() string { return "phish" }

// Analyze runs the rules as one of the pipeline's analyzers; the
// Report is the Result's.
func (c *Checker) Analyze(ctx context.Context, m *analysis.Message) analysis.Result {
	in := Input{Fields: m.Fields, Body: m.Body, Content: m.Content(), ClientIP: m.ClientIP, PTRName: m.PTRName, IPRev: m.IPRev,
		S25R: m.S25R, SPF: m.SPF, DKIMPass: m.DKIMPass, DKIMFail: m.DKIMFail, DMARC: m.DMARC, DMARCPolicy: m.DMARCPolicy,
		DMARCOverridden: m.DMARCOverridden, ARC: m.ARC, Rcpts: m.Rcpts, SPFDomain: m.SPFDomain}
	rep := c.Check(ctx, in)
	return analysis.Result{Hits: rep.Hits, Problems: rep.Problems, Report: &rep}
}

type scoring struct {
	c      *Checker
	r      Report
	brands []bool // the brands imitated, by index; nil for none
}

// registered is registered(domain), remembered (Checker.suffixes: a
// message asks for the same few, From's, the recipient's, DKIM's and
// SPF's, again and again, and each is a walk of the list).
func (s *scoring) registered(domain string) string {
	return s.c.suffixes.get(domain, suffixPairOf).org
}

// matchHost is brandIndex.matchHost, remembered. The matches are
// shared: not to be changed.
func (s *scoring) matchHost(host string) []brandMatch {
	return s.c.hostBrands.get(host, s.c.matchHost)
}

// matchHost is brandIndex.matchHost, the public suffix remembered.
func (c *Checker) matchHost(host string) []brandMatch {
	return c.brands.matchLabels(c.suffixes.get(host, suffixPairOf).without)
}

// match is brandIndex.match(text, true), remembered. The matches are
// shared: not to be changed.
func (s *scoring) match(text string) []brandMatch {
	return s.c.textBrands.get(text, s.c.matchNear)
}

func (c *Checker) matchNear(text string) []brandMatch { return c.brands.match(text, true) }

func (s *scoring) fire(rule, format string, args ...any) {
	w := s.c.weights[rule]
	if w == 0 {
		return
	}
	detail := fmt.Sprintf(format, args...)
	for i, h := range s.r.Hits {
		if h.Rule == rule {
			// One rule counts once; further evidence joins its detail.
			if !strings.Contains(h.Detail, detail) && len(h.Detail) < 400 {
				s.r.Hits[i].Detail += "; " + detail
			}
			return
		}
	}
	s.r.Hits = append(s.r.Hits, Hit{Rule: rule, Weight: w, Detail: detail})
	s.r.Score += w
}

func (s *scoring) brand(i int) string {
	if s.brands == nil {
		s.brands = make([]bool, len(s.c.brands.brands))
	}
	s.brands[i] = true
	return s.c.brands.brands[i].Name
}

// addressParser decodes encoded words in display names in any charset.
var addressParser = &mail.AddressParser{WordDecoder: wordDecoder}

// Check scores a message.
func (c *Checker) Check(ctx context.Context, in Input) Report {
	s := &scoring{c: c}
	if in.Content != nil {
		s.r.Content = *in.Content
	} else {
		s.r.Content = Extract(in.Fields, in.Body)
	}
	s.r.Problems = append(s.r.Problems, s.r.Content.Problems...)
	charset := func() string { return messageCharset(in.Fields) }
	from, present := s.c.readMailbox(in.Fields, "From", charset)
	if present {
		s.r.From = &from
		s.checkMalformed("From", from)
	} else {
		s.fire(FromMalformed, "the message has no From field, which RFC 5322 §3.6 requires")
	}
	fromOrg := ""
	if from.Domain != "" {
		fromOrg = s.registered(from.Domain)
		s.checkFrom(from)
		s.checkReplyTo(in.Fields, from, charset)
		s.checkFirstSeen(ctx, from)
		s.checkOwnDomain(in, from)
	} else {
		s.r.Problems = append(s.r.Problems, "no readable From address")
	}
	if sender, ok := s.c.readMailbox(in.Fields, "Sender", charset); ok {
		s.checkMalformed("Sender", sender)
	}
	s.checkLinks(fromOrg, nameOrgs(from), in.DKIMPass)
	if in.PTRName != "" {
		ptr := strings.ToLower(strings.TrimSuffix(in.PTRName, "."))
		if ptr == s.registered(ptr) && strings.Contains(ptr, ".") {
			// Mail servers are named mail.example.com or mx1...; a PTR that
			// is the bare registered domain is a one-box VPS set up for a
			// campaign.
			s.fire(PTRBareDomain, "%s has PTR %s, a bare registered domain", in.ClientIP, ptr)
		}
	}
	if s.brands != nil && !in.DMARCOverridden && (in.DMARCPolicy == "none" || in.DMARCPolicy == "") {
		policy := "no DMARC record"
		if in.DMARCPolicy != "" {
			policy = "DMARC p=none"
		}
		s.fire(DMARCNoneBrand, "%s: %s asks for nothing to be done with failures, and the message imitates %s", from.Domain, policy, strings.Join(s.brandNames(), ", "))
	}
	if from.Domain != "" {
		s.checkBrandSpoof(in, from)
	}
	s.checkAuth(in)
	s.r.Brands = s.brandNames()
	return s.r
}

func (s *scoring) brandNames() []string {
	var out []string
	for i, imitated := range s.brands {
		if imitated {
			out = append(out, s.c.brands.brands[i].Name)
		}
	}
	return out
}

// checkMalformed fires from_malformed for an author field that is not
// one well-formed mailbox: phishing kits write "Name ,_<addr>", "Name,
// <addr>", "<addr >" and two addresses; mailers of real organizations
// do not.
func (s *scoring) checkMalformed(field string, m Mailbox) {
	if len(m.Malformed) == 0 {
		return
	}
	shown := "no address"
	if m.Address() != "" || m.Name != "" {
		shown = clip(m.String())
	}
	s.fire(FromMalformed, "%s is not one well-formed mailbox: %s; read as %s", field, strings.Join(m.Malformed, ", "), shown)
}

func (s *scoring) checkFrom(from Mailbox) {
	ix := s.c.brands
	udomain, isIDN := unicodeDomain(from.Domain)
	if isIDN {
		s.fire(IDNFromDomain, "From domain %s is %s", from.Domain, udomain)
	}
	name := Normalize(shownOrder(from.Name)) // invisible characters hide nothing from here on
	if mixedScript(udomain) || mixedScript(name) || mixedScript(from.Local) {
		s.fire(MixedScript, "Latin letters mixed with Cyrillic or Greek in %q", strings.TrimSpace(from.Name+" <"+from.Local+"@"+udomain+">"))
	}
	s.brandDomain(from.Domain, udomain)
	for _, d := range otherDomains(from) {
		ud, _ := unicodeDomain(d)
		s.brandDomain(d, ud)
	}
	for _, m := range s.match(from.Local) {
		if !ix.owns(m.brand, from.Domain) {
			s.fire(BrandLocalPart, "local part %q: %s %q of %s, sent from %s", from.Local, m.how, m.token, s.brand(m.brand), from.Domain)
		}
	}
	for _, m := range s.match(name) {
		if !ix.owns(m.brand, from.Domain) {
			s.fire(BrandDisplayName, "display name %q: %s %q of %s, sent from %s", from.Name, m.how, m.token, s.brand(m.brand), from.Domain)
		}
	}
	if !strings.Contains(name, "@") {
		return // no address shown: spare the regexp
	}
	for _, addr := range emailPattern.FindAllString(name, 5) {
		_, d, _ := strings.Cut(addr, "@")
		if s.registered(d) != s.registered(from.Domain) {
			s.fire(DisplayNameAddress, "display name shows %s, the address is %s", addr, from.Address())
		}
	}
}

// brandDomain fires brand_from_domain for a From domain (udomain its
// Unicode form) that imitates a brand it does not belong to.
func (s *scoring) brandDomain(domain, udomain string) {
	ix := s.c.brands
	for _, m := range s.matchHost(udomain) {
		if !ix.owns(m.brand, domain) {
			s.fire(BrandFromDomain, "From domain %s: %s %q, not one of %s's domains", udomain, m.how, m.token, s.brand(m.brand))
		}
	}
}

// otherDomains are the domains of a From's further addresses, other than
// its first's; each may imitate a brand too.
func otherDomains(from Mailbox) []string {
	var out []string
	for _, a := range from.Others {
		if _, d, ok := cutAddress(a); ok && d != from.Domain && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// messageCharset is the charset of the top-level Content-Type: the best
// guess for raw 8-bit text in the header.
func messageCharset(fields []dkim.Field) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Content-Type") {
			_, params := parseMediaType(f.Value())
			return params["charset"]
		}
	}
	return ""
}

var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+`)

func (s *scoring) checkReplyTo(fields []dkim.Field, from Mailbox, charset func() string) {
	rt, ok := s.c.readMailbox(fields, "Reply-To", charset)
	if !ok {
		return
	}
	s.checkMalformed("Reply-To", rt)
	if rt.Domain == "" {
		return
	}
	org, fromOrg := s.registered(rt.Domain), s.registered(from.Domain)
	if org == fromOrg || listAddress(fields, rt, org) {
		return
	}
	s.fire(ReplyToOtherOrg, "replies go to %s, outside %s", rt.Address(), fromOrg)
}

// listAddress reports whether rt, whose registered domain is org, is
// the address of the mailing list that carried the message: the one
// List-Post names (RFC 2369 §3.4), or one in the domain of its List-Id
// (RFC 2919). Lists that set Reply-To to themselves send replies to the
// list, not away from the author.
func listAddress(fields []dkim.Field, rt Mailbox, org string) bool {
	addr := strings.ToLower(rt.Address())
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.Name, "List-Post"):
			v := strings.ToLower(f.Value())
			if i := strings.Index(v, "mailto:"); i >= 0 {
				post, _, _ := strings.Cut(v[i+len("mailto:"):], ">")
				post, _, _ = strings.Cut(post, "?")
				if strings.TrimSpace(post) == addr {
					return true
				}
			}
		case strings.EqualFold(f.Name, "List-Id"):
			v := strings.ToLower(f.Value())
			if i, j := strings.LastIndexByte(v, '<'), strings.LastIndexByte(v, '>'); i >= 0 && j > i {
				if id := strings.TrimSpace(v[i+1 : j]); org != "" && (id == org || strings.HasSuffix(id, "."+org)) {
					return true
				}
			}
		}
	}
	return false
}

// checkOwnDomain fires own_domain_impersonation for mail that claims to
// come from the recipient's own organization ("mailbox full", "password
// expires", "quarantined messages" from a fake mail administrator) in
// its From address or its display name, when nothing authenticates the
// claim: no DMARC pass for a From in that organization, no DKIM
// signature and no SPF pass for a domain of it (RFC 7489 §3.1, relaxed
// alignment). Real mail from one's own organization is signed or comes
// from its own servers.
func (s *scoring) checkOwnDomain(in Input, from Mailbox) {
	if len(in.Rcpts) == 0 || in.DMARCOverridden {
		return
	}
	fromOrg := s.registered(from.Domain)
	name := ""
	for _, rcpt := range in.Rcpts {
		_, d, ok := cutAddress(strings.Trim(rcpt, "<> "))
		if !ok || d == "" {
			continue
		}
		org := s.registered(d)
		if s.ownedBy(org, in.DKIMPass) || in.SPF == "pass" && in.SPFDomain != "" && s.registered(in.SPFDomain) == org {
			continue // the organization's own servers or signature
		}
		if org == fromOrg {
			if in.DMARC != "pass" {
				s.fire(OwnDomain, "From %s claims %s, the recipient's own domain, and neither DMARC, DKIM nor SPF authenticates it", from.Address(), org)
				return
			}
			continue
		}
		if from.Name == "" {
			continue
		}
		if name == "" {
			name = Normalize(from.Name)
		}
		if containsDomain(name, org) {
			s.fire(OwnDomain, "display name %q names %s, the recipient's own domain, but the mail is from %s", clip(from.Name), org, from.Address())
			return
		}
	}
}

// checkBrandSpoof fires brand_domain_spoof for a From in a brand's own
// domain that nothing authenticates while the domain publishes no DMARC
// policy that would have the receiver act (no record, or p=none): the
// forgery only DMARC could catch (RFC 7489 §2, RFC 9989 §2), which such
// a brand leaves to the receiver. It needs DMARC evaluated: without a
// result (offline, or DNS down) it says nothing. It runs after
// dmarc_none_brand, which it would otherwise double.
func (s *scoring) checkBrandSpoof(in Input, from Mailbox) {
	if in.DMARCOverridden || !(in.DMARC == "none" || in.DMARC == "fail" && in.DMARCPolicy == "none") {
		return
	}
	org := s.registered(from.Domain)
	if s.ownedBy(org, in.DKIMPass) || in.SPF == "pass" && in.SPFDomain != "" && s.registered(in.SPFDomain) == org {
		return // the brand's own signature or servers
	}
	ix := s.c.brands
	for i := range ix.brands {
		if ix.owns(i, from.Domain) {
			policy := "has no DMARC record"
			if in.DMARCPolicy == "none" {
				policy = "publishes DMARC p=none"
			}
			s.fire(BrandDomainSpoof, "From %s is %s's own domain, which %s, and neither DKIM nor SPF authenticates it (SPF %s)", from.Address(), s.brand(i), policy, orNone(in.SPF))
			return
		}
	}
}

// orNone is s, or "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// containsDomain reports whether text names domain as a whole name:
// "rcpt.test" in "rcpt.test mail admin", not in "abcrcpt.test".
func containsDomain(text, domain string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], domain)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(domain)
		before := start == 0 || !isHostByte(text[start-1])
		// A full stop ends a sentence, not the name: "... of rcpt.test."
		after := end == len(text) || !isHostByte(text[end]) || text[end] == '.' && (end+1 == len(text) || !isHostByte(text[end+1]))
		if before && after {
			return true
		}
		i = start + 1
	}
}

func isHostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

func (s *scoring) checkFirstSeen(ctx context.Context, from Mailbox) {
	if s.c.History == nil {
		return
	}
	now := time.Now()
	if s.c.Now != nil {
		now = s.c.Now()
	}
	org := s.registered(from.Domain)
	if ch, ok := s.c.History.(CachedHistory); ok {
		if first, since, ok := ch.SeenDomainCached(org, now); ok {
			s.firstSeen(org, now, first, since)
			return
		}
	}
	timeout := s.c.HistoryTimeout
	if timeout <= 0 {
		timeout = 250 * time.Millisecond
	}
	// In its own goroutine: a database driver may not give up a lock
	// wait when ctx ends, and the message must not wait for it.
	type seen struct {
		first, since time.Time
		err          error
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan seen, 1)
	go func() {
		var r seen
		r.first, r.since, r.err = s.c.History.SeenDomain(hctx, org, now)
		done <- r
	}()
	var r seen
	select {
	case r = <-done:
	case <-hctx.Done():
		r.err = fmt.Errorf("store did not answer in %s", timeout)
	}
	if r.err != nil {
		s.r.Problems = append(s.r.Problems, "first-seen: "+r.err.Error())
		return
	}
	s.firstSeen(org, now, r.first, r.since)
}

func (s *scoring) firstSeen(org string, now, first, since time.Time) {
	if now.Sub(since) >= s.c.Warmup && now.Sub(first) < 24*time.Hour {
		s.fire(FirstSeenDomain, "%s first seen %s, history kept since %s", org, first.UTC().Format(time.RFC3339), since.UTC().Format("2006-01-02"))
	}
}

// domainInText finds a domain shown in link text ("www.amazon.co.jp",
// "https://amazon.co.jp/...").
var domainInText = regexp.MustCompile(`(?i)(?:https?://)?((?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+[a-z]{2,})`)

// nameOrgs are the organizations of the addresses a From's display
// name shows: a forwarding service writes the original sender there
// ("Newsletter news@list.example [user/alias]" <alias@forwarder.example>).
func nameOrgs(from Mailbox) []string {
	if !strings.Contains(from.Name, "@") {
		return nil
	}
	var out []string
	for _, addr := range emailPattern.FindAllString(Normalize(shownOrder(from.Name)), 5) {
		_, d, _ := strings.Cut(addr, "@")
		if org := registered(d); org != "" && !slices.Contains(out, org) {
			out = append(out, org)
		}
	}
	return out
}

// checkLinks looks at every link; own are the organizations that sent
// the message (From's, and the verified DKIM d= domains'). A link
// through the redirector of an organization whose address the display
// name shows counts as the sender's own too: it leads to whom the
// message says it is from, where a lure leads elsewhere (a brand's site
// shown still fires, and display_name_address weighs the name itself).
func (s *scoring) checkLinks(fromOrg string, nameOrgs, dkimPass []string) {
	ix := s.c.brands
	var seen set[Link]
	var hosts set[string]
	for _, l := range s.r.Content.Links {
		if !seen.add(l) {
			continue // newsletters repeat their links
		}
		// Most links are plain (PlainHTTPHost); the others go through
		// url.Parse.
		host, plain := PlainHTTPHost(l.Href)
		if !plain {
			raw := l.Href
			if strings.HasPrefix(strings.ToLower(raw), "www.") {
				raw = "http://" + raw
			}
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				continue
			}
			host = strings.ToLower(u.Hostname())
			if u.User != nil {
				s.fire(URLUserinfo, "%s shows %q before the @ but goes to %s", clip(l.Href), u.User.String(), host)
			}
		}
		if isIPLiteral(host) {
			s.fire(URLIPLiteral, "%s goes to an address, not a name", clip(l.Href))
			continue
		}
		if hosts.add(host) {
			s.checkHost(host)
		}
		if l.Text == "" {
			continue
		}
		shown := shownHost(l.Text)
		if shown == "" {
			continue
		}
		shownOrg, target := s.registered(shown), s.registered(host)
		if shownOrg == target || shownOrg == fromOrg {
			continue
		}
		// A brand's site shown by someone else, whatever the link goes
		// through.
		brand := -1
		for i := range ix.brands {
			if ix.owns(i, shownOrg) && !ix.owns(i, fromOrg) {
				brand = i
				break
			}
		}
		if brand < 0 && (target == fromOrg || clickTrackers[target] || s.ownedBy(target, dkimPass) || slices.Contains(nameOrgs, target)) {
			// The sender's links tracked through its own or its mail
			// service's redirector: newsletters do this.
			continue
		}
		s.fire(URLTextMismatch, "link shows %s but goes to %s", shown, host)
		if brand >= 0 {
			s.brand(brand)
		}
	}
}

// set is a set that stays a slice while it is small, as the links of
// most messages are: a map costs more than a few comparisons.
type set[T comparable] struct {
	few  []T
	many map[T]bool
}

// add adds v and reports whether it was not there yet.
func (s *set[T]) add(v T) bool {
	if s.many != nil {
		if s.many[v] {
			return false
		}
		s.many[v] = true
		return true
	}
	if slices.Contains(s.few, v) {
		return false
	}
	if len(s.few) < 16 {
		s.few = append(s.few, v)
		return true
	}
	s.many = make(map[T]bool, 2*len(s.few))
	for _, x := range s.few {
		s.many[x] = true
	}
	s.many[v] = true
	return true
}

// shownHost returns the host name a link's text shows, "" when it shows
// none: a name under a real public suffix, written as a host. "ASP.NET"
// and "Node.JS" are product names: a suffix in capitals counts only after
// http:// or www.
func shownHost(text string) string {
	shown := domainInText.FindStringSubmatch(Normalize(text))
	if shown == nil {
		return ""
	}
	host := shown[1]
	suffix, icann := publicsuffix.PublicSuffix(host)
	if !icann && !strings.Contains(suffix, ".") || suffix == host {
		return "" // no such top-level domain ("file.txt", "readme.md" aside)
	}
	if !strings.HasPrefix(shown[0], "http") && !strings.HasPrefix(host, "www.") && strings.Contains(text, "."+strings.ToUpper(suffix)) {
		return ""
	}
	return host
}

// ownedBy reports whether org is the registered domain of one of the
// verified DKIM d= domains.
func (s *scoring) ownedBy(org string, dkimPass []string) bool {
	for _, d := range dkimPass {
		if s.registered(d) == org {
			return true
		}
	}
	return false
}

// checkHost looks at a link's host name: punycode, brand look-alikes.
func (s *scoring) checkHost(host string) {
	ix := s.c.brands
	uhost, isIDN := unicodeDomain(host)
	if !isIDN && !isLatin(host) {
		isIDN = true
	}
	if isIDN {
		s.fire(URLPunycode, "link host %s is %s", host, uhost)
	}
	for _, m := range s.matchHost(uhost) {
		if !ix.owns(m.brand, host) {
			s.fire(URLBrandLookalike, "link host %s: %s %q of %s", uhost, m.how, m.token, s.brand(m.brand))
		}
	}
}

// isIPLiteral recognizes dotted, bracketed, and single-number hosts
// (http://3221225985/ is 192.0.2.1 to a browser).
func isIPLiteral(host string) bool {
	h := strings.Trim(host, "[]")
	if !strings.Contains(h, ":") && strings.IndexFunc(h, notNumeral) >= 0 {
		// Neither IPv6 nor a number in any base: a name, as most are.
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if _, err := strconv.ParseUint(h, 0, 32); err == nil {
		return true
	}
	return false
}

// notNumeral reports a character that is in no IPv4 address and no
// number strconv.ParseUint reads with base 0 (0x1f, 0o17, 0b1, 1_000).
func notNumeral(r rune) bool {
	return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' || strings.ContainsRune(".xXoObB_", r))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func (s *scoring) checkAuth(in Input) {
	if in.DMARC == "fail" && !in.DMARCOverridden {
		s.fire(AuthDMARCFail, "DMARC fail (p=%s)", in.DMARCPolicy)
	}
	if in.SPF == "fail" || in.SPF == "softfail" {
		s.fire(AuthSPFFail, "SPF %s for %s", in.SPF, in.ClientIP)
	}
	if in.DKIMFail && len(in.DKIMPass) == 0 {
		s.fire(AuthDKIMFail, "a DKIM signature failed and none passed")
	}
	if in.SPF != "pass" && len(in.DKIMPass) == 0 && !in.DMARCOverridden {
		s.fire(AuthNone, "neither SPF (%s) nor any DKIM signature passed", in.SPF)
	}
	if in.IPRev == "fail" || in.IPRev == "permerror" {
		s.fire(AuthIPRevFail, "%s has no matching forward-confirmed PTR", in.ClientIP)
	}
	if in.S25R {
		s.fire(AuthS25R, "%s looks like a dynamic client", in.PTRName)
	}
	if in.ARC == "fail" {
		s.fire(AuthARCFail, "ARC chain failed")
	}
}
