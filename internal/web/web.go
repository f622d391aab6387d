// Package web serves mailwall's HTTP side: Prometheus metrics at
// /metrics, a health check at /healthz and the dashboard. It listens on
// loopback by default; the dashboard needs a login.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"mailwall/internal/netguard"
)

// Health is one thing /healthz checks; nil Check means always fine.
type Health struct {
	Name  string
	Check func(ctx context.Context) error
}

// Server is the HTTP listener.
type Server struct {
	Metrics http.Handler // /metrics; nil: not served
	Health  []Health
	// Dashboard serves every other path; nil: 404.
	Dashboard http.Handler
	// MaxConns bounds the connections open at once (0: no limit);
	// MaxPerPeer those from one address, except from PerPeerExempt (the
	// trusted proxies, through which every client comes). See
	// internal/netguard.
	MaxConns, MaxPerPeer int
	PerPeerExempt        []netip.Prefix
	Log                  *slog.Logger

	srv   *http.Server
	mu    sync.Mutex // guard, set by Serve, read by ListenerStats
	guard *netguard.Listener
	// readFor replaces readHeaderTimeout and readTimeout in tests.
	readFor time.Duration
}

// Timeouts and sizes of the HTTP server. A slow client cannot hold a
// connection longer than ReadTimeout sending its request, nor
// WriteTimeout (counted from the end of the request's headers) being
// answered; pages read the store and answer in well under a second.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Handler is the whole HTTP side, for tests and for Serve.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	mux.HandleFunc("GET /healthz", s.healthz)
	if s.Dashboard != nil {
		mux.Handle("/", s.Dashboard)
	}
	return mux
}

// healthz answers 200 when every check passes, 503 otherwise, with a
// JSON body naming each check's state.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	status, code := map[string]string{}, http.StatusOK
	for _, h := range s.Health {
		state := "ok"
		if h.Check != nil {
			if err := h.Check(ctx); err != nil {
				state, code = err.Error(), http.StatusServiceUnavailable
			}
		}
		status[h.Name] = state
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(status)
}

// Serve serves on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	g := netguard.New(ln, netguard.Config{Name: "web " + ln.Addr().String(), MaxConns: s.MaxConns,
		MaxPerPeer: s.MaxPerPeer, PerPeerExempt: s.PerPeerExempt, Log: log})
	rh, rt := readHeaderTimeout, readTimeout
	if s.readFor > 0 {
		rh, rt = s.readFor, s.readFor
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: rh, ReadTimeout: rt,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	s.mu.Lock()
	s.guard = g
	s.mu.Unlock()
	if err := s.srv.Serve(g); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenerStats are the counters of the listener Serve guards
// (internal/netguard); zero before Serve.
func (s *Server) ListenerStats() netguard.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.guard == nil {
		return netguard.Stats{}
	}
	return s.guard.Stats()
}

// Close stops the server, letting requests in progress finish briefly.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
