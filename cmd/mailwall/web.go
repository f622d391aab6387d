package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

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
// live is the configuration in effect as reloads change it.
func startWeb(ctx context.Context, cfg *config.Config, live *liveConfig, st *store.Store, cache *dnsx.Cache, met *metrics.Metrics, log *slog.Logger, stdout io.Writer) (*web.Server, error) {
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
	if cfg.Web.PasswordHash == "" && st != nil {
		go watchPassword(ctx, st, auth, passwordRefresh, log) // reset-password applies with no restart
	}
	proxies, err := parsePrefixes(cfg.Web.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("web.trusted_proxies: %w", err)
	}
	ws.MaxConns, ws.MaxPerPeer, ws.PerPeerExempt, ws.Log = cfg.Web.MaxConnections, cfg.Web.MaxConnectionsPerPeer, proxies, log
	if met != nil {
		met.WatchListener("web", ws.ListenerStats)
		// Evidence for throttling that does not rest on timing: how many
		// passwords were hashed, and how many logins were refused first.
		met.Registry().MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwall_web_password_checks_total",
				Help: "Dashboard logins whose password was checked (bcrypt comparisons)."},
				func() float64 { return float64(auth.Stats().Checks) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwall_web_logins_refused_total",
				Help: "Dashboard logins refused before any password check: throttled, or too many at once."},
				func() float64 { return float64(auth.Stats().Refused) }))
	}
	shown, err := cfg.Redacted()
	if err != nil {
		return nil, err
	}
	loc, err := cfg.Web.Location()
	if err != nil {
		return nil, fmt.Errorf("web.timezone: %w", err)
	}
	dash := &web.Dashboard{Store: st, Cache: cache, Config: shown, Auth: auth, Log: log, TrustedProxies: proxies, Location: loc}
	if live != nil {
		dash.Running = live.get
	}
	// Release and delete of held mail (no shell), only of this host's;
	// spam / not spam clicks into reputation.
	dash.Postsuper, dash.Node = postsuperCommand(cfg.Web.Postsuper), cfg.Hostname
	dash.Feedback = dashboardFeedback(cfg, st)
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
// password, kept hashed in the store and written to a file only its
// owner may read (initialPasswordFile), whose path is printed: stdout
// goes to the journal, which more people read than should log in.
// Without a store a new one is made at every start.
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
	if st != nil {
		kept, created, err := st.InitSetting(ctx, passwordSetting, hash)
		if err != nil || !created { // another node may have made one first: then it wrote it
			return kept, err
		}
		hash = kept
	}
	path := initialPasswordFile(cfg)
	if err := writeSecret(path, cfg.Web.User, password); err != nil {
		return "", fmt.Errorf("web: first-run password: %w (or set web.password_hash)", err)
	}
	again := "mailwall web reset-password makes another"
	if st == nil {
		again = "no store: a new one at each start; set web.password_hash"
	}
	fmt.Fprintf(stdout, "mailwall: dashboard login %s: first-run password in %s (mode 0600; delete it once you have logged in; %s)\n", cfg.Web.User, path, again)
	return hash, nil
}

// initialPasswordFile is where the first-run password goes: beside the
// SQLite store, else in systemd's StateDirectory, else /var/lib/mailwall.
func initialPasswordFile(cfg *config.Config) string {
	dir := "/var/lib/mailwall"
	if cfg.Store.Driver == "sqlite" && cfg.Store.DSN != "" {
		dir = filepath.Dir(cfg.Store.DSN)
	} else if sd, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); sd != "" {
		dir = sd
	}
	return filepath.Join(dir, "initial-password")
}

// writeSecret writes the login to path, mode 0600. A file left there is
// replaced; a symlink planted there is removed, not followed (O_EXCL).
func writeSecret(path, user, password string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "user: %s\npassword: %s\n", user, password)
	return errors.Join(err, f.Sync(), f.Close())
}

// parsePrefixes reads addresses and CIDRs.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func cmdWeb(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("web: password-hash or reset-password: %w", errUsage)
	}
	switch args[0] { // the dashboard's way to Postfix's hold queue (webqueue.go)
	case "postsuper":
		return cmdWebPostsuper(ctx, args[1:], stdout, stderr)
	case "queue-helper":
		return cmdWebQueueHelper(ctx, args[1:], stdin, stdout, stderr)
	}
	fs := newFlags("web "+args[0], stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
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
		cfg, st, err := openStore(ctx, *cfgPath)
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
		fmt.Fprintf(stdout, "dashboard login %s / %s (a running mailwall serve takes it within %v and ends the sessions open)\n", cfg.Web.User, password, passwordRefresh)
		if cfg.Web.PasswordHash != "" {
			fmt.Fprintf(stdout, "note: web.password_hash in the config takes precedence over this password\n")
		}
		return nil
	}
	return fmt.Errorf("web: password-hash or reset-password: %w", errUsage)
}
