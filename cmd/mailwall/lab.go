package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"mailwall/internal/config"
	"mailwall/internal/dnsx"
	"mailwall/internal/lab"
	"mailwall/internal/verdict"
)

const labUsage = `usage: mailwall lab [run] LABFILE [--dir DIR] [--dns HOST:PORT] [--mx-port N] [--config FILE] [--json]
  mailwall lab LABFILE       build the lab and keep it running (Ctrl-C stops it)
  mailwall lab run LABFILE   build it, send every test message, print the table, stop`

func cmdLab(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	runMatrix := len(args) > 0 && args[0] == "run"
	if runMatrix {
		args = args[1:]
	}
	fs := newFlags("lab", stderr)
	dir := fs.String("dir", "mailwall-lab", "directory for the keys, zone files and the MX's Maildir")
	dnsListen := fs.String("dns", "", "lab DNS address, instead of the lab file's")
	mxPort := fs.Int("mx-port", -1, "MX port, instead of the lab file's (0: a free one)")
	cfgPath := fs.String("config", "", "mailwall config for the MX's checks (default: embedded)")
	asJSON := fs.Bool("json", false, "print the table as JSON (lab run)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, labUsage)
		return errUsage
	}
	f, err := lab.Load(pos[0])
	if err != nil {
		return err
	}
	if *dnsListen != "" {
		f.DNS = *dnsListen
	}
	if *mxPort >= 0 {
		f.MX.Port = *mxPort
	}
	cfg, err := config.Load(*cfgPath) // a lab never reads the host's /etc config
	if err != nil {
		return err
	}
	cfg.Hostname = f.MX.Name
	logger := newLogger(cfg, stderr)
	l, err := lab.Start(f, lab.Options{Dir: *dir, Logger: logger, Blocklists: blocklistPolicy(cfg),
		Pipeline: func(res dnsx.Resolver) (*verdict.Checker, error) { return newPipeline(cfg, res) }})
	if err != nil {
		return err
	}
	defer l.Close()
	if runMatrix {
		rows, err := l.Run(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, rows)
		}
		return lab.WriteTable(stdout, rows)
	}
	fmt.Fprintf(stdout, "lab running: DNS %s, MX %s (%s), files in %s\n", l.DNS.Addr(), l.MX.Addr(), f.MX.Name, *dir)
	for _, d := range f.Domains {
		for _, h := range d.Hosts {
			sign := ""
			if h.Sign {
				sign = fmt.Sprintf(" --selector %s --key %s/keys/%s/%s.private", d.DKIM[0].Selector, *dir, d.Name, d.DKIM[0].Selector)
			}
			fmt.Fprintf(stdout, "  mailwall send-test --server %s --source-ip %s --helo %s --from %s@%s --to postmaster@%s%s\n",
				l.MX.Addr(), h.IP, h.FQDN(d), d.Sender, d.Name, f.MX.Domain, sign)
		}
	}
	_, dnsPort, _ := net.SplitHostPort(l.DNS.Addr())
	fmt.Fprintf(stdout, "  mailwall domain check %s --dns %s --ns-port %s\n", f.Domains[0].Name, l.DNS.Addr(), dnsPort)
	return waitForStop(ctx, nil, nil, func() {
		if err := l.DNS.Reload(); err != nil {
			logger.Error("lab-dns reload", "err", err)
		}
	})
}
