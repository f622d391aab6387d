package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"mailwall/internal/admin"
	"mailwall/internal/config"
	"mailwall/internal/debuglog"
	"mailwall/internal/dnsx"
	"mailwall/internal/gcfloor"
	"mailwall/internal/greylist"
	"mailwall/internal/lists"
	"mailwall/internal/metrics"
	"mailwall/internal/milter"
	"mailwall/internal/phish"
	"mailwall/internal/policyd"
	"mailwall/internal/report"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
)

// gcHeapFloor is the least heap goal serve gives the garbage collector
// (package gcfloor). Serve's live heap under load is 6-9 MB with the
// classifier's starter model and reputation's caches (it was 2-3 MB when
// the floor was 16 MB, by then no higher than the runtime's default
// goal): 32 MB collects 1.9 times per 1,000 small messages with
// everything on, where 16 MB collected 5.4 to 6.3 times
// (BenchmarkMilterAll's gcs/1000msgs): about 14 us of CPU a message
// (medians of 6 alternating runs), for 12-17 MB more peak RSS.
const gcHeapFloor = 32 << 20

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	dnsFlag := fs.String("dns", "", "DNS server(s) HOST:PORT, comma separated (overrides dns.servers)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until shutdown (for go tool pprof)")
	memProfile := fs.String("memprofile", "", "write an allocation profile to this file at shutdown (for go tool pprof)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sigs := stopSignals()
	defer signal.Stop(sigs)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(stderr, "mailwall: --memprofile: %v\n", err)
			}
			f.Close()
		}()
	}
	if fs.NArg() != 0 {
		return errUsage
	}
	defer gcfloor.Start(gcHeapFloor).Stop()
	met := metrics.New()
	cfg, resolver, err := loadResolver(*cfgPath, *dnsFlag, met.CountUpstream)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	checkTrustAnchors(ctx, cfg, log)
	opts, err := policydOptions(cfg)
	if err != nil {
		return err
	}
	met.WatchCache(resolver.Stats)
	opts.Observe = met.ObservePolicy
	opts.ObserveHelo = met.PolicyHelo // mailwall_helo_total{source="policy"}
	opts.ObserveGreylist = func(d greylist.Decision) { met.Greylist(string(d.Outcome)) }
	debugPrefixes, err := cfg.Log.DebugPeerPrefixes()
	if err != nil {
		return fmt.Errorf("log.debug_peers: %w", err)
	}
	// A debug peer's lines are at info level, and shown whatever
	// log.level says (as Postfix's debug_peer_list raises verbosity).
	debugCfg := *cfg
	debugCfg.Log.Level = "info"
	debugPeers := debuglog.NewPeers(newLogger(&debugCfg, stderr), debugPrefixes) // a reload sets them
	srv := policyd.New(checkerFor(cfg, resolver), opts, cfg.Policyd.MaxConnections, log)
	srv.Debug = debugPeers
	srv.MaxPerPeer = cfg.Policyd.MaxConnectionsPerPeer
	srv.ObserveDNSBL = func(c policyd.BlocklistCheck) { met.DNSBL(c.Zones, c.Action) }
	srv.ObserveLists = met.ListHit
	watchPolicyConns(met, srv)
	mode, err := strconv.ParseUint(cfg.Policyd.UnixMode, 8, 32)
	if err != nil {
		return fmt.Errorf("policyd.unix_mode: %q is not an octal mode", cfg.Policyd.UnixMode)
	}
	var lns []net.Listener
	for _, addr := range cfg.Policyd.Listen {
		ln, err := policyd.Listen(addr, os.FileMode(mode))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("policyd: %s: %w", addr, err)
		}
		lns = append(lns, ln)
		fmt.Fprintf(stdout, "mailwall: policy server listening on %s (postfix: check_policy_service %s)\n", addr, addr)
	}
	errc := make(chan error, len(lns)+len(cfg.Milter.Listen))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	// The store keeps verdicts and reports and feeds the first-seen rule;
	// mail flows without it, so a store that cannot open is logged, not
	// fatal.
	var st *store.Store
	if cfg.Store.DSN != "" {
		st, err = store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN)
		if err != nil {
			log.Warn("store unavailable: verdicts and reports are not kept, the first_seen_domain rule is off", "err", err)
		} else {
			defer st.Close() // after the milter's shutdown, deferred below
			fmt.Fprintf(stdout, "mailwall: store %s\n", st.Name())
		}
	}
	// Users' Junk folders teach the store's model (stopped before the
	// store closes).
	junk := startJunkWatchers(ctx, cfg, st, log)
	defer junk.Stop()
	// Greylisting starts once the store is open (the listeners opened
	// first answer without it for that long).
	grey, err := newGreylister(cfg, st, resolver, log)
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	srv.SetGreylist(grey)
	listCache, stopLists := startLists(ctx, st, log)
	defer stopLists() // before the store closes
	srv.SetLists(listCache)
	mrcpt, err := newMilterRcpt(cfg, st, resolver, listCache, met, log)
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	milterRcpts := new(atomic.Pointer[milterRcpt]) // a reload swaps it
	milterRcpts.Store(mrcpt)
	// After the milter stops, before the store closes: the deferred
	// triplets still waiting are written.
	defer func() { milterRcpts.Load().close() }()
	rebuildRcpt := func(c *config.Config) (func(), error) {
		return reloadMilterRcpt(milterRcpts, c, st, resolver, listCache, met, log)
	}
	var (
		rec   *store.Recorder
		inbox *reportInbox
	)
	if st != nil {
		rec = st.NewRecorder(log, cfg.Store.Queue, met.StoreErrors)
		rec.HashSubjects(cfg.Store.Subject == "hash")
		defer rec.Close() // after the milter's shutdown: the last verdicts are written
		inbox = newReportInbox(cfg, st, log, met.Report)
		rctx, stopReports := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { newReporting(cfg, st, resolver, log, met.Report).run(rctx); close(done) }()
		defer func() { stopReports(); <-done }() // before the store closes
	}
	// Every refusal of the policy server is counted and recorded.
	srv.SetRecord(recordPolicy(met, rec, cfg.Hostname))
	var failure *report.FailureReporter
	if cfg.Reports.Failure.Send {
		failure = newFailureReporter(cfg, resolver, log, met.Report)
		fctx, stopFailure := context.WithCancel(ctx)
		defer stopFailure()
		failure.Start(fctx)
	}
	stopDDNS, err := startDDNS(ctx, cfg, log) // ddns.go; off unless ddns.enabled
	if err != nil {
		return err
	}
	defer stopDDNS()
	// The reputation history's writer stops after the milter, before
	// the store closes.
	rep, stopRep := startReputation(cfg, st, log)
	defer stopRep()
	msrv, rules, err := startMilter(cfg, resolver, milterDeps{debug: debugPeers, rep: rep, store: st, rec: rec, metrics: met, inbox: inbox, failure: failure, lists: listCache, rcpt: milterRcpts}, log, stdout, errc)
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	if msrv != nil {
		met.WatchListener("milter", msrv.ListenerStats)
		defer msrv.Shutdown()
	}
	// What the dashboard shows as the config in effect, reloads included.
	live := newLiveConfig(cfg, configPath(*cfgPath, defaultConfigFile))
	if cfg.Web.Listen != "" {
		ws, err := startWeb(ctx, cfg, live, st, resolver, met, log, stdout)
		if err != nil {
			// The dashboard is not needed for mail: say so and go on.
			log.Error("web listener unavailable: no dashboard, /metrics or /healthz", "err", err)
		} else {
			defer ws.Close()
		}
	}
	if cfg.Admin.Socket != "" {
		adm := &admin.Server{Cache: resolver, Log: log}
		if err := adm.Listen(cfg.Admin.Socket); err != nil {
			// The checks run without it; only "mailwall dns" is lost.
			log.Warn("admin socket unavailable: mailwall dns query/flush will not reach this daemon", "err", err)
		} else {
			fmt.Fprintf(stdout, "mailwall: admin socket %s\n", cfg.Admin.Socket)
			met.WatchListener("admin", adm.ListenerStats)
			go func() {
				if err := adm.Serve(); err != nil {
					log.Error("admin socket", "err", err)
				}
			}()
			defer adm.Shutdown(context.Background())
		}
	}
	rl := &reloader{path: configPath(*cfgPath, defaultConfigFile), dnsFlag: *dnsFlag, res: resolver, policy: srv, milter: rules, observe: opts.Observe, observeHelo: opts.ObserveHelo, log: log, running: cfg,
		live: live, store: st, rep: rep, observeGreylist: opts.ObserveGreylist, debug: debugPeers,
		// The milter's RCPT stage follows greylist.via and dnsbl.rcpt_via.
		rcpt: rebuildRcpt}
	err = waitForStop(ctx, sigs, errc, func() {
		// Edits to DNS records must show at once: drop the cache.
		st := resolver.Stats()
		resolver.Flush()
		log.Info("SIGHUP: DNS cache flushed", "entries", st.Entries, "hits", st.Hits, "misses", st.Misses)
		if rl.path == "" {
			return // embedded defaults: nothing to re-read
		}
		err := rl.reload()
		if err == nil {
			// So does the Junk-folder watcher its settings.
			junk.apply(rl.running)
		}
		met.Reload(err == nil)
		if err != nil {
			log.Error("SIGHUP: config not reloaded, the running config stays", "err", err)
		}
	})
	log.Info("shutting down", "err", err)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(sctx))
}

// milterDeps are what the milter shares with the rest of the daemon; all
// may be nil.
type milterDeps struct {
	store   *store.Store
	rec     *store.Recorder
	metrics *metrics.Metrics
	inbox   *reportInbox
	failure *report.FailureReporter
	lists   *lists.Cache // nil: no allow and block lists
	// rcpt is the milter's RCPT stage (greylist.via, dnsbl.rcpt_via:
	// milter), swapped by a reload; holding nil, or nil: none.
	rcpt *atomic.Pointer[milterRcpt]
	// rep is the reputation history (nil: none).
	rep *reputation.Reputation
	// debug are log.debug_peers (nil: none).
	debug *debuglog.Peers
}

// startMilter listens for Postfix's milter connections, when configured.
// The rules it returns are what a reload swaps.
func startMilter(cfg *config.Config, res dnsx.Resolver, deps milterDeps, log *slog.Logger, stdout io.Writer, errc chan<- error) (*milter.Server, *atomic.Pointer[milterRules], error) {
	if len(cfg.Milter.Listen) == 0 {
		return nil, nil, nil
	}
	var history phish.History
	if deps.store != nil {
		history = deps.store
	}
	first, err := newMilterRules(cfg, res, history)
	if err != nil {
		return nil, nil, err
	}
	first.lists, first.pipe.Lists = deps.lists, deps.lists
	setReputation(first.pipe.Analyzers, deps.rep)
	rules := new(atomic.Pointer[milterRules])
	rules.Store(first)
	mode, err := strconv.ParseUint(cfg.Milter.UnixMode, 8, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("milter.unix_mode: %q is not an octal mode", cfg.Milter.UnixMode)
	}
	onError := milter.TempFail
	if cfg.Milter.OnError == "accept" {
		onError = milter.Continue
	}
	limits := milterHeaderLimits(cfg.Milter)
	ms := &milter.Server{
		NewFilter: func() milter.Filter {
			r := rules.Load()
			return &milterFilter{pipe: r.pipe, log: log, timeout: r.timeout, node: r.node, rec: deps.rec, metrics: deps.metrics, inbox: deps.inbox,
				failure: deps.failure, noReply: r.noReply, limits: limits, rep: deps.rep, rcpt: loadMilterRcpt(deps.rcpt).conn(),
				debug: deps.debug}
		},
		Actions:          milter.ActAddHeader | milter.ActChangeHeader | milter.ActQuarantine,
		OnError:          &onError,
		Log:              log,
		MacroNames:       milterMacros(),
		HandshakeTimeout: cfg.Milter.HandshakeTimeout.D(),
		IdleTimeout:      cfg.Milter.IdleTimeout.D(),
		MaxConns:         milterMaxConns(cfg.Milter.MaxConnections, log),
		MaxConnsPerPeer:  cfg.Milter.MaxConnectionsPerPeer,
	}
	for _, addr := range cfg.Milter.Listen {
		ln, err := policyd.Listen(addr, os.FileMode(mode))
		if err != nil {
			ms.Shutdown()
			return nil, nil, fmt.Errorf("milter: %s: %w", addr, err)
		}
		fmt.Fprintf(stdout, "mailwall: milter listening on %s (postfix: smtpd_milters = %s)\n", addr, addr)
		go func() { errc <- ms.Serve(ln) }()
	}
	return ms, rules, nil
}

// policydOptions maps the config section onto the server's options.
func policydOptions(cfg *config.Config) (policyd.Options, error) {
	p := cfg.Policyd
	skip, err := config.ParsePrefixes(p.SkipAddresses)
	if err != nil {
		return policyd.Options{}, err
	}
	allow, err := config.ParsePrefixes(p.AllowIPs)
	if err != nil {
		return policyd.Options{}, err
	}
	bl, err := blocklistsFor(cfg)
	if err != nil {
		return policyd.Options{}, err
	}
	return policyd.Options{
		Blocklists:      bl,
		HeloReject:      policyd.RejectPolicy(p.HeloReject),
		MailFromReject:  policyd.RejectPolicy(p.MailFromReject),
		PermErrorReject: p.PermErrorReject,
		TempErrorDefer:  p.TempErrorDefer,
		SkipAddresses:   skip,
		AllowIPs:        allow,
		AllowDomains:    p.AllowDomains,
		HideReceiver:    p.HideReceiver,
		ReasonMessage:   p.ReasonMessage,
		DeferOnError:    p.OnError == "defer",
	}, nil
}
