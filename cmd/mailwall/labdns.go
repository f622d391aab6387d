package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/labdns"
)

func cmdLabDNS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("lab-dns", stderr)
	cfgPath := fs.String("config", "", "config file (lab_dns section)")
	listen := fs.String("listen", "", "HOST:PORT for UDP and TCP (default lab_dns.listen, 127.0.0.1:5353)")
	axfr := fs.String("axfr-allow", "", "CIDRs allowed to transfer zones, comma separated (default: nobody)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.LabDNS.Listen = *listen
	}
	if *axfr != "" {
		cfg.LabDNS.AXFRAllow = strings.Split(*axfr, ",")
	}
	files := append(cfg.LabDNS.Zones, fs.Args()...)
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: mailwall lab-dns [--listen 127.0.0.1:5353] [--axfr-allow CIDR] ZONEFILE...")
		return errUsage
	}
	allow, err := config.ParsePrefixes(cfg.LabDNS.AXFRAllow)
	if err != nil {
		return fmt.Errorf("axfr-allow: %w", err)
	}
	log := newLogger(cfg, stderr)
	lc := labdns.Config{Listen: cfg.LabDNS.Listen, AXFRAllow: allow, Logger: log}
	lc.WriteZones = cfg.LabDNS.WriteZones // TSIG-signed updates: lab_dns.update_keys
	for _, k := range cfg.LabDNS.UpdateKeys {
		secret, err := config.ReadTSIGSecret(k.KeyFile)
		if err != nil {
			return fmt.Errorf("lab_dns.update_keys: %s: %w", k.Name, err)
		}
		lc.UpdateKeys = append(lc.UpdateKeys, labdns.UpdateKey{Name: k.Name, Algorithm: k.Algorithm, Secret: secret, Zones: k.Zones})
	}
	for _, f := range files {
		// FILE or ORIGIN=FILE, for files without $ORIGIN and an unusual name.
		zf := labdns.ZoneFile{Path: f}
		if origin, path, ok := strings.Cut(f, "="); ok {
			zf = labdns.ZoneFile{Path: path, Origin: origin}
		}
		lc.Zones = append(lc.Zones, zf)
	}
	if lc.Signer, err = labSigner(cfg); err != nil { // lab_dns.dnssec (labdns_dnssec.go)
		return err
	}
	srv, err := labdns.New(lc)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mailwall: lab DNS listening on %s (udp+tcp), %d zone file(s); SIGHUP reloads\n", srv.Addr(), len(files))
	if ds := srv.TrustAnchor(); ds != nil {
		fmt.Fprintf(stdout, "mailwall: zones signed under a lab root; its trust anchor (dns.trust_anchors): %s\n", ds)
	}
	waitForStop(ctx, nil, nil, func() {
		if err := srv.Reload(); err != nil {
			log.Error("reload failed; the zones in service are kept", "err", err)
		}
	})
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
