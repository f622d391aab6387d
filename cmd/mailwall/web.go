package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"mailwall/internal/config"
	"mailwall/internal/dnsx"
	"mailwall/internal/metrics"
	"mailwall/internal/store"
	"mailwall/internal/web"
)

// passwordSetting is where the store keeps the dashboard's password hash
// when the config gives none.
const passwordSetting = "web.password_hash"

// startWeb serves the dashboard, /metrics and /healthz.
func startWeb(ctx context.Context, cfg *config.Config, st *store.Store, cache *dnsx.Cache, met *metrics.Metrics, log *slog.Logger, stdout io.Writer) (*web.Server, error) {
	ws := &web.Server{Metrics: met.Handler()}
	if st != nil {
		ws.Health = append(ws.Health, web.Health{Name: "store", Check: st.Ping})
	} else if cfg.Store.DSN != "" {
		ws.Health = append(ws.Health, web.Health{Name: "store", Check: func(context.Context) error { return fmt.Errorf("store %s did not open", cfg.Store.DSN) }})
	}
	hash, err := dashboardPassword(ctx, cfg, st, stdout)
	if err != nil {
		return nil, err
	}
	auth, err := web.NewAuth(cfg.Web.User, hash, nil)
	if err != nil {
		return nil, err
	}
	shown, err := cfg.Redacted()
	if err != nil {
		return nil, err
	}
	dash := &web.Dashboard{Store: st, Cache: cache, Config: shown, Auth: auth, Log: log}
	if ws.Dashboard, err = dash.Handler(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	fmt.Fprintf(stdout, "mailwall: web on http://%s (dashboard, /metrics, /healthz)\n", ln.Addr())
	go func() {
		if err := ws.Serve(ln); err != nil {
			log.Error("web", "err", err)
		}
	}()
	return ws, nil
}

// dashboardPassword is the bcrypt hash logins are checked against:
// web.password_hash, else the one kept in the store, else a new random
// password, printed once and kept hashed in the store. Without a store a
// new one is printed at every start.
func dashboardPassword(ctx context.Context, cfg *config.Config, st *store.Store, stdout io.Writer) (string, error) {
	if cfg.Web.PasswordHash != "" {
		return cfg.Web.PasswordHash, nil
	}
	if st != nil {
		if h, ok, err := st.Setting(ctx, passwordSetting); err != nil || ok {
			return h, err
		}
	}
	password := web.NewPassword()
	hash, err := web.HashPassword(password)
	if err != nil {
		return "", err
	}
	if st == nil {
		fmt.Fprintf(stdout, "mailwall: dashboard login %s / %s (no store: a new password at each start; set web.password_hash)\n", cfg.Web.User, password)
		return hash, nil
	}
	kept, created, err := st.InitSetting(ctx, passwordSetting, hash)
	if err != nil {
		return "", err
	}
	if created { // another node may have made one first: then it printed it
		fmt.Fprintf(stdout, "mailwall: dashboard login %s / %s (shown once; kept hashed in the store; mailwall web reset-password makes another)\n", cfg.Web.User, password)
	}
	return kept, nil
}

func cmdWeb(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("web: password-hash or reset-password: %w", errUsage)
	}
	fs := newFlags("web "+args[0], stderr)
	cfgPath := fs.String("config", "", "config file (default: embedded defaults)")
	if _, err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "password-hash":
		// The password is read from stdin so it stays out of the shell
		// history and the process list.
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("web password-hash: give the password on stdin")
		}
		hash, err := web.HashPassword(strings.TrimRight(line, "\r\n"))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", hash)
		return nil
	case "reset-password":
		cfg, err := loadConfig(*cfgPath, "")
		if err != nil {
			return err
		}
		st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN)
		if err != nil {
			return err
		}
		defer st.Close()
		password := web.NewPassword()
		hash, err := web.HashPassword(password)
		if err != nil {
			return err
		}
		if err := st.SetSetting(ctx, passwordSetting, hash); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dashboard login %s / %s (restart mailwall serve to use it)\n", cfg.Web.User, password)
		if cfg.Web.PasswordHash != "" {
			fmt.Fprintf(stdout, "note: web.password_hash in the config takes precedence over this password\n")
		}
		return nil
	}
	return fmt.Errorf("web: password-hash or reset-password: %w", errUsage)
}
