package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"mailwall/internal/config"
	"mailwall/internal/dnsx"
)

// defaultConfigFile is the config read when no --config is given and the
// file exists (the package installs it); else the embedded defaults.
const defaultConfigFile = "/etc/mailwall/mailwall.yaml"

// configPath is the config file a command reads: flag when given, else
// dflt when it exists, else "" (the embedded defaults).
func configPath(flag, dflt string) string {
	if flag != "" {
		return flag
	}
	if _, err := os.Stat(dflt); err == nil {
		return dflt
	}
	return ""
}

// configFlagHelp is the help of every --config flag.
const configFlagHelp = "config file (default: " + defaultConfigFile + " if it exists, else the embedded defaults)"

// servable returns what would stop "mailwall serve" from starting with
// cfg beyond what config.Load refuses: files the checks read (brands,
// HELO tables, DKIM signing and ARC sealing keys), the policy server's
// options, socket modes and listen addresses. Nothing is opened or bound.
func servable(cfg *config.Config) error {
	var errs []error
	if _, err := newPipeline(cfg, noDNS{}); err != nil {
		errs = append(errs, err)
	}
	if _, err := policydOptions(cfg); err != nil {
		errs = append(errs, fmt.Errorf("policyd: %w", err))
	}
	for name, mode := range map[string]string{"policyd.unix_mode": cfg.Policyd.UnixMode, "milter.unix_mode": cfg.Milter.UnixMode} {
		if _, err := strconv.ParseUint(mode, 8, 32); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an octal mode", name, mode))
		}
	}
	for _, l := range cfg.Policyd.Listen {
		errs = append(errs, listenAddr("policyd.listen", l, true))
	}
	for _, l := range cfg.Milter.Listen {
		errs = append(errs, listenAddr("milter.listen", l, true))
	}
	if cfg.Web.Listen != "" {
		errs = append(errs, listenAddr("web.listen", cfg.Web.Listen, false))
	}
	if _, err := parsePrefixes(cfg.Web.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("web.trusted_proxies: %w", err))
	}
	return errors.Join(errs...)
}

// listenAddr checks one listen address: HOST:PORT with a port from 0 to
// 65535 (prefixed "inet:" when prefixed), or "unix:PATH".
func listenAddr(key, addr string, prefixed bool) error {
	hostport := addr
	if prefixed {
		if path, ok := strings.CutPrefix(addr, "unix:"); ok {
			if path == "" {
				return fmt.Errorf("%s: %q has no path", key, addr)
			}
			return nil
		}
		hostport = strings.TrimPrefix(addr, "inet:")
	}
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%s: %q: %w", key, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%s: %q: the port must be a number from 0 to 65535", key, addr)
	}
	return nil
}

// noDNS is the resolver of a config check: building the checks asks
// nothing.
type noDNS struct{}

func (noDNS) Query(context.Context, string, uint16) (*dnsx.Answer, error) {
	return nil, errors.New("config check: no DNS")
}

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "default":
		_, err := stdout.Write(config.DefaultYAML())
		return err
	case len(args) <= 2 && len(args) >= 1 && args[0] == "check":
		path := defaultConfigFile
		if len(args) == 2 {
			path = args[1]
		}
		cfg, err := config.Load(path)
		if err != nil {
			return err
		}
		if err := servable(cfg); err != nil {
			return fmt.Errorf("%s: serve would refuse it: %w", path, err)
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
		return nil
	}
	fmt.Fprint(stderr, "usage: mailwall config default | mailwall config check [FILE]\n")
	return errUsage
}
