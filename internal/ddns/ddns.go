// Package ddns keeps a home server's DNS in step with its changing public
// address: it learns the address (from an interface, or an HTTP(S)
// endpoint that returns it as text), and when the published A/AAAA
// records differ, sends one RFC 2136 UPDATE, signed with TSIG (RFC 8945),
// that replaces them and the ip4:/ip6: mechanism of the SPF record that
// named the old address, with prerequisites so a concurrent change is
// never clobbered. It then asks every authoritative server of the zone,
// directly, until each shows the change (retrying with backoff, up to a
// limit). BIND, Knot and PowerDNS take such updates.
package ddns

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Key is a TSIG key.
type Key struct {
	Name      string
	Algorithm string // default hmac-sha256
	Secret    string // base64
}

// Config is what an Updater needs.
type Config struct {
	Names    []string // host names whose A/AAAA records follow the address
	SPFNames []string // names whose SPF record's ip4:/ip6: term follows it
	Zone     string   // the zone to update; empty: asked of Server (SOA)
	Server   string   // the primary, HOST:PORT, that takes updates
	Key      Key
	TTL      uint32 // of the A/AAAA records written; 0: 300
	// NSPort is the port each authoritative server is asked on when
	// verifying; 0 means 53 (a lab serves on another).
	NSPort int
	// Timeout bounds each DNS exchange; 0: 5 s.
	Timeout time.Duration
	// VerifyAttempts is how many times each server is asked before the
	// change is reported as not visible there; 0: 6.
	VerifyAttempts int
	// VerifyBackoff is the first wait between attempts, doubled each time
	// (at most a minute); 0: 2 s.
	VerifyBackoff time.Duration
	// DryRun reads the records and says what would change, sending
	// nothing.
	DryRun bool
	Logger *slog.Logger
}

// Result is what one Run did.
type Result struct {
	Addrs    []netip.Addr
	Zone     string
	Changes  []string // one line per record changed, "" when none
	Notes    []string // why something was left alone
	Sent     bool     // an UPDATE was sent (and accepted)
	Verified []string // the servers that show the change
	Stale    []string // the servers that do not, with what they answer
}

// ErrRefused is wrapped by the error of an UPDATE the server refused.
var ErrRefused = errors.New("update refused")

// ErrNotVisible is wrapped when an accepted update is not visible at
// every authoritative server within the attempts.
var ErrNotVisible = errors.New("update not visible at every authoritative server")

// Updater sends updates for one Config.
type Updater struct {
	cfg Config
	log *slog.Logger
	// sleep waits between verification attempts (replaced in tests only
	// to count the waits; it must honour ctx).
	sleep func(ctx context.Context, d time.Duration) error
	// beforeSend, when set, runs between reading the records and sending
	// the update (tests: a concurrent change).
	beforeSend func()
}

// New checks cfg and makes an Updater.
func New(cfg Config) (*Updater, error) {
	if len(cfg.Names) == 0 && len(cfg.SPFNames) == 0 {
		return nil, fmt.Errorf("ddns: no names to update")
	}
	if cfg.Server == "" {
		return nil, fmt.Errorf("ddns: no server (the zone's primary, HOST:PORT)")
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		cfg.Server = net.JoinHostPort(cfg.Server, "53")
	}
	if cfg.Key.Name == "" || cfg.Key.Secret == "" {
		return nil, fmt.Errorf("ddns: a TSIG key (name and secret) is required: updates are never sent unsigned")
	}
	if _, err := base64.StdEncoding.DecodeString(cfg.Key.Secret); err != nil {
		return nil, fmt.Errorf("ddns: TSIG secret is not base64: %w", err)
	}
	cfg.Key.Name = dns.CanonicalName(cfg.Key.Name)
	if cfg.Key.Algorithm == "" {
		cfg.Key.Algorithm = dns.HmacSHA256
	}
	cfg.Key.Algorithm = dns.CanonicalName(cfg.Key.Algorithm)
	switch cfg.Key.Algorithm {
	case dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512:
	default:
		return nil, fmt.Errorf("ddns: TSIG algorithm %q not supported (hmac-sha256, hmac-sha512, ...)", cfg.Key.Algorithm)
	}
	for i, n := range cfg.Names {
		cfg.Names[i] = dns.CanonicalName(n)
	}
	for i, n := range cfg.SPFNames {
		cfg.SPFNames[i] = dns.CanonicalName(n)
	}
	if cfg.TTL == 0 {
		cfg.TTL = 300
	}
	if cfg.NSPort == 0 {
		cfg.NSPort = 53
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.VerifyAttempts <= 0 {
		cfg.VerifyAttempts = 6
	}
	if cfg.VerifyBackoff <= 0 {
		cfg.VerifyBackoff = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Updater{cfg: cfg, log: log, sleep: sleepCtx}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// exchange asks one server, over TCP (an update or a long TXT answer
// fits; no truncation to retry), signing when sign is set.
func (u *Updater) exchange(ctx context.Context, m *dns.Msg, server string, sign bool) (*dns.Msg, error) {
	c := &dns.Client{Net: "tcp", Timeout: u.cfg.Timeout}
	if sign {
		c.TsigSecret = map[string]string{u.cfg.Key.Name: u.cfg.Key.Secret}
		m.SetTsig(u.cfg.Key.Name, u.cfg.Key.Algorithm, 300, time.Now().Unix())
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, server)
	return r, err
}

// query asks server for name/qtype and returns the records of that type
// in the answer.
func (u *Updater) query(ctx context.Context, server, name string, qtype uint16) ([]dns.RR, *dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	r, err := u.exchange(ctx, m, server, false)
	if err != nil {
		return nil, nil, fmt.Errorf("asking %s for %s %s: %w", server, name, dns.TypeToString[qtype], err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, r, fmt.Errorf("asking %s for %s %s: %s", server, name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype && dns.CanonicalName(rr.Header().Name) == name {
			out = append(out, rr)
		}
	}
	return out, r, nil
}

// zone finds the zone of the names: the one configured, else the owner
// of the SOA the primary gives for the first name.
func (u *Updater) zone(ctx context.Context) (string, error) {
	zone := u.cfg.Zone
	if zone == "" {
		first := append(slices.Clone(u.cfg.Names), u.cfg.SPFNames...)[0]
		_, r, err := u.query(ctx, u.cfg.Server, first, dns.TypeSOA)
		if err != nil {
			return "", err
		}
		for _, rr := range append(r.Answer, r.Ns...) {
			if soa, ok := rr.(*dns.SOA); ok {
				zone = soa.Hdr.Name
			}
		}
		if zone == "" {
			return "", fmt.Errorf("%s gave no SOA for %s: set ddns.zone", u.cfg.Server, first)
		}
	}
	zone = dns.CanonicalName(zone)
	for _, n := range append(slices.Clone(u.cfg.Names), u.cfg.SPFNames...) {
		if !dns.IsSubDomain(zone, n) {
			return "", fmt.Errorf("%s is not in zone %s: one zone per updater", n, zone)
		}
	}
	return zone, nil
}

// want is what verification expects at one name.
type want struct {
	name  string
	qtype uint16
	addrs []netip.Addr // for A/AAAA: exactly these
	txt   []string     // for TXT: an RR with exactly these strings
}

// Run learns nothing itself: given the current addresses, it updates the
// zone when the published records differ, and verifies. With no
// difference it sends nothing.
func (u *Updater) Run(ctx context.Context, addrs []netip.Addr) (*Result, error) {
	res := &Result{Addrs: addrs}
	if len(addrs) == 0 {
		return res, fmt.Errorf("ddns: no address to publish")
	}
	zone, err := u.zone(ctx)
	if err != nil {
		return res, fmt.Errorf("ddns: %w", err)
	}
	res.Zone = zone
	m := new(dns.Msg)
	m.SetUpdate(zone)
	var wants []want
	for _, addr := range addrs {
		qtype := dns.TypeA
		if addr.Is6() {
			qtype = dns.TypeAAAA
		}
		var old []netip.Addr
		for _, name := range u.cfg.Names {
			cur, _, err := u.query(ctx, u.cfg.Server, name, qtype)
			if err != nil {
				return res, fmt.Errorf("ddns: %w", err)
			}
			have := addrsOf(cur)
			for _, a := range have {
				if a != addr && !slices.Contains(old, a) {
					old = append(old, a)
				}
			}
			wants = append(wants, want{name: name, qtype: qtype, addrs: []netip.Addr{addr}})
			if len(have) == 1 && have[0] == addr {
				continue
			}
			// RFC 2136 §2.4: the RRset must still be what was read
			// (value-dependent), or still absent; else the server
			// answers NXRRSET/YXRRSET and nothing is changed.
			if len(cur) == 0 {
				m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: qtype}}})
			} else {
				m.Used(copyRRs(cur))
			}
			m.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET}}})
			m.Insert([]dns.RR{addrRR(name, qtype, u.cfg.TTL, addr)})
			res.Changes = append(res.Changes, fmt.Sprintf("%s %s %s -> %s", name, dns.TypeToString[qtype], joinAddrs(have), addr))
		}
		for _, name := range u.cfg.SPFNames {
			cur, _, err := u.query(ctx, u.cfg.Server, name, dns.TypeTXT)
			if err != nil {
				return res, fmt.Errorf("ddns: %w", err)
			}
			txts := make([][]string, len(cur))
			for i, rr := range cur {
				txts[i] = rr.(*dns.TXT).Txt
			}
			ed, err := RewriteSPF(txts, old, addr)
			if err != nil {
				return res, fmt.Errorf("ddns: SPF record of %s: %w", name, err)
			}
			if !ed.Changed {
				if ed.Note != "" {
					res.Notes = append(res.Notes, fmt.Sprintf("%s SPF: %s", name, ed.Note))
				}
				continue
			}
			wants = append(wants, want{name: name, qtype: dns.TypeTXT, txt: ed.Strings})
			oldRR := cur[ed.Index].(*dns.TXT)
			newRR := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: oldRR.Hdr.Ttl}, Txt: ed.Strings}
			// The whole TXT RRset as read is the prerequisite: a
			// record edited meanwhile, or one added, stops the update.
			m.Used(copyRRs(cur))
			m.Remove(copyRRs([]dns.RR{oldRR}))
			m.Insert([]dns.RR{newRR})
			res.Changes = append(res.Changes, fmt.Sprintf("%s TXT %q -> %q", name, strings.Join(oldRR.Txt, ""), strings.Join(ed.Strings, "")))
		}
	}
	if len(m.Ns) == 0 {
		u.log.Debug("ddns: records up to date", "zone", zone, "addrs", joinAddrs(addrs))
		return res, nil
	}
	if u.cfg.DryRun {
		return res, nil
	}
	if u.beforeSend != nil {
		u.beforeSend()
	}
	r, err := u.exchange(ctx, m, u.cfg.Server, true)
	if r != nil && r.Rcode != dns.RcodeSuccess {
		return res, fmt.Errorf("ddns: %w by %s: %s", ErrRefused, u.cfg.Server, rcodeText(r))
	}
	if err != nil {
		// Includes an answer whose TSIG does not verify: the server
		// is not the one holding our key.
		return res, fmt.Errorf("ddns: sending the update to %s: %w", u.cfg.Server, err)
	}
	res.Sent = true
	u.log.Info("ddns: update accepted", "zone", zone, "server", u.cfg.Server, "changes", strings.Join(res.Changes, "; "))
	if err := u.verify(ctx, zone, wants, res); err != nil {
		return res, err
	}
	return res, nil
}

// rcodeText words a refusal, with the TSIG error when there is one.
func rcodeText(r *dns.Msg) string {
	s := dns.RcodeToString[r.Rcode]
	if t := r.IsTsig(); t != nil && t.Error != 0 {
		s += ", TSIG " + dns.RcodeToString[int(t.Error)]
		switch t.Error {
		case dns.RcodeBadSig:
			s += " (the secret is wrong: check ddns.key_secret_file)"
		case dns.RcodeBadKey:
			s += " (the server does not know this key name or algorithm)"
		case dns.RcodeBadTime:
			s += " (the clocks differ by more than 5 minutes)"
		}
	}
	switch r.Rcode {
	case dns.RcodeRefused:
		s += " (the key may not update this zone, or updates are not allowed)"
	case dns.RcodeNXRrset, dns.RcodeYXRrset:
		s += " (the records changed meanwhile; the next run reads them again)"
	}
	return s
}

// verify asks every authoritative server of the zone, directly, until
// each shows wants (RFC 1996 NOTIFY and the zone transfer take a moment
// to reach secondaries), with exponential backoff.
func (u *Updater) verify(ctx context.Context, zone string, wants []want, res *Result) error {
	servers, err := u.nameServers(ctx, zone)
	if err != nil {
		return fmt.Errorf("ddns: update accepted but not verified: %w", err)
	}
	pending := servers
	wait := u.cfg.VerifyBackoff
	stale := map[string]string{}
	for attempt := 1; ; attempt++ {
		var next []string
		for _, s := range pending {
			if why := u.shows(ctx, s, wants); why != "" {
				stale[s] = why
				next = append(next, s)
				continue
			}
			delete(stale, s)
			res.Verified = append(res.Verified, s)
		}
		pending = next
		if len(pending) == 0 || attempt >= u.cfg.VerifyAttempts {
			break
		}
		u.log.Info("ddns: change not yet visible, asking again", "servers", strings.Join(pending, " "), "wait", wait, "attempt", attempt)
		if err := u.sleep(ctx, wait); err != nil {
			break
		}
		wait = min(2*wait, time.Minute)
	}
	for _, s := range pending {
		res.Stale = append(res.Stale, s+": "+stale[s])
	}
	if len(pending) > 0 {
		return fmt.Errorf("ddns: %w: %s", ErrNotVisible, strings.Join(res.Stale, "; "))
	}
	return nil
}

// maxNameServers bounds the servers asked when verifying (and so the
// queries a hostile NS RRset can cause): 13 is the most a root-style
// referral carries; real zones have 2 to 6.
const maxNameServers = 13

// nameServers returns "host (addr:port)" for every address of every NS of
// the zone, as the primary lists them. Addresses come from the primary
// when it is authoritative for them, else from the system resolver.
func (u *Updater) nameServers(ctx context.Context, zone string) ([]string, error) {
	nsRRs, _, err := u.query(ctx, u.cfg.Server, zone, dns.TypeNS)
	if err != nil {
		return nil, err
	}
	if len(nsRRs) == 0 {
		return nil, fmt.Errorf("%s lists no NS for %s", u.cfg.Server, zone)
	}
	if len(nsRRs) > maxNameServers {
		return nil, fmt.Errorf("%s lists %d NS for %s, more than the %d verified", u.cfg.Server, len(nsRRs), zone, maxNameServers)
	}
	var out []string
	port := strconv.Itoa(u.cfg.NSPort)
	for _, rr := range nsRRs {
		host := dns.CanonicalName(rr.(*dns.NS).Ns)
		var addrs []netip.Addr
		if dns.IsSubDomain(zone, host) {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				rrs, _, err := u.query(ctx, u.cfg.Server, host, qt)
				if err == nil {
					addrs = append(addrs, addrsOf(rrs)...)
				}
			}
		}
		if len(addrs) == 0 {
			ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(host, "."))
			if err != nil {
				return nil, fmt.Errorf("address of name server %s: %w", host, err)
			}
			addrs = ips
		}
		for _, a := range addrs {
			out = append(out, fmt.Sprintf("%s@%s", host, net.JoinHostPort(a.Unmap().String(), port)))
		}
	}
	return out, nil
}

// shows asks one server ("host@addr:port") for each want; "" means all
// are as expected, else what differs.
func (u *Updater) shows(ctx context.Context, server string, wants []want) string {
	_, addr, _ := strings.Cut(server, "@")
	for _, w := range wants {
		rrs, r, err := u.query(ctx, addr, w.name, w.qtype)
		if err != nil {
			return err.Error()
		}
		if !r.Authoritative {
			return fmt.Sprintf("not authoritative for %s", w.name)
		}
		if w.qtype == dns.TypeTXT {
			found := slices.ContainsFunc(rrs, func(rr dns.RR) bool { return slices.Equal(rr.(*dns.TXT).Txt, w.txt) })
			if !found {
				return fmt.Sprintf("%s TXT has not the new SPF record yet", w.name)
			}
			continue
		}
		have := addrsOf(rrs)
		if !slices.Equal(have, w.addrs) {
			return fmt.Sprintf("%s %s is %s", w.name, dns.TypeToString[w.qtype], joinAddrs(have))
		}
	}
	return ""
}

func addrsOf(rrs []dns.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		var ip net.IP
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A
		case *dns.AAAA:
			ip = v.AAAA
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func addrRR(name string, qtype uint16, ttl uint32, a netip.Addr) dns.RR {
	h := dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
	if qtype == dns.TypeA {
		return &dns.A{Hdr: h, A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: h, AAAA: a.AsSlice()}
}

func copyRRs(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
	}
	return out
}

func joinAddrs(a []netip.Addr) string {
	if len(a) == 0 {
		return "(none)"
	}
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

// Loop runs discover and Run every interval until ctx ends, logging each
// outcome; a failed round is retried at the next tick.
func (u *Updater) Loop(ctx context.Context, interval time.Duration, discover func(context.Context) ([]netip.Addr, error)) {
	for {
		if err := u.round(ctx, discover); err != nil {
			u.log.Error("ddns: round failed", "err", err)
		}
		if sleepCtx(ctx, interval) != nil {
			return
		}
	}
}

func (u *Updater) round(ctx context.Context, discover func(context.Context) ([]netip.Addr, error)) error {
	dctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	addrs, err := discover(dctx)
	cancel()
	if err != nil {
		return err
	}
	res, err := u.Run(ctx, addrs)
	if err != nil {
		return err
	}
	if res.Sent {
		u.log.Info("ddns: change verified", "servers", strings.Join(res.Verified, " "))
	}
	return nil
}
