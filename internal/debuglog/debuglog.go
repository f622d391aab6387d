// Package debuglog is the detail log for chosen clients
// (log.debug_peers), as Postfix's debug_peer_list: for a client in the
// set, every stage logs what it read and computed (the DNS answers each
// check used, DKIM hashes, the rules' inputs, the classifier's strongest
// features, the policy request and answer) at info level with
// debug_peer=true, so one peer can be followed without turning up the
// log for all.
//
// The sink is a *slog.Logger carried in the message's context (With,
// From): nil, the common case, means "not debugging", and a stage asks
// for it only once per message. Other clients cost one match of their
// address against the set (a few prefixes) and one context lookup per
// DNS query: nothing is formatted for them. The set is a Peers value the
// daemon owns; a SIGHUP swaps its prefixes (Set).
package debuglog

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"unicode/utf8"
)

// Peers is the set of client networks whose mail is logged in detail.
// A nil *Peers matches no one. Safe for concurrent use.
type Peers struct {
	log *slog.Logger
	set atomic.Pointer[[]netip.Prefix]
}

// NewPeers returns the set, logging to log.
func NewPeers(log *slog.Logger, prefixes []netip.Prefix) *Peers {
	if log == nil {
		log = slog.Default()
	}
	p := &Peers{log: log}
	p.Set(prefixes)
	return p
}

// Set replaces the prefixes (a reload); messages already under way keep
// the logger they were given.
func (p *Peers) Set(prefixes []netip.Prefix) {
	set := make([]netip.Prefix, 0, len(prefixes))
	for _, pf := range prefixes {
		if pf.IsValid() {
			set = append(set, pf.Masked())
		}
	}
	p.set.Store(&set)
}

// Prefixes returns the current set.
func (p *Peers) Prefixes() []netip.Prefix {
	if p == nil {
		return nil
	}
	return *p.set.Load()
}

// Active reports whether the set has any prefix: a caller with an
// address to parse first asks this.
func (p *Peers) Active() bool {
	return p != nil && len(*p.set.Load()) > 0
}

// Match reports whether ip is in the set.
func (p *Peers) Match(ip netip.Addr) bool {
	if p == nil || !ip.IsValid() {
		return false
	}
	set := *p.set.Load()
	if len(set) == 0 {
		return false
	}
	ip = ip.Unmap()
	for _, pf := range set {
		if pf.Contains(ip) {
			return true
		}
	}
	return false
}

// Logger is the detail logger for a client at ip: nil unless ip is in the
// set. Its lines carry debug_peer=true and the client's address.
func (p *Peers) Logger(ip netip.Addr) *slog.Logger {
	if !p.Match(ip) {
		return nil
	}
	return p.log.With(slog.Bool("debug_peer", true), slog.String("client", ip.Unmap().String()))
}

type ctxKey struct{}

// With returns ctx carrying l; a nil l leaves ctx as it is.
func With(ctx context.Context, l *slog.Logger) context.Context {
	if l == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the detail logger ctx carries, or nil: not debugging.
func From(ctx context.Context) *slog.Logger {
	if ctx == nil {
		return nil
	}
	l, _ := ctx.Value(ctxKey{}).(*slog.Logger)
	return l
}

// MaxValue bounds each value a detail line quotes from the message or the
// DNS (a TXT record, a header, a link): hostile input is logged, but not
// without limit.
const MaxValue = 512

// Clip shortens s to at most n bytes on a rune boundary, marking the cut
// with the count of bytes left out.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...(" + itoa(len(s)-cut) + " more bytes)"
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
