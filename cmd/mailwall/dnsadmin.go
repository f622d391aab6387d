package main

import (
	"fmt"
	"io"
	"strings"

	"mailwall/internal/admin"
)

const dnsUsage = `usage: mailwall dns query NAME [TYPE] [--socket PATH] [--json]
       mailwall dns flush [NAME] [--socket PATH]`

// cmdDNS asks the running daemon, through its admin socket, what its DNS
// cache holds, or makes it forget.
func cmdDNS(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "query" && args[0] != "flush") {
		fmt.Fprintln(stderr, dnsUsage)
		return errUsage
	}
	sub := args[0]
	fs := newFlags("dns "+sub, stderr)
	socket := fs.String("socket", "", "the daemon's admin socket (default: admin.socket of the config)")
	cfgPath := fs.String("config", "", configFlagHelp)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if (sub == "query" && (len(pos) < 1 || len(pos) > 2)) || (sub == "flush" && len(pos) > 1) {
		fmt.Fprintln(stderr, dnsUsage)
		return errUsage
	}
	if *socket == "" {
		cfg, err := loadConfig(*cfgPath, "")
		if err != nil {
			return err
		}
		*socket = cfg.Admin.Socket
	}
	if *socket == "" {
		return fmt.Errorf("no admin socket: set admin.socket or give --socket")
	}
	c := admin.NewClient(*socket)
	if sub == "flush" {
		name := ""
		if len(pos) == 1 {
			name = pos[0]
		}
		r, err := c.Flush(name)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, r)
		}
		if r.Name == "" {
			fmt.Fprintf(stdout, "flushed the whole cache (%d entries)\n", r.Entries)
		} else {
			fmt.Fprintf(stdout, "flushed %s (%d entries)\n", r.Name, r.Entries)
		}
		return nil
	}
	typ := "A"
	if len(pos) == 2 {
		typ = pos[1]
	}
	a, err := c.Query(pos[0], typ)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, a)
	}
	if a.Error != "" {
		return fmt.Errorf("%s %s: %s", a.Name, a.Type, a.Error)
	}
	state := fmt.Sprintf("not cached before; fetched now, kept for %ds", a.TTL)
	if a.Cached {
		state = fmt.Sprintf("from the cache, %ds left", a.TTL)
	}
	fmt.Fprintf(stdout, "%s %s: %s (%s)\n", a.Name, a.Type, strings.ToLower(a.Rcode), state)
	if a.DNSSEC != "" {
		// dns.dnssec validates: say what it found (a bogus answer is the
		// error above, naming the failing link).
		line := "  DNSSEC: " + a.DNSSEC
		if a.DNSSECReason != "" {
			line += " (" + a.DNSSECReason + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	if len(a.Records) == 0 {
		fmt.Fprintln(stdout, "  no records")
	}
	for _, r := range a.Records {
		fmt.Fprintln(stdout, "  "+r)
	}
	return nil
}
