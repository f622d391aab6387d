package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"mailwall/internal/config"
	"mailwall/internal/metrics"
	"mailwall/internal/store"
	"mailwall/internal/web"
)

// startWeb serves /metrics and /healthz.
func startWeb(cfg *config.Config, st *store.Store, met *metrics.Metrics, log *slog.Logger, stdout io.Writer) (*web.Server, error) {
	ws := &web.Server{Metrics: met.Handler()}
	if st != nil {
		ws.Health = append(ws.Health, web.Health{Name: "store", Check: st.Ping})
	} else if cfg.Store.DSN != "" {
		ws.Health = append(ws.Health, web.Health{Name: "store", Check: func(context.Context) error { return fmt.Errorf("store %s did not open", cfg.Store.DSN) }})
	}
	ln, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	fmt.Fprintf(stdout, "mailwall: web on http://%s (/metrics, /healthz)\n", ln.Addr())
	go func() {
		if err := ws.Serve(ln); err != nil {
			log.Error("web", "err", err)
		}
	}()
	return ws, nil
}
