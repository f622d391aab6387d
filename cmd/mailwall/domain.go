package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
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
		fmt.Fprintln(stderr, domainUsage)
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
	sending := fs.String("sending", "", "DOMAIN: add what Gmail, Yahoo and Outlook.com require of senders (SPF, DKIM, DMARC and alignment, reverse DNS, format, unsubscribe), and what cannot be seen from here")
	sendIP := fs.String("ip", "", "with --sending: the address mail leaves from (SPF, reverse DNS)")
	sendHelo := fs.String("helo", "", "with --sending: the name the sending host greets with (smtp_helo_name or myhostname)")
	mailFrom := fs.String("mail-from", "", "with --sending: the envelope sender's domain (default: DOMAIN)")
	sample := fs.String("message", "", "with --sending: a message as sent (file, - for stdin), to check its format, signature and unsubscribe fields")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *sending != "" && len(pos) == 0 {
		pos = []string{*sending}
	}
	if len(pos) != 1 || *sending != "" && !strings.EqualFold(pos[0], *sending) || *sending == "" && (*sendIP != "" || *sendHelo != "" || *mailFrom != "" || *sample != "") {
		fmt.Fprintln(stderr, domainUsage)
		return errUsage
	}
	domain := pos[0]
	var send domaincheck.Sending
	if *sending != "" {
		if send, err = sendingFlags(*sendIP, *sendHelo, *mailFrom, *sample); err != nil {
			return err
		}
	}
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
	if *sending != "" {
		c.CheckSending(ctx, rep, domain, send)
	}
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

// domainUsage is domain check's usage line.
const domainUsage = "usage: mailwall domain check DOMAIN [--dns HOST:PORT] [--selector S ...] [--ns-port N] [--json]\n" +
	"       mailwall domain check --sending DOMAIN [--ip IP] [--helo NAME] [--mail-from DOMAIN] [--message FILE] [...]"

// sendingFlags reads --sending's companions.
func sendingFlags(ip, helo, mailFrom, sample string) (domaincheck.Sending, error) {
	s := domaincheck.Sending{Helo: helo, MailFrom: mailFrom}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return s, fmt.Errorf("--ip: %w", err)
		}
		s.IP = a
	}
	if sample != "" {
		var r io.Reader = os.Stdin
		if sample != "-" {
			f, err := os.Open(sample)
			if err != nil {
				return s, fmt.Errorf("--message: %w", err)
			}
			defer f.Close()
			r = f
		}
		b, err := io.ReadAll(io.LimitReader(r, domaincheck.MaxSampleMessage+1))
		if err != nil {
			return s, fmt.Errorf("--message: %w", err)
		}
		s.Message = b
	}
	return s, nil
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
