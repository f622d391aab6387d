package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"mailwall/internal/metrics"
	"mailwall/internal/netguard"
	"mailwall/internal/policyd"
)

// watchPolicyConns exports the policy server's connection counters: how
// many are open, and what the limits of internal/netguard and the
// policy server's timeouts did; under mailwall_policy_* (as first
// exported) and as listener="policy" beside the other listeners.
func watchPolicyConns(met *metrics.Metrics, srv *policyd.Server) {
	met.WatchListener("policy", func() netguard.Stats {
		s := srv.Stats()
		return netguard.Stats{Open: s.Open, TemporaryErrors: s.AcceptErrors, Evicted: s.Evicted, PerPeerRefused: s.PerPeerRefused}
	})
	stat := func(f func(policyd.Stats) float64) func() float64 {
		return func() float64 { return f(srv.Stats()) }
	}
	met.Registry().MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwall_policy_connections_open",
			Help: "Policy connections open."}, stat(func(s policyd.Stats) float64 { return float64(s.Open) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwall_policy_connections_evicted_total",
			Help: "Idle policy connections closed to make room for a new one (listener full, or out of file descriptors)."},
			stat(func(s policyd.Stats) float64 { return float64(s.Evicted) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwall_policy_connections_refused_total",
			Help: "Policy connections closed at once for policyd.max_connections_per_peer."},
			stat(func(s policyd.Stats) float64 { return float64(s.PerPeerRefused) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwall_policy_accept_errors_total",
			Help: "Accept errors on the policy listeners retried after a pause (EMFILE, ENFILE, ECONNABORTED)."},
			stat(func(s policyd.Stats) float64 { return float64(s.AcceptErrors) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwall_policy_timeouts_total",
			Help: "Policy connections closed for sending no request, or too slow a request, in the time allowed."},
			stat(func(s policyd.Stats) float64 { return float64(s.Timeouts) })),
	)
}
