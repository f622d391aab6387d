package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/domaincheck"
)

// errFindings makes a command exit 1 after printing its report.
type errFindings int

func (e errFindings) Error() string { return fmt.Sprintf("%d checks failed", int(e)) }

func cmdDomain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: mailwall domain check DOMAIN [--dns HOST:PORT] [--selector S ...] [--ns-port N] [--json]")
		return errUsage
	}
	args = args[1:]
	fs := newFlags("domain check", stderr)
	dnsFlag := fs.String("dns", "", "DNS server(s) HOST:PORT, comma separated (default: the config's, else /etc/resolv.conf)")
	cfgPath := fs.String("config", "", configFlagHelp)
	var selectors []string
	fs.Func("selector", "DKIM selector to check (repeat, or comma separated); common ones are tried too", func(s string) error {
		selectors = append(selectors, strings.Split(s, ",")...)
		return nil
	})
	nsPort := fs.Int("ns-port", 53, "port to ask each authoritative name server on (a lab's lab-dns port)")
	timeout := fs.Duration("timeout", 3*time.Second, "bound on each query to an authoritative server")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: mailwall domain check DOMAIN [--dns HOST:PORT] [--selector S ...] [--ns-port N] [--json]")
		return errUsage
	}
	domain := pos[0]
	cfg, err := loadConfig(*cfgPath, *dnsFlag)
	if err != nil {
		return err
	}
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	// A cache for this run only: the sections ask for the same records
	// (SPF, DMARC, MX) more than once, every run sees the latest answers,
	// and cached answers keep their published TTLs.
	res := dnsx.NewCache(client, dnsx.CacheOptions{})
	c := &domaincheck.Checker{Resolver: res, Selectors: selectors, NSPort: *nsPort, Timeout: *timeout}
	rep := c.Check(ctx, domain)
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printDomainReport(stdout, rep, client.Servers)
	}
	if n := rep.Count(domaincheck.Fail); n > 0 {
		return errFindings(n)
	}
	return nil
}

// printDomainReport writes the report section by section, each finding on
// a line with its status, the fix indented below it.
func printDomainReport(w io.Writer, rep *domaincheck.Report, servers []string) {
	fmt.Fprintf(w, "%s (DNS %s)\n", rep.Domain, strings.Join(servers, ", "))
	section := ""
	for _, f := range rep.Findings {
		if f.Section != section {
			section = f.Section
			fmt.Fprintf(w, "\n%s\n", strings.ToUpper(section))
		}
		text := f.Message
		if f.Subject != "" {
			text = f.Subject + ": " + text
		}
		fmt.Fprintf(w, "  %-4s  %s\n", f.Status, text)
		if f.Fix != "" {
			fmt.Fprintf(w, "        fix: %s\n", f.Fix)
		}
	}
	fmt.Fprintf(w, "\n%d pass, %d warn, %d fail\n", rep.Count(domaincheck.Pass), rep.Count(domaincheck.Warn), rep.Count(domaincheck.Fail))
}
