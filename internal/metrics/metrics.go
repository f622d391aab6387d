// Package metrics exports what mailwall does as Prometheus metrics: the
// result of every stage, the actions taken, how long checks take, the DNS
// cache's hit rate, store failures, reports sent and received, and what
// the listeners' connection limits did.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mailwall/internal/dnsx"
	"mailwall/internal/netguard"
	"mailwall/internal/policyd"
	"mailwall/internal/spf"
	"mailwall/internal/verdict"
	"mailwall/internal/version"
)

// Metrics holds the collectors of one daemon, in its own registry.
type Metrics struct {
	reg      *prometheus.Registry
	stages   *prometheus.CounterVec
	actions  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	storeErr prometheus.Counter
	reloads  *prometheus.CounterVec
	reports  *prometheus.CounterVec
	policyd  *prometheus.CounterVec
	greylist *prometheus.CounterVec
	dnsbl    *prometheus.CounterVec
	dnsblAct *prometheus.CounterVec
	lists    *prometheus.CounterVec
	helo     *prometheus.CounterVec
	upstream *prometheus.CounterVec
	// decisions counts what the verdict list records, by source.
	decisions *prometheus.CounterVec
	// The counters Message counts, cached (children.go), and the
	// milter's latency histogram.
	msgStages, msgActions, msgDecisions, msgDNSBL *children
	milterLatency                                 prometheus.Observer
	conns                                         *listenerCollector
}

// New makes the collectors, with the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		stages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_stage_results_total",
			Help: "Results of each check stage (iprev, spf, dkim, dmarc, arc, phish) on received messages.",
		}, []string{"stage", "result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_messages_total",
			Help: "Messages by the action taken (accept, tag, quarantine, reject, tempfail) and the stage that decided.",
		}, []string{"action", "stage"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailwall_check_duration_seconds",
			Help:    "Time from the end of a message (milter) or a policy request (policyd) to the verdict.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"interface"}),
		storeErr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailwall_store_errors_total",
			Help: "Records lost because the store could not take them (the mail itself was not affected).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_config_reloads_total",
			Help: "SIGHUP config reloads by outcome (ok, failed: the running config stayed).",
		}, []string{"outcome"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_dmarc_reports_total",
			Help: "DMARC reports by outcome: aggregate report deliveries (sent, retry, failed, dropped), failure reports (failure_sent, failure_failed, failure_dropped, failure_rate_limited), " +
				"and reports received (received; received_unauthenticated: stored apart, its message did not pass DMARC; malformed; refused: not about our domains, or past the reporter's daily limit).",
		}, []string{"outcome"}),
		policyd: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_policyd_requests_total",
			Help: "Policy delegation requests by the action returned.",
		}, []string{"action"}),
		greylist: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_greylist_total",
			Help: "Greylisting decisions by outcome: deferred, passed (retried after the delay), auto_allowed (the client passed often enough), error (the store failed: not greylisted), not_subject (rgrey: a verified, static-looking name), exempt.",
		}, []string{"outcome"}),
		dnsbl: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_dnsbl_lookups_total",
			Help: "DNS blocklist checks by zone and outcome, one a zone per policy request (the client) and per milter message (the client and the message's domains): listed, not_listed, error (timeout, SERVFAIL, budget spent: never a listing), refused (the list's refusal codes, REFUSED, answers outside 127/8: needs the admin); listed_cached, not_listed_cached: answered from the DNS cache, no lookup made.",
		}, []string{"zone", "outcome"}),
		dnsblAct: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_dnsbl_actions_total",
			Help: "What the DNS blocklists' score led to, once a message: reject, defer, scored (at the threshold, action none), greylist, allowlisted (exempt from greylisting), none.",
		}, []string{"action"}),
		conns: &listenerCollector{watched: map[string][]func() netguard.Stats{}},
	}
	m.lists = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailwall_lists_total",
		Help: "Policy requests the site's allow and block lists decided, by list (allow, block); the milter's show in mailwall_messages_total as stage lists.",
	}, []string{"list"})
	m.helo = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailwall_helo_total",
		Help: "HELO checks by source and action. source milter: the milter's HELO tables and syntax checks, action accept, reject, tempfail or quarantine (a table's HOLD). " +
			"source policy: the policy server's SPF checks of the HELO identity (policyd.helo_reject), by the action the result alone leads to: reject, tempfail or accept.",
	}, []string{"source", "action"})
	m.upstream = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailwall_dns_upstream_errors_total",
		Help: "Exchanges with an upstream DNS server (dns.servers) that failed, by server and kind, counted even when another server then answered: " +
			"timeout, servfail (SERVFAIL, REFUSED and other error codes), network (other transport errors), invalid (a name that cannot be asked).",
	}, []string{"kind", "server"})
	m.reg.MustRegister(m.helo, m.upstream)
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailwall_decisions_total",
		Help: "Decisions as the dashboard's verdict list records them, by source (milter: a message; policy: the policy server's refusals, one a recipient; rcpt: the milter's, greylisting or blocklisting at RCPT; helo and connect: the milter's refusals before a message) and action (accept, tag, quarantine, reject, tempfail).",
	}, []string{"source", "action"})
	m.reg.MustRegister(m.decisions)
	m.reg.MustRegister(m.stages, m.actions, m.latency, m.storeErr, m.reloads, m.reports, m.policyd, m.greylist, m.dnsbl, m.dnsblAct, m.lists, m.conns, buildInfo(version.Get()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.msgStages, m.msgActions, m.msgDecisions, m.msgDNSBL = newChildren(m.stages), newChildren(m.actions), newChildren(m.decisions), newChildren(m.dnsbl)
	m.milterLatency = m.latency.WithLabelValues("milter")
	// The series the shipped alert rules watch start at 0: increase() over
	// a series that appears at 1 is 0, so the first failure would not alert.
	for _, o := range []string{"ok", "failed"} {
		m.reloads.WithLabelValues(o)
	}
	for _, o := range []string{"sent", "retry", "failed", "dropped", "failure_sent", "failure_failed", "failure_dropped"} {
		m.reports.WithLabelValues(o)
	}
	return m
}

// Decision counts a decision of the policy server or the milter's HELO or
// connection stage (the milter's messages are counted by Message).
func (m *Metrics) Decision(source, action string) {
	m.decisions.WithLabelValues(source, action).Inc()
}

// Helo counts the milter's HELO check by the action it led to.
func (m *Metrics) Helo(action string) { m.helo.WithLabelValues("milter", action).Inc() }

// ObservePolicy counts a policy answer, as PolicyRequest.
func (m *Metrics) ObservePolicy(r policyd.Response, took time.Duration) {
	m.PolicyRequest(string(r.Action), took)
}

// PolicyHelo counts one of the policy server's HELO checks by the action
// its result alone leads to: reject, tempfail (a defer) or accept.
func (m *Metrics) PolicyHelo(_ spf.Result, act policyd.Action) {
	action := "accept"
	switch act {
	case policyd.Reject:
		action = "reject"
	case policyd.Defer:
		action = "tempfail"
	}
	m.helo.WithLabelValues("policy", action).Inc()
}

// CountUpstream counts the failures of the upstream DNS client, under the
// cache so only real queries count. A *dnsx.Client is counted per server
// through its OnServerError hook (which this sets) and returned as it
// is; its servers' series start at 0, so an alert sees the first
// failure. Any other resolver is wrapped and its failed queries counted
// with an empty server label.
func (m *Metrics) CountUpstream(r dnsx.Resolver) dnsx.Resolver {
	c, ok := r.(*dnsx.Client)
	if !ok {
		return upstreamCounter{r, m.upstream}
	}
	for _, s := range c.Servers {
		for _, k := range []string{"timeout", "servfail", "network"} {
			m.upstream.WithLabelValues(k, s)
		}
	}
	c.OnServerError = func(server string, err error) { m.upstream.WithLabelValues(upstreamKind(err), server).Inc() }
	return c
}

type upstreamCounter struct {
	dnsx.Resolver
	errs *prometheus.CounterVec
}

func (u upstreamCounter) Query(ctx context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	a, err := u.Resolver.Query(ctx, name, qtype)
	if err != nil {
		u.errs.WithLabelValues(upstreamKind(err), "").Inc()
	}
	return a, err
}

func upstreamKind(err error) string {
	switch {
	case errors.Is(err, dnsx.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, dnsx.ErrServFail):
		return "servfail"
	case !dnsx.IsTemporary(err):
		return "invalid"
	}
	return "network"
}

// buildInfo is the conventional constant 1 whose labels say which build
// runs, so dashboards can show it and alerts can join on it.
func buildInfo(v version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "mailwall_build_info",
		Help:        "Always 1; the labels are the running build's version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": v.Version, "revision": v.Revision, "goversion": v.GoVersion},
	})
	g.Set(1)
	return g
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is where further collectors can be added.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Message counts a received message's results and action.
func (m *Metrics) Message(r *verdict.Result, took time.Duration) {
	m.milterLatency.Observe(took.Seconds())
	stage := r.Stage
	if stage == "" {
		stage = "none"
	}
	m.msgActions.with(string(r.Action), stage).Inc()
	m.msgDecisions.with("milter", string(r.Action)).Inc()
	if r.Internal {
		return
	}
	count := func(stage, result string) {
		if result != "" {
			m.msgStages.with(stage, result).Inc()
		}
	}
	count("iprev", r.IPRev.Result)
	count("spf", string(r.SPF.Result))
	if len(r.DKIM) == 0 {
		count("dkim", "none")
	}
	for _, d := range r.DKIM {
		count("dkim", string(d.Status))
	}
	count("dmarc", r.DMARC.Result)
	count("arc", string(r.ARC.Result))
	if r.Phish != nil {
		count("phish", phishBand(r.Phish.Score))
	}
	// The milter's dnsbl analyzer: each zone's outcome, as the policy
	// server's checks count theirs.
	for _, a := range r.Analyses {
		if z, ok := a.Report.(interface{ ZoneOutcomes() map[string]string }); ok {
			for zone, outcome := range z.ZoneOutcomes() {
				m.msgDNSBL.with(zone, outcome).Inc()
			}
		}
	}
}

// phishBand keeps the score's label set small.
func phishBand(score int) string {
	switch {
	case score <= 0:
		return "0"
	case score < 30:
		return "1-29"
	case score < 60:
		return "30-59"
	case score < 100:
		return "60-99"
	}
	return "100+"
}

// PolicyRequest counts a policy delegation answer.
func (m *Metrics) PolicyRequest(action string, took time.Duration) {
	m.latency.WithLabelValues("policyd").Observe(took.Seconds())
	m.policyd.WithLabelValues(action).Inc()
}

// Greylist counts a greylisting decision by its outcome.
func (m *Metrics) Greylist(outcome string) { m.greylist.WithLabelValues(outcome).Inc() }

// ListHit counts a policy request decided by the allow or block list.
func (m *Metrics) ListHit(list string) { m.lists.WithLabelValues(list).Inc() }

// DNSBL counts one blocklist check: each zone's outcome and the action.
func (m *Metrics) DNSBL(zones map[string]string, action string) {
	for z, o := range zones {
		m.dnsbl.WithLabelValues(z, o).Inc()
	}
	m.dnsblAct.WithLabelValues(action).Inc()
}

// Reload counts a config reload; ok false: it failed.
func (m *Metrics) Reload(ok bool) {
	outcome := "ok"
	if !ok {
		outcome = "failed"
	}
	m.reloads.WithLabelValues(outcome).Inc()
}

// StoreErrors counts records lost by the store.
func (m *Metrics) StoreErrors(n int) { m.storeErr.Add(float64(n)) }

// Report counts a report delivery or reception outcome.
func (m *Metrics) Report(outcome string) { m.reports.WithLabelValues(outcome).Inc() }

// WatchCache exports a DNS cache's counters, read at each scrape.
func (m *Metrics) WatchCache(stats func() dnsx.CacheStats) {
	m.reg.MustRegister(&cacheCollector{stats: stats})
}

type cacheCollector struct{ stats func() dnsx.CacheStats }

var (
	cacheEntries   = prometheus.NewDesc("mailwall_dns_cache_entries", "Answers in the DNS cache.", nil, nil)
	cacheLookups   = prometheus.NewDesc("mailwall_dns_cache_lookups_total", "DNS cache lookups by outcome (hit, miss).", []string{"outcome"}, nil)
	cacheEvictions = prometheus.NewDesc("mailwall_dns_cache_evictions_total", "Answers dropped to keep the cache within its size.", nil, nil)
)

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheEntries
	ch <- cacheLookups
	ch <- cacheEvictions
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(cacheEntries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(cacheLookups, prometheus.CounterValue, float64(s.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(cacheLookups, prometheus.CounterValue, float64(s.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(cacheEvictions, prometheus.CounterValue, float64(s.Evictions))
}

// WatchListener exports the counters of a server's guarded listeners
// (internal/netguard), read at each scrape, labelled listener=name:
// "milter", "policy", "web", "admin". Functions watched under one name
// are summed.
func (m *Metrics) WatchListener(name string, stats func() netguard.Stats) {
	m.conns.mu.Lock()
	defer m.conns.mu.Unlock()
	m.conns.watched[name] = append(m.conns.watched[name], stats)
}

// listenerCollector is one set of metric families for every listener, so
// that a dashboard can chart them side by side.
type listenerCollector struct {
	mu      sync.Mutex
	watched map[string][]func() netguard.Stats
}

var (
	listenerOpen = prometheus.NewDesc("mailwall_listener_connections_open",
		"Connections open, by listener (milter, policy, web, admin).", []string{"listener"}, nil)
	listenerAcceptErrors = prometheus.NewDesc("mailwall_listener_accept_errors_total",
		"Accept errors retried after a pause, by listener: out of file descriptors (EMFILE, ENFILE), or a client gone before it was accepted (ECONNABORTED).", []string{"listener"}, nil)
	listenerEvicted = prometheus.NewDesc("mailwall_listener_connections_evicted_total",
		"Connections closed to make room for a new one (listener full, or out of file descriptors), by listener: idle policy connections, milter connections that had not negotiated.", []string{"listener"}, nil)
	listenerRefused = prometheus.NewDesc("mailwall_listener_connections_refused_total",
		"Connections closed at once for the listener's per-address limit (max_connections_per_peer), by listener.", []string{"listener"}, nil)
)

func (c *listenerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- listenerOpen
	ch <- listenerAcceptErrors
	ch <- listenerEvicted
	ch <- listenerRefused
}

func (c *listenerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	names := make([]string, 0, len(c.watched))
	for name := range c.watched {
		names = append(names, name)
	}
	slices.Sort(names)
	sums := make([]netguard.Stats, len(names))
	for i, name := range names {
		for _, f := range c.watched[name] {
			sums[i] = sums[i].Add(f())
		}
	}
	c.mu.Unlock()
	for i, name := range names {
		s := sums[i]
		ch <- prometheus.MustNewConstMetric(listenerOpen, prometheus.GaugeValue, float64(s.Open), name)
		ch <- prometheus.MustNewConstMetric(listenerAcceptErrors, prometheus.CounterValue, float64(s.TemporaryErrors), name)
		ch <- prometheus.MustNewConstMetric(listenerEvicted, prometheus.CounterValue, float64(s.Evicted), name)
		ch <- prometheus.MustNewConstMetric(listenerRefused, prometheus.CounterValue, float64(s.PerPeerRefused), name)
	}
}
