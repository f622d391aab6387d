// Package greylist defers the first delivery attempt of a triplet (client
// network, envelope sender, recipient) for a while, as postgrey does
// (https://postgrey.schweikert.ch/; RFC 6647): a real mail server retries
// (RFC 5321 §4.5.4.1), most spam software does not.
//
// By default only the clients Rgrey would greylist are: those with no
// forward-confirmed reverse name (Postfix's client_name "unknown") or
// whose name matches an S25R rule (internal/conncheck), so mail from
// well-configured servers is never delayed. Mode "all" greylists every
// client not exempt.
//
// The state lives behind Store (internal/store keeps it in SQLite or in
// one PostgreSQL database that several MX hosts share), with postgrey's
// rules: a triplet passes once it is retried at least Delay after its
// first attempt and within RetryWindow; a passed triplet is forgotten
// after MaxAge without mail; a client whose triplets passed AutoAllow
// times (counted at most once an hour) is no longer greylisted.
//
// With write-behind (StartWriteBehind, which the policy server starts),
// a deferral is answered from a read of the store, and its triplet is
// written with others in one transaction a few milliseconds later: a
// botnet's flood of new triplets then costs a read each and a share of a
// batch, where it cost a write each (writeBehind says what a crash loses).
package greylist

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailwall/internal/conncheck"
	"mailwall/internal/dnsx"
)

// Modes say which clients are greylisted.
const (
	ModeRgrey = "rgrey" // no forward-confirmed PTR, or an S25R-looking one
	ModeAll   = "all"   // every client not exempt
)

// Postgrey's defaults (postgrey(8): --delay, --retry-window, --max-age,
// --auto-whitelist-clients).
const (
	DefaultDelay       = 300 * time.Second
	DefaultRetryWindow = 48 * time.Hour
	DefaultMaxAge      = 35 * 24 * time.Hour
	DefaultAutoAllow   = 5
	// DefaultText is the deferral's reply after "4.7.1 ", in the spirit of
	// postgrey's greylist_text: {seconds} is the time left, {reason} why
	// this client is greylisted, {client} its address, {recipient_domain}
	// the recipient's domain.
	DefaultText = "Greylisted, see RFC 6647 ({reason}): try again in {seconds} seconds"
	// MaxTarpit bounds the wait before a deferral: Postfix gives a policy
	// server smtpd_policy_service_timeout (100 s by default) per answer.
	MaxTarpit = 60 * time.Second
	// countEvery is how often a client's pass is counted (postgrey: one
	// an hour), so one burst of retries does not auto-allow a client.
	countEvery = time.Hour
)

// Config is what a Greylister does.
type Config struct {
	Mode        string        // ModeRgrey (default) or ModeAll
	Delay       time.Duration // before a retry passes
	RetryWindow time.Duration // for the first retry; past it the delay starts over
	MaxAge      time.Duration // a passed triplet, or a client's count, kept after its last mail
	AutoAllow   int           // passes after which a client is not greylisted; 0: never
	Text        string        // deferral text after "4.7.1 " (DefaultText)
	Tarpit      time.Duration // wait before answering a deferral (taRgrey); 0: none
	// AllowNets are never greylisted. Loopback is not exempt by itself
	// (the lab sends from 127.0.0.x): list it here, as mailwall's
	// defaults do.
	AllowNets []netip.Prefix
	// S25R matches dynamic-looking names; nil: the published rules.
	S25R *conncheck.S25R
	// VerifyNames makes the Greylister confirm the client's PTR itself
	// through Resolver (iprev) instead of trusting the request's
	// ClientName; a request without a ClientName is verified the same
	// way when Resolver is set.
	VerifyNames bool
	Resolver    dnsx.Resolver
	// Now is the clock; nil: time.Now. For tests.
	Now func() time.Time
}

// Triplet is one greylist key. Client is the network (ClientKey),
// Sender and Recipient are normalized (NormalizeSender, lower case).
type Triplet struct{ Client, Sender, Recipient string }

// Timing is what the store needs to update a triplet atomically.
type Timing struct{ Delay, RetryWindow, MaxAge time.Duration }

// Seen is a triplet's state after a request: when its delay began, and
// when it passed (zero: not yet). A store that leaves a passed triplet
// untouched (seen again within TouchEvery) may answer with any non-zero
// Passed before the request's time, without reading it.
type Seen struct{ First, Passed time.Time }

// TouchEvery is how often a store must record that a passed triplet is
// still in use: its expiry (MaxAge) counts from that, so it may run up to
// TouchEvery late, and a sender's steady mail costs no write.
const TouchEvery = time.Hour

// Store keeps the greylist. Each call is one statement, atomic in the
// database, so that several hosts sharing it agree.
type Store interface {
	// SeenTriplet records a request for t at now and returns its state
	// after it, by postgrey's rules: a new triplet (or one unseen for
	// MaxAge) starts its delay now; one not yet passed whose delay began
	// more than RetryWindow ago starts again; one retried at least Delay
	// after its start passes (Passed is set to now, once). A passed
	// triplet's last use is recorded at most once per TouchEvery.
	SeenTriplet(ctx context.Context, t Triplet, now time.Time, tm Timing) (Seen, error)
	// ClientPasses returns how many of the client's triplets passed, and
	// when the count last moved; zero for a client unseen for maxAge.
	ClientPasses(ctx context.Context, client string, now time.Time, maxAge time.Duration) (passes int, last time.Time, err error)
	// CountClientPass counts one pass for client at now, unless one was
	// counted less than an hour ago; a count unseen for maxAge starts
	// again at one.
	CountClientPass(ctx context.Context, client string, now time.Time, maxAge time.Duration) error
}

// TripletClientStore is a Store that also records a triplet and reads
// its client's passes in one statement (internal/store): a request that
// needs both, the first of a new client, costs one round trip.
type TripletClientStore interface {
	Store
	// SeenTripletClient is SeenTriplet of t and ClientPasses of client
	// at once. When the triplet had passed and the store left it
	// untouched (TouchEvery), passes is -1: unknown, and not needed.
	SeenTripletClient(ctx context.Context, t Triplet, client string, now time.Time, tm Timing) (seen Seen, passes int, last time.Time, err error)
}

// Request is what a greylisting decision reads from one RCPT.
type Request struct {
	IP netip.Addr
	// ClientName is Postfix's client_name: the forward-confirmed name,
	// or "unknown" (SMTPD_POLICY_README); "" when the client sent none.
	ClientName    string
	Sender        string // envelope sender; "" for a bounce
	Recipient     string
	Authenticated bool // SASL login (sasl_username): never greylisted
	// Listed, when not empty, makes the client subject whatever the
	// mode says, with this reason: a DNS blocklist score at or above
	// dnsbl.greylist_threshold (issue 25 item 3).
	Listed string
}

// Outcome is what a check did, for logs and metrics.
type Outcome string

// Outcomes.
const (
	Exempt      Outcome = "exempt"       // allowed network, authenticated
	NotSubject  Outcome = "not_subject"  // rgrey: a verified, static-looking name
	Deferred    Outcome = "deferred"     // first attempt, or retried too soon
	Passed      Outcome = "passed"       // retried after the delay (or passed before)
	AutoAllowed Outcome = "auto_allowed" // the client passed AutoAllow times
	Failed      Outcome = "error"        // the store failed: not greylisted
)

// Decision is the answer for one request.
type Decision struct {
	Outcome Outcome
	Reason  string        // why the client is subject: the S25R rule, "no verified host name", "all"
	Wait    time.Duration // Deferred: time left before a retry passes
	Text    string        // Deferred: the reply, "4.7.1 ..."
	Tarpit  time.Duration // Deferred: wait this long before answering
	Err     error         // Failed
}

// Greylister decides. It is safe for concurrent use.
//
// It remembers passed triplets and auto-allowed clients for as long as
// the store would answer them without a write (passCache), so that their
// mail costs no statement; a passed triplet's expiry (MaxAge) may then
// run up to twice TouchEvery late. With a TripletClientStore, a request
// that needs the client's count and its triplet asks both in one
// statement, so an auto-allowed client's new triplets are recorded too,
// where postgrey only reads the count: another address of its /24
// sending the same mail a delay later then passes at once.
type Greylister struct {
	cfg    Config
	store  Store
	now    func() time.Time
	passed *passCache
	// wb, once started (StartWriteBehind), records deferred triplets
	// a few milliseconds after their answer, in batches.
	wb     atomic.Pointer[writeBehind]
	wbOnce sync.Once
}

// New checks cfg, fills in postgrey's defaults for zero durations and
// the default text (AutoAllow 0 stays off), and returns a Greylister
// over st.
func New(cfg Config, st Store) (*Greylister, error) {
	if st == nil {
		return nil, fmt.Errorf("greylist: no store")
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeRgrey
	case ModeRgrey, ModeAll:
	default:
		return nil, fmt.Errorf("greylist: mode %q is not %s or %s", cfg.Mode, ModeRgrey, ModeAll)
	}
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultDelay
	}
	if cfg.RetryWindow <= 0 {
		cfg.RetryWindow = DefaultRetryWindow
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.RetryWindow < cfg.Delay || cfg.MaxAge < cfg.RetryWindow {
		return nil, fmt.Errorf("greylist: want delay (%s) <= retry_window (%s) <= max_age (%s)", cfg.Delay, cfg.RetryWindow, cfg.MaxAge)
	}
	if cfg.AutoAllow < 0 {
		return nil, fmt.Errorf("greylist: auto_allow %d is negative", cfg.AutoAllow)
	}
	if cfg.Tarpit < 0 || cfg.Tarpit > MaxTarpit {
		return nil, fmt.Errorf("greylist: tarpit %s is not between 0 and %s (Postfix waits smtpd_policy_service_timeout, 100s, for an answer)", cfg.Tarpit, MaxTarpit)
	}
	if cfg.Text == "" {
		cfg.Text = DefaultText
	}
	if cfg.S25R == nil {
		cfg.S25R = &conncheck.S25R{Rules: conncheck.DefaultS25R()}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Greylister{cfg: cfg, store: st, now: cfg.Now, passed: newPassCache(passCacheSize)}, nil
}

// Check decides whether the request waits. A store failure gives Failed:
// the mail is not greylisted (greylisting is an extra, never a reason to
// hold mail longer than the store is down).
func (g *Greylister) Check(ctx context.Context, r Request) Decision {
	ip := r.IP.Unmap()
	if !ip.IsValid() || r.Authenticated {
		return Decision{Outcome: Exempt}
	}
	for _, p := range g.cfg.AllowNets {
		if p.Contains(ip) {
			return Decision{Outcome: Exempt}
		}
	}
	reason, subject := g.subject(ctx, ip, r.ClientName)
	if !subject && r.Listed != "" {
		reason, subject = r.Listed, true
	}
	if !subject {
		return Decision{Outcome: NotSubject}
	}
	now := g.now()
	client := ClientKey(ip)
	// Counted per host address, as postgrey does (per /64 for IPv6,
	// whose hosts change addresses inside it): a /24 of dynamic
	// addresses is not allowed because one of them retried.
	awl := autoAllowKey(ip)
	awlKey := keyOf('c', awl)
	if g.cfg.AutoAllow > 0 && g.passed.get(awlKey, now.Unix()) {
		return Decision{Outcome: AutoAllowed, Reason: reason}
	}
	t := Triplet{Client: client, Sender: NormalizeSender(r.Sender), Recipient: strings.ToLower(r.Recipient)}
	tKey := keyOf('t', t.Client, t.Sender, t.Recipient)
	if g.passed.get(tKey, now.Unix()) {
		// The store would leave it as it is: no statement. (Were the
		// client auto-allowed meanwhile by another host, its mail
		// passes all the same.)
		return Decision{Outcome: Passed, Reason: reason}
	}
	notYet := keyOf('n', awl)
	if w := g.wb.Load(); w != nil {
		if d, ok := g.checkBehind(ctx, w, t, tKey, ip, awl, awlKey, notYet, reason, r.Recipient, now); ok {
			return d
		}
	}
	tm := Timing{Delay: g.cfg.Delay, RetryWindow: g.cfg.RetryWindow, MaxAge: g.cfg.MaxAge}
	var (
		seen     Seen
		seenDone bool
	)
	if g.cfg.AutoAllow > 0 && !g.passed.get(notYet, now.Unix()) {
		var (
			n    int
			last time.Time
			err  error
		)
		if both, ok := g.store.(TripletClientStore); ok {
			// One statement for both. The triplet is recorded even
			// when the client turns out auto-allowed: a row more,
			// where postgrey would have read only.
			seen, n, last, err = both.SeenTripletClient(ctx, t, awl, now, tm)
			seenDone = true
			if err == nil && n < 0 {
				g.passed.put(tKey, now.Add(TouchEvery).Unix())
				return Decision{Outcome: Passed, Reason: reason}
			}
		} else {
			n, last, err = g.store.ClientPasses(ctx, awl, now, g.cfg.MaxAge)
		}
		if err != nil {
			return Decision{Outcome: Failed, Reason: reason, Err: err}
		}
		if d, ok := g.autoAllow(ctx, awl, awlKey, notYet, n, last, now, reason); ok {
			return d
		}
	}
	if !seenDone {
		var err error
		if seen, err = g.store.SeenTriplet(ctx, t, now, tm); err != nil {
			return Decision{Outcome: Failed, Reason: reason, Err: err}
		}
	}
	if !seen.Passed.IsZero() {
		g.passed.put(tKey, now.Add(TouchEvery).Unix())
	}
	if seen.Passed.IsZero() {
		return g.deferral(reason, seen.First, now, ip, r.Recipient)
	}
	if g.cfg.AutoAllow > 0 && seen.Passed.Unix() == now.Unix() {
		// This request is the one that passed: count it for the client.
		if err := g.store.CountClientPass(ctx, autoAllowKey(ip), now, g.cfg.MaxAge); err != nil {
			return Decision{Outcome: Passed, Reason: reason, Err: err}
		}
	}
	return Decision{Outcome: Passed, Reason: reason}
}

// checkBehind decides with write-behind (writeBehind): from the triplet
// waiting to be written, or from its row and its client's passes read
// without a write. A deferral is answered at once and its triplet
// queued; a pass the store would not write is answered too. ok false:
// the request goes the way it goes without write-behind (a pass to
// record, or write-behind full or closed).
func (g *Greylister) checkBehind(ctx context.Context, w *writeBehind, t Triplet, tKey cacheKey, ip netip.Addr, awl string, awlKey, notYet cacheKey,
	reason, rcpt string, now time.Time) (d Decision, ok bool) {
	n := now.Unix()
	if first, ok := w.pendingFirst(tKey); ok {
		if n-first < secs(g.cfg.Delay) {
			// A retry before the delay is over: the waiting write
			// stands for it (it would only move last_seen).
			return g.deferral(reason, time.Unix(first, 0), now, ip, rcpt), true
		}
		if err := w.waitWritten(ctx, tKey); err != nil {
			return Decision{Outcome: Failed, Reason: reason, Err: err}, true
		}
	}
	if !w.hasRoom() {
		return Decision{}, false
	}
	needClient := g.cfg.AutoAllow > 0 && !g.passed.get(notYet, n)
	client := ""
	if needClient {
		client = awl
	}
	row, passes, last, err := w.st.PeekTripletClient(ctx, t, client, now, g.cfg.MaxAge)
	if err != nil {
		return Decision{Outcome: Failed, Reason: reason, Err: err}, true
	}
	next, write := NextRow(row, n, w.tm)
	if next.Passed != 0 {
		if write {
			return Decision{}, false // a pass, recorded now for every host
		}
		g.passed.put(tKey, now.Add(TouchEvery).Unix())
		return Decision{Outcome: Passed, Reason: reason}, true
	}
	if needClient {
		if d, ok := g.autoAllow(ctx, awl, awlKey, notYet, passes, last, now, reason); ok {
			// Recorded as without write-behind (a row more): a sibling
			// of the /24 then passes a delay later.
			w.add(tKey, t, n, next.First)
			return d, true
		}
	}
	if !w.add(tKey, t, n, next.First) {
		return Decision{}, false
	}
	return g.deferral(reason, time.Unix(next.First, 0), now, ip, rcpt), true
}

// autoAllow decides from the client's passes (n, counted last at last):
// ok when the client is auto-allowed. It remembers a client short of it
// (notYet) or allowed (awlKey), and keeps an allowed client's count from
// expiring.
func (g *Greylister) autoAllow(ctx context.Context, awl string, awlKey, notYet cacheKey, n int, last, now time.Time, reason string) (Decision, bool) {
	if n+1 < g.cfg.AutoAllow {
		// Passes are counted an hour apart at least (on every host
		// sharing the store): within the next hour the count grows
		// by one at most, and stays short of AutoAllow.
		g.passed.put(notYet, now.Add(countEvery).Unix())
	}
	if n < g.cfg.AutoAllow {
		return Decision{}, false
	}
	if now.Sub(last) >= countEvery {
		// Keep the client from expiring (postgrey counts on).
		if err := g.store.CountClientPass(ctx, awl, now, g.cfg.MaxAge); err != nil {
			return Decision{Outcome: AutoAllowed, Reason: reason, Err: err}, true
		}
		last = now
	}
	g.passed.put(awlKey, last.Add(countEvery).Unix())
	return Decision{Outcome: AutoAllowed, Reason: reason}, true
}

// deferral is the answer to a triplet whose delay began at first.
func (g *Greylister) deferral(reason string, first, now time.Time, ip netip.Addr, rcpt string) Decision {
	wait := g.cfg.Delay - now.Sub(first)
	if wait < time.Second {
		wait = time.Second // same second as a pass elsewhere: say retry
	}
	return Decision{Outcome: Deferred, Reason: reason, Wait: wait, Text: g.text(reason, wait, ip, rcpt), Tarpit: g.cfg.Tarpit}
}

// subject says whether the client is greylisted in this mode, and why.
func (g *Greylister) subject(ctx context.Context, ip netip.Addr, name string) (string, bool) {
	if g.cfg.Mode == ModeAll {
		return "all clients", true
	}
	if g.cfg.Resolver != nil && (g.cfg.VerifyNames || name == "") {
		rev := conncheck.CheckIPRev(ctx, g.cfg.Resolver, ip)
		name = "unknown"
		if rev.Result == "pass" {
			name = rev.Name
		}
	}
	rule, ok := g.cfg.S25R.Match(ip, name)
	if !ok {
		return "", false
	}
	if rule == "no verified host name" {
		return "no forward-confirmed reverse DNS for " + ip.String(), true
	}
	return "host name " + shortName(name) + " looks dynamic (S25R " + rule + ")", true
}

// text fills in the deferral text; controls become spaces (the reply is
// one SMTP line). It is written out, where a strings.Replacer built for
// each deferral cost a sixth of a new triplet's CPU in the policy server.
func (g *Greylister) text(reason string, wait time.Duration, ip netip.Addr, rcpt string) string {
	_, domain, _ := strings.Cut(rcpt, "@")
	secs := int64((wait + time.Second - 1) / time.Second)
	var b strings.Builder
	b.Grow(len("4.7.1 ") + len(g.cfg.Text) + len(reason) + 64)
	b.WriteString("4.7.1 ")
	for rest := g.cfg.Text; rest != ""; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "{seconds}"):
			b.WriteString(strconv.FormatInt(secs, 10))
			rest = rest[len("{seconds}"):]
		case strings.HasPrefix(rest, "{reason}"):
			b.WriteString(reason)
			rest = rest[len("{reason}"):]
		case strings.HasPrefix(rest, "{client}"):
			b.WriteString(ip.String())
			rest = rest[len("{client}"):]
		case strings.HasPrefix(rest, "{recipient_domain}"):
			b.WriteString(shortName(strings.ToLower(domain)))
			rest = rest[len("{recipient_domain}"):]
		default:
			b.WriteByte('{')
			rest = rest[1:]
		}
	}
	msg := b.String()
	if strings.IndexFunc(msg, control) < 0 {
		return msg
	}
	return strings.Map(func(r rune) rune {
		if control(r) {
			return ' '
		}
		return r
	}, msg)
}

func control(r rune) bool { return r < 0x20 || r == 0x7f }

// shortName bounds a name put in a reply (an SMTP reply line is at most
// 512 octets, RFC 5321 §4.5.3.1.5).
func shortName(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// ClientKey is the client's network in a triplet: its /24 for IPv4, its
// /64 for IPv6, since large senders retry from another address of the
// same pool (postgrey's default --lookup-by-subnet).
func ClientKey(ip netip.Addr) string {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// autoAllowKey is what a client's passes are counted by: the address
// for IPv4 (as postgrey's client auto-whitelist), the /64 for IPv6.
func autoAllowKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// NormalizeSender is the sender as a triplet keeps it, as postgrey's
// do_sender_substitutions makes it, so that one sender's mail shares a
// triplet: lower case; a BATV tag (prvs=tag-val=local, RFC draft
// levine-smtp-batv; also written prvs=local=tag-val) dropped; a +extension
// dropped; each run of digits standing alone between word boundaries
// (VERP counters, list bounce ids) replaced by "#". SRS addresses (SRS0=)
// are kept whole: their hash and timestamp change daily, and the domain
// that rewrote them is the one that retries. An address without "@" (a
// bounce's empty sender) is returned lower-cased.
func NormalizeSender(addr string) string {
	addr = strings.ToLower(addr)
	local, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return addr
	}
	if strings.HasPrefix(local, "prvs=") || strings.HasPrefix(local, "msprvs1=") {
		parts := strings.Split(local, "=")
		if len(parts) == 3 {
			// The tag is 10 characters of [0-9a-z] (K DDD SSSSSS); the
			// other part is the address's local part.
			switch {
			case batvTag(parts[1]) && !batvTag(parts[2]):
				local = parts[2]
			case batvTag(parts[2]) && !batvTag(parts[1]):
				local = parts[1]
			default:
				local = parts[2] // the standard order
			}
		}
	}
	if i := strings.IndexByte(local, '+'); i >= 0 {
		local = local[:i]
	}
	return replaceNumbers(local) + "@" + domain
}

// batvTag reports whether s begins like a BATV tag-val: ten characters of
// [0-9a-z] (postgrey's test).
func batvTag(s string) bool {
	if len(s) < 10 {
		return false
	}
	for i := range 10 {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// replaceNumbers replaces each run of digits between word boundaries
// (Perl's \b\d+\b: not next to a letter, digit or underscore) with "#".
func replaceNumbers(s string) string {
	word := func(c byte) bool {
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= '0' && c <= '9' && (i == 0 || !word(s[i-1])) {
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == len(s) || !word(s[j]) {
				b.WriteByte('#')
				i = j
				continue
			}
			b.WriteString(s[i:j])
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}
