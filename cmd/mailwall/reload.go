package main

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/debuglog"
	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/lists"
	"mailwall/internal/milter"
	"mailwall/internal/phish"
	"mailwall/internal/policyd"
	"mailwall/internal/reputation"
	"mailwall/internal/spf"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// milterRules are what a milter session is checked with. A SIGHUP swaps
// them; a session keeps the rules it started with, so one message is never
// judged half by the old config and half by the new.
type milterRules struct {
	pipe    *verdict.Checker
	timeout time.Duration
	node    string
	history phish.History // kept for the next reload
	lists   *lists.Cache  // kept for the next reload (nil: none)
	// noReply are the milter stages Postfix need not wait at.
	noReply uint32
}

// newMilterRules builds the pipeline; history (may be nil) feeds the
// first-seen rule.
func newMilterRules(cfg *config.Config, res dnsx.Resolver, history phish.History) (*milterRules, error) {
	pipe, err := newPipeline(cfg, res)
	if err != nil {
		return nil, err
	}
	for _, a := range pipe.Analyzers {
		if p, ok := a.(*phish.Checker); ok {
			p.History = history
		}
	}
	// The store is the history; a classifier's model may live there.
	if err := storeModels(pipe.Analyzers, cfg, history); err != nil {
		return nil, err
	}
	// The pipeline decides at HELO, when a HELO rule can refuse, and
	// otherwise at end of message only.
	noReply := milter.ProtoNRConn | milter.ProtoNRMail | milter.ProtoNRRcpt | milter.ProtoNREOH
	if !pipe.HeloCanRefuse() {
		noReply |= milter.ProtoNRHelo
	}
	return &milterRules{pipe: pipe, timeout: cfg.SPF.Timeout.D() + 10*time.Second, node: cfg.Hostname, history: history, noReply: noReply}, nil
}

// reloader re-reads the config file on SIGHUP and swaps in what can change
// under a running daemon: the checks, the SPF limits, the policy server's
// answers and the hostname. Listeners, DNS servers, the store, reports, the
// dashboard and logging keep their running values until a restart, and the
// log says which of them changed. A config that does not load or build
// leaves everything as it was.
type reloader struct {
	path, dnsFlag string
	res           dnsx.Resolver
	policy        *policyd.Server
	milter        *atomic.Pointer[milterRules] // nil: no milter
	observe       func(policyd.Response, time.Duration)
	observeHelo   func(spf.Result, policyd.Action)
	log           *slog.Logger
	// store is where greylisting keeps its state (nil: none);
	// observeGreylist counts its decisions.
	store           *store.Store
	observeGreylist func(greylist.Decision)
	// rep is the reputation history the analyzer reads (nil: none).
	rep *reputation.Reputation
	// debug are log.debug_peers, which a reload applies (nil: none).
	debug *debuglog.Peers
	// rcpt builds the milter's RCPT stage from the new config and
	// returns what puts it in effect (nil: none); that runs with the
	// rest, before "config reloaded" is logged, so whoever waits for
	// that line finds the stage in effect.
	rcpt func(*config.Config) (swap func(), err error)

	running *config.Config
	// live tells the dashboard the config in effect and the reloads
	// (nil: no dashboard).
	live *liveConfig
	// restart: what the last reload left for a restart.
	restart []string
}

// restartOnly are the config sections a reload does not apply.
var restartOnly = []string{"log", "dns", "lab_dns", "admin", "store", "reports", "web"}

func (r *reloader) reload() (err error) {
	defer func() {
		switch {
		case r.live == nil:
		case err != nil:
			r.live.failed(err)
		default:
			r.live.reloaded(r.running, r.restart)
		}
	}()
	cfg, err := loadConfig(r.path, r.dnsFlag)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	opts, err := policydOptions(cfg)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	opts.Observe, opts.ObserveGreylist = r.observe, r.observeGreylist
	opts.ObserveHelo = r.observeHelo
	grey, err := newGreylister(cfg, r.store, r.res, r.log)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	var rules *milterRules
	if r.milter != nil {
		if rules, err = newMilterRules(cfg, r.res, r.milter.Load().history); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		rules.lists = r.milter.Load().lists
		rules.pipe.Lists = rules.lists
		setReputation(rules.pipe.Analyzers, r.rep)
	}
	debugPeers, err := cfg.Log.DebugPeerPrefixes()
	if err != nil {
		return fmt.Errorf("reload: log.debug_peers: %w", err)
	}
	// Built last: it starts its greylister's write-behind.
	var swapRcpt func()
	if r.rcpt != nil {
		if swapRcpt, err = r.rcpt(cfg); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
	}
	// Everything is built: only now does anything change.
	r.policy.Reload(checkerFor(cfg, r.res), opts)
	r.policy.SetGreylist(grey)
	if rules != nil {
		r.milter.Store(rules)
	}
	if swapRcpt != nil {
		swapRcpt()
	}
	if r.debug != nil {
		// log.debug_peers applies now, the rest of log at a restart.
		r.debug.Set(debugPeers)
		run := *r.running
		run.Log.DebugPeers = cfg.Log.DebugPeers
		r.running = &run
	}
	r.restart = changedSections(r.running, cfg)
	if changed := r.restart; len(changed) > 0 {
		r.log.Warn("config reloaded; these changes need a restart", "sections", changed)
	} else {
		r.log.Info("config reloaded", "path", r.path)
	}
	// The sections that did not apply stay as they run, so the next
	// reload compares against what is really in effect.
	next := *cfg
	for _, name := range restartOnly {
		section(&next, name).Set(section(r.running, name))
	}
	next.Policyd.Listen, next.Policyd.UnixMode, next.Policyd.MaxConnections = r.running.Policyd.Listen, r.running.Policyd.UnixMode, r.running.Policyd.MaxConnections
	next.Milter = r.running.Milter
	r.running = &next
	return nil
}

// changedSections names what differs between old and new among the parts
// a reload cannot apply.
func changedSections(old, new *config.Config) []string {
	var out []string
	for _, name := range restartOnly {
		if !reflect.DeepEqual(section(old, name).Interface(), section(new, name).Interface()) {
			out = append(out, name)
		}
	}
	if !reflect.DeepEqual(old.Policyd.Listen, new.Policyd.Listen) || old.Policyd.UnixMode != new.Policyd.UnixMode || old.Policyd.MaxConnections != new.Policyd.MaxConnections {
		out = append(out, "policyd.listen/unix_mode/max_connections")
	}
	if !reflect.DeepEqual(old.Milter, new.Milter) {
		out = append(out, "milter")
	}
	return out
}

// section is the top-level Config field whose yaml name is name.
func section(cfg *config.Config, name string) reflect.Value {
	v := reflect.ValueOf(cfg).Elem()
	for i := range v.NumField() {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == name {
			return v.Field(i)
		}
	}
	panic("config has no section " + name)
}
