package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/debuglog"
	"mailwall/internal/dnsx"

	"mailwall/internal/spf"
)

// newChecker builds an SPF checker from the config; it also returns the
// bound on one evaluation.
func newChecker(cfgPath, dnsFlag string) (*spf.Checker, time.Duration, error) {
	cfg, res, err := loadResolver(cfgPath, dnsFlag)
	if err != nil {
		return nil, 0, err
	}
	return checkerFor(cfg, res), cfg.SPF.Timeout.D(), nil
}

func checkerFor(cfg *config.Config, r dnsx.Resolver) *spf.Checker {
	r = debuglog.Wrap(r) // a debug peer's log shows each DNS answer
	return &spf.Checker{Resolver: r, MaxLookups: cfg.SPF.MaxLookups, MaxVoidLookups: cfg.SPF.MaxVoidLookups, Receiver: cfg.ReceiverName(), Timeout: cfg.SPF.Timeout.D()}
}

func cmdSPF(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("spf", stderr)
	ipFlag := fs.String("ip", "", "client IP address")
	helo := fs.String("helo", "", "HELO/EHLO name")
	sender := fs.String("sender", "", "MAIL FROM address (empty: a bounce, checked as postmaster@HELO)")
	dnsFlag := fs.String("dns", "", "DNS server(s) HOST:PORT, comma separated")
	cfgPath := fs.String("config", "", configFlagHelp)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*ipFlag)
	if err != nil || fs.NArg() != 0 || (*helo == "" && *sender == "") {
		fmt.Fprintln(stderr, "usage: mailwall spf --ip IP --helo NAME --sender ADDR [--dns HOST:PORT] [--json]")
		return errUsage
	}
	checker, timeout, err := newChecker(*cfgPath, *dnsFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out spf.Outcome
	if *sender == "" {
		out = checker.CheckHelo(ctx, ip, *helo)
	} else {
		out = checker.CheckMailFrom(ctx, ip, *sender, *helo)
	}
	if *asJSON {
		return writeJSON(stdout, out)
	}
	fmt.Fprintln(stdout, "Received-SPF: "+spf.ReceivedSPF(out, spf.HeaderInfo{ClientIP: ip, Helo: *helo, EnvelopeFrom: *sender}))
	return nil
}

func cmdSPFLint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("spf lint", stderr)
	dnsFlag := fs.String("dns", "", "DNS server(s) HOST:PORT, comma separated")
	cfgPath := fs.String("config", "", configFlagHelp)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mailwall spf lint DOMAIN [--dns HOST:PORT] [--json]")
		return errUsage
	}
	domain := pos[0]
	checker, timeout, err := newChecker(*cfgPath, *dnsFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep := spf.Lint(ctx, checker.Resolver, domain)
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%s: %q\n", rep.Domain, rep.Record)
		fmt.Fprintf(stdout, "DNS lookups: %d of 10, void lookups: %d of 2\n", rep.Lookups, rep.Voids)
		if len(rep.Findings) == 0 {
			fmt.Fprintln(stdout, "no problems found")
		}
		for _, f := range rep.Findings {
			fmt.Fprintln(stdout, f.String())
		}
	}
	// Exit 1 on an error, as domain check does, so scripts can tell.
	n := 0
	for _, f := range rep.Findings {
		if f.Severity == spf.SevError {
			n++
		}
	}
	if n > 0 {
		return errLintErrors(n)
	}
	return nil
}

// errLintErrors makes spf lint exit 1 after printing its report.
type errLintErrors int

func (e errLintErrors) Error() string { return fmt.Sprintf("%d errors in the SPF record", int(e)) }
