package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"

	"mailwall/internal/config"
	"mailwall/internal/ddns"
)

// newDDNS builds the updater and the address source of the ddns section.
func newDDNS(cfg *config.Config, log *slog.Logger, dryRun bool) (*ddns.Updater, func(context.Context) ([]netip.Addr, error), error) {
	d := cfg.DDNS
	if d.KeyFile == "" {
		return nil, nil, fmt.Errorf("ddns.key_file: no TSIG key: updates are never sent unsigned")
	}
	secret, err := config.ReadTSIGSecret(d.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	u, err := ddns.New(ddns.Config{
		Names:          slices.Clone(d.Names),
		SPFNames:       slices.Clone(d.SPFNames),
		Zone:           d.Zone,
		Server:         d.Server,
		Key:            ddns.Key{Name: d.KeyName, Algorithm: d.KeyAlg, Secret: secret},
		TTL:            d.TTL,
		NSPort:         d.NSPort,
		Timeout:        d.Timeout.D(),
		VerifyAttempts: d.VerifyAttempts,
		VerifyBackoff:  d.VerifyBackoff.D(),
		DryRun:         dryRun,
		Logger:         log,
	})
	if err != nil {
		return nil, nil, err
	}
	client := &http.Client{Timeout: d.Timeout.D()}
	discover := func(ctx context.Context) ([]netip.Addr, error) {
		return ddns.Discover(ctx, d.Interface, d.URL, d.LabAllowLoopback, client)
	}
	return u, discover, nil
}

func cmdDDNS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ddns", stderr)
	cfgPath := fs.String("config", "", "config file (ddns section)")
	addr := fs.String("address", "", "publish this address instead of learning it (ddns.interface, ddns.url)")
	dryRun := fs.Bool("dry-run", false, "say what would change; send nothing")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	u, discover, err := newDDNS(cfg, log, *dryRun)
	if err != nil {
		return err
	}
	var addrs []netip.Addr
	if *addr != "" {
		a, err := netip.ParseAddr(*addr)
		if err != nil {
			return fmt.Errorf("--address: %w", err)
		}
		if err := ddns.Usable(a.Unmap(), cfg.DDNS.LabAllowLoopback); err != nil {
			return fmt.Errorf("--address: %w", err)
		}
		addrs = []netip.Addr{a.Unmap()}
	} else {
		dctx, cancel := context.WithTimeout(ctx, cfg.DDNS.Timeout.D())
		addrs, err = discover(dctx)
		cancel()
		if err != nil {
			return err
		}
	}
	res, runErr := u.Run(ctx, addrs)
	if *asJSON {
		out := struct {
			*ddns.Result
			Error string `json:"error,omitempty"`
		}{Result: res}
		if runErr != nil {
			out.Error = runErr.Error()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		return runErr
	}
	for _, a := range res.Addrs {
		fmt.Fprintf(stdout, "address: %s\n", a)
	}
	if res.Zone != "" {
		fmt.Fprintf(stdout, "zone: %s\n", res.Zone)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if len(res.Changes) == 0 && runErr == nil {
		fmt.Fprintln(stdout, "up to date: no update sent")
	}
	for _, c := range res.Changes {
		if *dryRun {
			fmt.Fprintf(stdout, "would change: %s\n", c)
		} else {
			fmt.Fprintf(stdout, "change: %s\n", c)
		}
	}
	if res.Sent {
		fmt.Fprintf(stdout, "update accepted by %s\n", cfg.DDNS.Server)
	}
	for _, v := range res.Verified {
		fmt.Fprintf(stdout, "visible at %s\n", v)
	}
	for _, s := range res.Stale {
		fmt.Fprintf(stdout, "NOT visible at %s\n", s)
	}
	return runErr
}

// startDDNS runs the ddns loop inside serve when ddns.enabled; the
// returned func stops it and waits.
func startDDNS(ctx context.Context, cfg *config.Config, log *slog.Logger) (func(), error) {
	if !cfg.DDNS.Enabled {
		return func() {}, nil
	}
	u, discover, err := newDDNS(cfg, log, false)
	if err != nil {
		return nil, fmt.Errorf("ddns: %w", err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Loop(dctx, cfg.DDNS.Every.D(), discover); close(done) }()
	log.Info("ddns: updating the zone's records when the address changes", "every", cfg.DDNS.Every.D(), "names", cfg.DDNS.Names, "spf_names", cfg.DDNS.SPFNames)
	return func() { cancel(); <-done }, nil
}
