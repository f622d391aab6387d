// Package reputation keeps the history of the identities that
// authentication vouched for, as mox does: for each DMARC-aligned From
// domain that passed DMARC (from_domain; for a subdomain, its
// registered domain too: from_org), each verified DKIM d= (dkim), each
// SPF-pass MAIL FROM domain (spf) and each client network, a /24 or
// /56 (net), how much ham and how much spam came from it, the
// evidence decaying with a half-life (30 days by default) so that an
// identity's past fades and a changed sender is judged by what it does
// now. The unauthenticated From is never counted: anyone can write it.
//
// Evidence comes from outcomes and from people: a message rejected or
// quarantined on the other analyzers' score is spam evidence; one
// delivered with a low score weak ham evidence; feedback (mailwall learn, the Junk folder
// watcher, the dashboard's buttons, through Feedback) counts several
// times more.
//
// The Analyzer turns the history into explained hits: reputation_bad
// (an identity with a mostly spam history), reputation_good (a long good
// history; a negative weight that never applies when DMARC failed and
// never takes the score below the largest strong hit of the others),
// reputation_new_brand (a message imitating a brand whose
// authenticated domains were never seen, or with none, whose network
// was never seen) and known_correspondent (an aligned From
// that our own users wrote to: mailwall records the recipients of the
// mail it signs). It may also learn the classifier's store model without
// asking (autolearn.go), behind guards against poisoning.
//
// The history lives in the store (several MX hosts on one PostgreSQL
// share it); each process reads it through a bounded cache and writes
// its evidence in batches from a goroutine of its own, so the milter
// never waits on a store write. A cache miss is one bounded read.
package reputation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailwall/internal/authres"
	"mailwall/internal/classify"
	"mailwall/internal/dkim"
)

// Kind is a kind of identity.
type Kind string

// The kinds of identity, strongest first.
const (
	FromDomain Kind = "from_domain" // RFC5322.From domain, DMARC pass
	// FromOrg is the registered domain of a From domain that is a
	// subdomain (DMARC pass): mail from its subdomains adds up there,
	// so a fresh subdomain is judged by its organization.
	FromOrg Kind = "from_org"
	DKIM    Kind = "dkim" // d= of a verified signature
	SPF     Kind = "spf"  // MAIL FROM (or HELO) domain, SPF pass
	Net     Kind = "net"  // the client's /24 (IPv4) or /56 (IPv6)
)

// Kinds lists the kinds, strongest first.
var Kinds = []Kind{FromDomain, FromOrg, DKIM, SPF, Net}

// ParseKind reads a kind's name.
func ParseKind(s string) (Kind, bool) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, true
		}
	}
	return "", false
}

// Key names one identity.
type Key struct {
	Kind     Kind
	Identity string
}

func (k Key) String() string { return string(k.Kind) + "=" + k.Identity }

// Counts are an identity's decayed evidence as of Updated.
type Counts struct {
	Ham, Spam float64
	FirstSeen time.Time
	Updated   time.Time
}

// Entry is an identity with its counts.
type Entry struct {
	Key
	Counts
}

// Delta is evidence to add to an identity, as of At.
type Delta struct {
	Key
	Ham, Spam float64
	At        time.Time
}

// Store keeps reputation, correspondents and learning quotas
// (internal/store implements it). AddReputation decays what it holds to
// each delta's At (never forwards in time) before adding, so that hosts
// writing at once add up.
type Store interface {
	ReputationCounts(ctx context.Context, keys []Key) (map[Key]Counts, error)
	AddReputation(ctx context.Context, deltas []Delta, halfLife time.Duration) error
	TopReputation(ctx context.Context, kind Kind, n int) ([]Entry, error)
	// KnownCorrespondents returns those of addrs (lower case) that our
	// users wrote to.
	KnownCorrespondents(ctx context.Context, addrs []string) (map[string]bool, error)
	// AddCorrespondents records that our users wrote to addrs at at,
	// each counted n[addr] times.
	AddCorrespondents(ctx context.Context, addrs map[string]int64, at time.Time) error
	// TakeLearnQuota counts one message of class taught by domain on day
	// (Unix days) and says whether it was within max.
	TakeLearnQuota(ctx context.Context, day int64, domain, class string, max int) (bool, error)
	// PurgeReputation and PurgeCorrespondents delete what was not
	// updated since before.
	PurgeReputation(ctx context.Context, before time.Time) (int64, error)
	PurgeCorrespondents(ctx context.Context, before time.Time) (int64, error)
}

// Forgetting: an identity's row goes once its evidence has halved
// forgetHalfLives times (a 4,096th is left), a correspondent once our
// users have not written to it for forgetCorrespondent. The writer
// purges once a day.
const (
	forgetHalfLives     = 12
	forgetCorrespondent = 2 * 365 * 24 * time.Hour
	purgeEvery          = 24 * time.Hour
)

// Decay is the factor evidence keeps after d at half-life hl.
func Decay(d, hl time.Duration) float64 {
	if d <= 0 || hl <= 0 {
		return 1
	}
	return math.Exp2(-float64(d) / float64(hl))
}

// At returns c decayed to t.
func (c Counts) At(t time.Time, hl time.Duration) Counts {
	f := Decay(t.Sub(c.Updated), hl)
	c.Ham, c.Spam = c.Ham*f, c.Spam*f
	if t.After(c.Updated) {
		c.Updated = t
	}
	return c
}

// Total is all the evidence.
func (c Counts) Total() float64 { return c.Ham + c.Spam }

// SpamRatio is the share of spam in the evidence (0 with none).
func (c Counts) SpamRatio() float64 {
	if t := c.Total(); t > 0 {
		return c.Spam / t
	}
	return 0
}

// Identities are the identities of a message that authentication
// vouched for.
type Identities struct {
	FromDomain string   // DMARC pass only
	DKIM       []string // verified d=, at most MaxDKIM
	SPF        string   // SPF pass only
	Net        string   // "192.0.2.0/24", "2001:db8:0:100::/56"
}

// MaxDKIM bounds the DKIM identities of one message: a message may
// carry many signatures, and each costs a lookup.
const MaxDKIM = 4

// maxIdentity bounds an identity's length (a domain is at most 253).
const maxIdentity = 255

// Keys lists the identities as keys, strongest first.
func (ids Identities) Keys() []Key {
	out := make([]Key, 0, 3+len(ids.DKIM))
	add := func(k Kind, v string) {
		if v = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(v), ".")); v != "" && len(v) <= maxIdentity {
			for _, o := range out {
				if o.Kind == k && o.Identity == v {
					return
				}
			}
			out = append(out, Key{k, v})
		}
	}
	add(FromDomain, ids.FromDomain)
	if len(out) == 1 {
		if org := registered(out[0].Identity); org != out[0].Identity {
			add(FromOrg, org)
		}
	}
	for i, d := range ids.DKIM {
		if i == MaxDKIM {
			break
		}
		add(DKIM, d)
	}
	add(SPF, ids.SPF)
	add(Net, ids.Net)
	return out
}

// Network is the /24 (IPv4) or /56 (IPv6) an address is in, as a
// prefix string; "" for an invalid or unspecified address. Mapped
// IPv4 addresses count as IPv4.
func Network(ip netip.Addr) string {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() {
		return ""
	}
	bits := 24
	if ip.Is6() {
		bits = 56
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// ParseIdentities reads the identities from what a stored verdict
// keeps (internal/store's Verdict): the client address, the SPF result
// and MAIL FROM (HELO for a bounce), the DMARC result and From domain,
// and the DKIM summary ("pass:example.com fail:other.example"). It is
// what the dashboard's spam / not-spam buttons give Feedback.
func ParseIdentities(clientIP, spfResult, mailFrom, helo, dmarcResult, headerFrom, dkimSummary string) Identities {
	var ids Identities
	if dmarcResult == "pass" {
		ids.FromDomain = headerFrom
	}
	if spfResult == "pass" {
		if _, d, ok := strings.Cut(mailFrom, "@"); ok {
			ids.SPF = d
		} else if mailFrom == "" {
			ids.SPF = helo
		}
	}
	for _, s := range strings.Fields(dkimSummary) {
		if d, ok := strings.CutPrefix(s, "pass:"); ok && d != "" && len(ids.DKIM) < MaxDKIM {
			ids.DKIM = append(ids.DKIM, d)
		}
	}
	if ip, err := netip.ParseAddr(clientIP); err == nil {
		ids.Net = Network(ip)
	}
	return ids
}

// Config is how reputation weighs evidence and judges it.
type Config struct {
	HalfLife time.Duration // evidence halves in this long
	// OutcomeSpam is the spam evidence of a message rejected or
	// quarantined on the other analyzers' score (or near certainly junk
	// to the classifier); OutcomeHam the ham evidence of one delivered
	// under HamMaxScore; FeedbackWeight that of a person's judgement.
	OutcomeSpam, OutcomeHam, FeedbackWeight float64
	HamMaxScore                             int
	// QuarantineScore is the pipeline's quarantine threshold: spam
	// evidence needs the other analyzers to reach it.
	QuarantineScore int
	// CacheSize bounds the identities kept in memory; CacheTTL is how
	// long a read stays fresh (the other hosts' evidence shows after
	// that long); LookupTimeout bounds the read of a cache miss.
	CacheSize     int
	CacheTTL      time.Duration
	LookupTimeout time.Duration
	// FlushInterval: evidence is written this often, in one batch;
	// MaxPending identities waiting start a write at once, and past
	// twice that (a store that fails) the newest evidence is dropped.
	FlushInterval time.Duration
	MaxPending    int
	// OwnDomains are our signing domains: our users' mail to them is
	// not to correspondents.
	OwnDomains []string
	// Learn, when its Enabled, teaches the classifier's store model.
	Learn LearnConfig
}

// DefaultConfig is what an unconfigured Reputation uses.
func DefaultConfig() Config {
	return Config{HalfLife: 30 * 24 * time.Hour, OutcomeSpam: 1, OutcomeHam: 0.25, FeedbackWeight: 3, HamMaxScore: 10,
		QuarantineScore: 60, CacheSize: 100_000, CacheTTL: 5 * time.Minute, LookupTimeout: 500 * time.Millisecond,
		FlushInterval: 5 * time.Second, MaxPending: 10_000, Learn: DefaultLearnConfig()}
}

// Reputation is the shared history with its cache and writer. Start
// runs the writer; Close writes what is pending and stops it.
type Reputation struct {
	St  Store
	Cfg Config
	Log *slog.Logger
	// Model is the classifier's store for automatic learning (nil: no
	// learning).
	Model classify.CountStore
	// Now is the clock (tests set it); nil: time.Now.
	Now func() time.Time

	mu      sync.Mutex
	cache   map[Key]cached
	pending map[Key]Delta
	rcpts   map[string]int64 // correspondents to record, with counts
	known   map[string]knownAt
	learn   []learnItem
	dropped int64
	stats   LearnStats
	// downUntil: no reads before this (Unix ns) after a failed one.
	downUntil atomic.Int64
	extract   sync.Pool // *classify.Extractor

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

type cached struct {
	c      Counts
	found  bool // a row exists
	loaded time.Time
}

type knownAt struct {
	known  bool
	loaded time.Time
}

// New returns a Reputation on st with cfg (zero fields take
// DefaultConfig's values).
func New(st Store, cfg Config, log *slog.Logger) *Reputation {
	d := DefaultConfig()
	fill := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	if cfg.HalfLife <= 0 {
		cfg.HalfLife = d.HalfLife
	}
	fill(&cfg.OutcomeSpam, d.OutcomeSpam)
	fill(&cfg.OutcomeHam, d.OutcomeHam)
	fill(&cfg.FeedbackWeight, d.FeedbackWeight)
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = d.CacheSize
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = d.CacheTTL
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = d.LookupTimeout
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = d.FlushInterval
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = d.MaxPending
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reputation{St: st, Cfg: cfg, Log: log, cache: map[Key]cached{}, pending: map[Key]Delta{}, rcpts: map[string]int64{},
		known: map[string]knownAt{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (r *Reputation) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Lookup returns the counts of keys as of now: the cache's, with this
// host's pending evidence, and for identities not in the cache (or
// older than CacheTTL) one read of the store bounded by LookupTimeout.
// seen[k] says whether k has any history. On a store error the
// cached part is returned with the error; a stale entry is served as
// it is.
func (r *Reputation) Lookup(ctx context.Context, keys []Key) (counts map[Key]Counts, seen map[Key]bool, err error) {
	c, s := make([]Counts, len(keys)), make([]bool, len(keys))
	err = r.lookup(ctx, keys, c, s)
	counts, seen = make(map[Key]Counts, len(keys)), make(map[Key]bool, len(keys))
	for i, k := range keys {
		if s[i] || !c[i].Updated.IsZero() {
			counts[k], seen[k] = c[i], s[i]
		}
	}
	return counts, seen, err
}

// lookup is Lookup into counts and seen, by index in keys (the
// analyzer's: no maps a message). An identity with no history has zero
// Counts.
func (r *Reputation) lookup(ctx context.Context, keys []Key, counts []Counts, seen []bool) (err error) {
	now := r.now()
	var miss []Key
	r.mu.Lock()
	for _, k := range keys {
		e, ok := r.cache[k]
		if !ok || now.Sub(e.loaded) > r.Cfg.CacheTTL {
			miss = append(miss, k)
		}
	}
	r.mu.Unlock()
	if len(miss) > 0 {
		got, lerr := read(ctx, r, func(ctx context.Context) (map[Key]Counts, error) { return r.St.ReputationCounts(ctx, miss) })
		if lerr != nil {
			err = lerr
		} else {
			r.mu.Lock()
			r.makeRoom(len(miss))
			for _, k := range miss {
				c, ok := got[k]
				r.cache[k] = cached{c: c, found: ok, loaded: now}
			}
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, k := range keys {
		e, ok := r.cache[k]
		p, pending := r.pending[k]
		if !ok && !pending {
			continue
		}
		c := e.c.At(now, r.Cfg.HalfLife)
		if !ok || !e.found {
			c = Counts{Updated: now}
		}
		if pending {
			f := Decay(now.Sub(p.At), r.Cfg.HalfLife)
			c.Ham += p.Ham * f
			c.Spam += p.Spam * f
			if c.FirstSeen.IsZero() {
				c.FirstSeen = p.At
			}
		}
		counts[i] = c
		seen[i] = (ok && e.found) || pending
	}
	return err
}

// ErrStoreDown is a lookup not tried: the store failed a read less
// than storeDownFor ago.
var ErrStoreDown = errors.New("reputation: the store failed a moment ago; not asked")

// storeDownFor is how long after a failed read messages do not ask the
// store: one that hangs would otherwise cost every message with a new
// identity LookupTimeout.
const storeDownFor = 10 * time.Second

// read runs one read of the store for a message, bounded by
// LookupTimeout, unless the last read failed under storeDownFor ago.
func read[T any](ctx context.Context, r *Reputation, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	now := r.now()
	if until := r.downUntil.Load(); until != 0 && now.UnixNano() < until {
		return zero, ErrStoreDown
	}
	lctx, cancel := context.WithTimeout(ctx, r.Cfg.LookupTimeout)
	defer cancel()
	v, err := fn(lctx)
	if err != nil {
		r.downUntil.Store(now.Add(storeDownFor).UnixNano())
		return zero, fmt.Errorf("reputation: %w", err)
	}
	return v, nil
}

// makeRoom drops entries, picked at random (a map's order), when the
// cache would pass CacheSize: an eighth of it at a time, so a flood of
// new identities costs one sweep per many misses. r.mu is held.
func (r *Reputation) makeRoom(n int) {
	if len(r.cache)+n <= r.Cfg.CacheSize {
		return
	}
	drop := max(len(r.cache)/8, len(r.cache)+n-r.Cfg.CacheSize)
	for k := range r.cache {
		if drop == 0 {
			break
		}
		delete(r.cache, k)
		drop--
	}
}

// Add queues evidence for ids (ham and spam in units of messages) to be
// written with the next batch; Lookup sees it at once.
func (r *Reputation) Add(ids Identities, ham, spam float64) {
	r.add(ids.Keys(), ham, spam)
}

func (r *Reputation) add(keys []Key, ham, spam float64) {
	if len(keys) == 0 || (ham == 0 && spam == 0) {
		return
	}
	now := r.now()
	r.mu.Lock()
	full := false
	for _, k := range keys {
		p, ok := r.pending[k]
		if !ok && len(r.pending) >= 2*r.Cfg.MaxPending {
			r.dropped++
			continue
		}
		if ok {
			f := Decay(now.Sub(p.At), r.Cfg.HalfLife)
			p.Ham, p.Spam = p.Ham*f, p.Spam*f
		}
		p.Key, p.At = k, now
		p.Ham, p.Spam = p.Ham+max(ham, 0), p.Spam+max(spam, 0)
		r.pending[k] = p
		full = len(r.pending) >= r.Cfg.MaxPending
	}
	r.mu.Unlock()
	if full {
		r.poke()
	}
}

func (r *Reputation) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Feedback records a person's judgement of a message from ids (spam or
// not), at FeedbackWeight, and writes it at once: the dashboard's
// buttons, mailwall learn and the Junk watcher call it. retract takes
// such a judgement back (mailwall unlearn): the evidence is subtracted,
// never below 0.
func (r *Reputation) Feedback(ctx context.Context, ids Identities, spam, retract bool) error {
	w := r.Cfg.FeedbackWeight
	if retract {
		w = -w
	}
	keys := ids.Keys()
	if len(keys) == 0 {
		return nil
	}
	d := make([]Delta, 0, len(keys))
	now := r.now()
	for _, k := range keys {
		x := Delta{Key: k, At: now}
		if spam {
			x.Spam = w
		} else {
			x.Ham = w
		}
		d = append(d, x)
	}
	if err := r.St.AddReputation(ctx, d, r.Cfg.HalfLife); err != nil {
		return fmt.Errorf("reputation: feedback: %w", err)
	}
	r.mu.Lock()
	for _, k := range keys {
		delete(r.cache, k) // read again with the feedback
	}
	r.mu.Unlock()
	return nil
}

// Start runs the writer until Close. It is a no-op the second time.
func (r *Reputation) Start() {
	r.startOnce.Do(func() { go r.run() })
}

// Close writes what is pending (bounded by ctx) and stops the writer.
func (r *Reputation) Close(ctx context.Context) error {
	var err error
	r.closeOnce.Do(func() {
		started := true
		r.startOnce.Do(func() { started = false })
		if started {
			close(r.stop)
			<-r.done
		}
		err = r.Flush(ctx)
	})
	return err
}

func (r *Reputation) run() {
	defer close(r.done)
	t := time.NewTicker(r.Cfg.FlushInterval)
	defer t.Stop()
	var purged time.Time
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.wake:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := r.Flush(ctx); err != nil {
			r.Log.Warn("reputation: evidence not written, kept for the next try", "err", err)
		}
		if now := r.now(); now.Sub(purged) >= purgeEvery {
			purged = now
			if err := r.Purge(ctx, now); err != nil {
				r.Log.Warn("reputation: old history not purged", "err", err)
			}
		}
		cancel()
	}
}

// Purge forgets the identities whose evidence has faded and the
// correspondents not written to for two years.
func (r *Reputation) Purge(ctx context.Context, now time.Time) error {
	ids, err := r.St.PurgeReputation(ctx, now.Add(-forgetHalfLives*r.Cfg.HalfLife))
	if err != nil {
		return fmt.Errorf("reputation: %w", err)
	}
	addrs, err := r.St.PurgeCorrespondents(ctx, now.Add(-forgetCorrespondent))
	if err != nil {
		return fmt.Errorf("reputation: %w", err)
	}
	if ids+addrs > 0 {
		r.Log.Info("reputation: old history purged", "identities", ids, "correspondents", addrs)
	}
	return nil
}

// Flush writes the pending evidence and correspondents in one batch
// each and runs the queued learning. What fails to be written is kept
// for the next try (within MaxPending).
func (r *Reputation) Flush(ctx context.Context) error {
	r.mu.Lock()
	pending, rcpts, learn, dropped := r.pending, r.rcpts, r.learn, r.dropped
	r.pending, r.rcpts, r.learn, r.dropped = map[Key]Delta{}, map[string]int64{}, nil, 0
	r.mu.Unlock()
	if dropped > 0 {
		r.Log.Warn("reputation: evidence dropped while the store did not take it", "identities", dropped)
	}
	var errs []error
	start := r.now()
	if len(pending) > 0 {
		d := make([]Delta, 0, len(pending))
		for _, p := range pending {
			d = append(d, p)
		}
		if err := r.St.AddReputation(ctx, d, r.Cfg.HalfLife); err != nil {
			errs = append(errs, err)
			r.mu.Lock()
			for k, p := range pending {
				if _, newer := r.pending[k]; !newer && len(r.pending) < 2*r.Cfg.MaxPending {
					r.pending[k] = p
				}
			}
			r.mu.Unlock()
		} else {
			// What was written is read back with the next lookup
			// after CacheTTL; until then the cache adds it itself.
			r.mu.Lock()
			for k, p := range pending {
				// An entry read since the write began may hold it.
				if e, ok := r.cache[k]; ok && e.loaded.Before(start) {
					c := e.c.At(p.At, r.Cfg.HalfLife)
					if !e.found {
						c = Counts{FirstSeen: p.At, Updated: p.At}
					}
					c.Ham, c.Spam = max(c.Ham+p.Ham, 0), max(c.Spam+p.Spam, 0)
					r.cache[k] = cached{c: c, found: true, loaded: e.loaded}
				}
			}
			r.mu.Unlock()
		}
	}
	if len(rcpts) > 0 {
		if err := r.St.AddCorrespondents(ctx, rcpts, r.now()); err != nil {
			errs = append(errs, err)
			r.mu.Lock()
			for a, n := range rcpts {
				if len(r.rcpts) < 2*r.Cfg.MaxPending {
					r.rcpts[a] += n
				}
			}
			r.mu.Unlock()
		}
	}
	if len(learn) > 0 {
		if err := r.runLearn(ctx, learn); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reputation: %w", err)
	}
	return nil
}

// Wrote records that our users wrote to rcpts (the envelope recipients
// of mail mailwall signed); those in OwnDomains are not correspondents.
func (r *Reputation) Wrote(rcpts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, a := range rcpts {
		if i == maxRcpts {
			break
		}
		a = strings.ToLower(strings.Trim(strings.TrimSpace(a), "<>"))
		_, dom, ok := strings.Cut(a, "@")
		if !ok || dom == "" || len(a) > maxIdentity || r.own(dom) {
			continue
		}
		if _, ok := r.rcpts[a]; !ok && len(r.rcpts) >= 2*r.Cfg.MaxPending {
			r.dropped++
			continue
		}
		r.rcpts[a]++
		if _, cached := r.known[a]; cached || len(r.known) < r.Cfg.CacheSize {
			r.known[a] = knownAt{known: true, loaded: r.now()}
		}
	}
}

// maxRcpts bounds the recipients one message records.
const maxRcpts = 100

func (r *Reputation) own(dom string) bool {
	for _, d := range r.Cfg.OwnDomains {
		if strings.EqualFold(d, dom) {
			return true
		}
	}
	return false
}

// Known reports whether our users wrote to addr (lower case): from the
// cache, else one bounded read.
func (r *Reputation) Known(ctx context.Context, addr string) (bool, error) {
	now := r.now()
	r.mu.Lock()
	k, ok := r.known[addr]
	r.mu.Unlock()
	if ok && now.Sub(k.loaded) <= r.Cfg.CacheTTL {
		return k.known, nil
	}
	got, err := read(ctx, r, func(ctx context.Context) (map[string]bool, error) {
		return r.St.KnownCorrespondents(ctx, []string{addr})
	})
	if err != nil {
		return ok && k.known, err
	}
	r.mu.Lock()
	if len(r.known) >= r.Cfg.CacheSize {
		n := len(r.known) / 8
		for a := range r.known {
			if n == 0 {
				break
			}
			delete(r.known, a)
			n--
		}
	}
	r.known[addr] = knownAt{known: got[addr], loaded: now}
	r.mu.Unlock()
	return got[addr], nil
}

// CacheLen is how many identities the cache holds.
func (r *Reputation) CacheLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cache)
}

// PendingLen is how many identities have evidence waiting to be
// written.
func (r *Reputation) PendingLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// FromAuthResults reads the identities from the first
// Authentication-Results field of a delivered message that our
// authserv-id wrote (the milter removes others' claiming it): what
// mailwall learn and the Junk watcher give Feedback. None: no such
// field.
func FromAuthResults(fields []dkim.Field, authServID string) Identities {
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		v := strings.TrimSpace(f.Value())
		if !authres.IsOurs(v, authServID) {
			continue
		}
		h, err := authres.Parse(v)
		if err != nil {
			return Identities{}
		}
		var ids Identities
		for _, r := range h.Results {
			switch strings.ToLower(r.Method) {
			case "dmarc":
				if r.Value == "pass" {
					ids.FromDomain = r.Prop("header", "from")
				}
			case "dkim":
				if d := r.Prop("header", "d"); r.Value == "pass" && d != "" && len(ids.DKIM) < MaxDKIM {
					ids.DKIM = append(ids.DKIM, d)
				}
			case "spf":
				if r.Value != "pass" {
					continue
				}
				if mf := r.Prop("smtp", "mailfrom"); mf != "" {
					_, ids.SPF, _ = strings.Cut(mf, "@")
				} else {
					ids.SPF = r.Prop("smtp", "helo")
				}
			case "iprev":
				if ip, err := netip.ParseAddr(r.Prop("policy", "iprev")); err == nil {
					ids.Net = Network(ip)
				}
			}
		}
		return ids
	}
	return Identities{}
}
