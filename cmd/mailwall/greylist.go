package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/conncheck"
	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/lists"
	"mailwall/internal/metrics"
	"mailwall/internal/policyd"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// The store records a new triplet and reads its client's count in one
// statement.
var _ greylist.TripletClientStore = (*store.Store)(nil)

// newGreylister builds the policy server's greylisting from the config;
// nil when greylisting is off, or done by the milter (greylist.via). It
// needs the store: without one it is off, with a warning.
func newGreylister(cfg *config.Config, st *store.Store, res dnsx.Resolver, log *slog.Logger) (*greylist.Greylister, error) {
	if cfg.Greylist.Via == "milter" {
		return nil, nil
	}
	return buildGreylister(cfg, st, res, log)
}

// buildGreylister is the greylist section as a Greylister on st; nil
// when greylisting is off or there is no store.
func buildGreylister(cfg *config.Config, st *store.Store, res dnsx.Resolver, log *slog.Logger) (*greylist.Greylister, error) {
	gc := cfg.Greylist
	if !gc.Enabled {
		return nil, nil
	}
	if st == nil {
		log.Warn("greylist.enabled but no store (store.dsn empty or unavailable): greylisting is off")
		return nil, nil
	}
	allow, err := config.ParsePrefixes(gc.AllowIPs)
	if err != nil {
		return nil, fmt.Errorf("greylist.allow_ips: %w", err)
	}
	s25rAllow, err := config.ParsePrefixes(cfg.Checks.S25RAllowIPs)
	if err != nil {
		return nil, fmt.Errorf("checks.s25r_allow_ips: %w", err)
	}
	s25r, err := conncheck.NewS25R(nil, cfg.Checks.S25RAllowNames, s25rAllow)
	if err != nil {
		return nil, err
	}
	return greylist.New(greylist.Config{
		Mode: gc.Mode, Delay: gc.Delay.D(), RetryWindow: gc.RetryWindow.D(), MaxAge: gc.MaxAge.D(),
		AutoAllow: gc.AutoAllow, Text: gc.Text, Tarpit: gc.Tarpit.D(), AllowNets: allow, S25R: s25r,
		VerifyNames: gc.ClientName == "dns", Resolver: res,
	}, st)
}

// milterRcpt is what the milter does at RCPT for a site whose policy
// server does not (greylist.via and dnsbl.rcpt_via "milter"): the DNS
// blocklists' thresholds, then greylisting, with the policy server's
// decisions, replies, logs and metrics, and its greylist state in the
// store. Clients the pipeline treats as ours (checks.internal_hosts,
// authenticated senders, local submission) and clients or recipients on
// the site's allow list are neither refused nor greylisted here.
type milterRcpt struct {
	bl   *policyd.RcptBlocklists // nil: the policy server asks them
	grey *greylist.Greylister    // nil: no greylisting here
	// lists are the site's allow and block lists (nil: none).
	lists   *lists.Cache
	observe func(greylist.Decision) // nil: not counted
	log     *slog.Logger
}

// newMilterRcpt builds the milter's RCPT stage; nil when neither the
// blocklists nor greylisting is the milter's, or neither is configured.
func newMilterRcpt(cfg *config.Config, st *store.Store, res dnsx.Resolver, lc *lists.Cache, met *metrics.Metrics, log *slog.Logger) (*milterRcpt, error) {
	r := &milterRcpt{lists: lc, log: log}
	if cfg.Greylist.Via == "milter" {
		g, err := buildGreylister(cfg, st, res, log)
		if err != nil {
			return nil, err
		}
		if g != nil {
			// As the policy server: a deferral answered from a read, its
			// triplet written with others milliseconds later (Close
			// writes what waits).
			g.StartWriteBehind(log)
		}
		r.grey = g
	}
	if cfg.DNSBL.RcptVia == "milter" {
		b, err := parseBlocklists(cfg)
		if err != nil {
			return nil, err
		}
		r.bl = policyd.NewRcptBlocklists(b, res, log.With("via", "milter"))
	}
	if r.bl == nil && r.grey == nil {
		return nil, nil
	}
	if met != nil {
		r.observe = func(d greylist.Decision) { met.Greylist(string(d.Outcome)) }
		if r.bl != nil {
			r.bl.Observe = func(c policyd.BlocklistCheck) { met.DNSBL(c.Zones, c.Action) }
		}
	}
	return r, nil
}

// loadMilterRcpt is the RCPT stage p holds; nil for a nil p.
func loadMilterRcpt(p *atomic.Pointer[milterRcpt]) *milterRcpt {
	if p == nil {
		return nil
	}
	return p.Load()
}

// reloadMilterRcpt builds the milter's RCPT stage from a reloaded config,
// as the reload builds the policy server's greylisting and blocklists,
// and returns what puts it in effect: greylist.via or dnsbl.rcpt_via
// moving between the policy server and the milter moves the work, never
// doubles or drops it. New milter connections get the new stage; those
// open keep theirs, whose greylister, once closed, writes each triplet
// before answering.
func reloadMilterRcpt(p *atomic.Pointer[milterRcpt], cfg *config.Config, st *store.Store, res dnsx.Resolver, lc *lists.Cache, met *metrics.Metrics, log *slog.Logger) (swap func(), err error) {
	r, err := newMilterRcpt(cfg, st, res, lc, met, log)
	if err != nil {
		return nil, fmt.Errorf("the milter's greylisting and blocklists at RCPT: %w", err)
	}
	return func() { p.Swap(r).close() }, nil
}

// close writes the triplets r's greylister still holds and stops its
// write-behind; for a nil r or none, nothing.
func (r *milterRcpt) close() {
	if r != nil && r.grey != nil {
		r.grey.Close()
	}
}

// rcptTimeout bounds the store's part of one RCPT, as the policy
// server's greylistTimeout: past it the recipient is not greylisted.
const rcptTimeout = 5 * time.Second

// milterRcptConn is one milter connection's RCPT stage: the blocklists
// are asked once per connection (the client does not change).
type milterRcptConn struct {
	*milterRcpt
	blDone bool
	listed policyd.RcptBlocklistVerdict
}

// conn starts a connection's RCPT stage; nil for a nil r.
func (r *milterRcpt) conn() *milterRcptConn {
	if r == nil {
		return nil
	}
	return &milterRcptConn{milterRcpt: r}
}

// check decides one recipient of env's message: "" lets it on, else the
// SMTP reply that refuses or defers it. clientName is the MTA's name for
// the client from the milter's connect ("unknown", or "[address]" as
// Postfix sends a name it could not verify).
func (c *milterRcptConn) check(pipe *verdict.Checker, env verdict.Envelope, clientName, rcpt string) string {
	if !env.ClientIP.IsValid() || pipe.IsInternal(env) {
		return ""
	}
	if set := c.lists.Set(); set.Len() > 0 {
		// An allowed client or recipient skips both, as in the policy
		// server; a block entry is the pipeline's to apply.
		if d := set.Check(lists.Query{IP: env.ClientIP, Rcpts: []string{rcpt}}); d.Allowed() {
			return ""
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), rcptTimeout)
	defer cancel()
	if c.bl != nil && !c.blDone {
		c.blDone = true
		c.listed = c.bl.Check(ctx, env.ClientIP, env.QueueID)
	}
	if c.listed.Reply != "" {
		return c.listed.Reply
	}
	if c.grey == nil || c.listed.Allowlisted {
		return ""
	}
	if strings.HasPrefix(clientName, "[") {
		clientName = "unknown"
	}
	d := c.grey.Check(ctx, greylist.Request{IP: env.ClientIP, ClientName: clientName, Sender: env.MailFrom, Recipient: rcpt, Listed: c.listed.GreyReason})
	if c.observe != nil {
		c.observe(d)
	}
	policyd.LogGreylist(c.log, env.QueueID, env.ClientIP.String(), clientName, env.MailFrom, rcpt, d)
	if d.Outcome != greylist.Deferred {
		return ""
	}
	if d.Tarpit > 0 {
		// taRgrey's tarpit, at most 20 s with via milter (config):
		// Postfix waits milter_command_timeout, 30 s, for the answer.
		time.Sleep(d.Tarpit)
	}
	// The policy server's DEFER_IF_PERMIT text, with the code Postfix
	// gives it.
	return "450 " + d.Text
}

// greylistRetention is what the retention loop purges of the greylist:
// nothing while greylisting is off (the rows stay for when it is back).
func greylistRetention(cfg *config.Config) store.GreylistRetention {
	if !cfg.Greylist.Enabled {
		return store.GreylistRetention{}
	}
	return store.GreylistRetention{RetryWindow: cfg.Greylist.RetryWindow.D(), MaxAge: cfg.Greylist.MaxAge.D()}
}
