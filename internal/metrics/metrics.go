// Package metrics exports what mailwall does as Prometheus metrics: the
// result of every stage, the actions taken, how long checks take, the DNS
// cache's hit rate, store failures and aggregate reports sent.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mailwall/internal/dnsx"
	"mailwall/internal/verdict"
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
			Help: "DMARC aggregate report deliveries by outcome (sent, retry, failed, dropped) and reports received (received, malformed).",
		}, []string{"outcome"}),
		policyd: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailwall_policyd_requests_total",
			Help: "Policy delegation requests by the action returned.",
		}, []string{"action"}),
	}
	m.reg.MustRegister(m.stages, m.actions, m.latency, m.storeErr, m.reloads, m.reports, m.policyd,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is where further collectors can be added.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Message counts a received message's results and action.
func (m *Metrics) Message(r *verdict.Result, took time.Duration) {
	m.latency.WithLabelValues("milter").Observe(took.Seconds())
	stage := r.Stage
	if stage == "" {
		stage = "none"
	}
	m.actions.WithLabelValues(string(r.Action), stage).Inc()
	if r.Internal {
		return
	}
	count := func(stage, result string) {
		if result != "" {
			m.stages.WithLabelValues(stage, result).Inc()
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
