// Package web serves mailwall's HTTP side: Prometheus metrics at
// /metrics, a health check at /healthz and the dashboard. It listens on
// loopback by default; the dashboard needs a login.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"
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

	srv *http.Server
}

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
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
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
