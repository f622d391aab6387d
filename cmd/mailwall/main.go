// Command mailwall is the mail-authentication stack beside Postfix: a
// milter (SPF, DKIM, DMARC, ARC, a phishing score, signing), an SPF policy
// server, DMARC reports and a dashboard, with the lab DNS server and tools
// that make it testable on one machine. Run "mailwall help" for the
// subcommands, "mailwall CMD -h" for one of them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"mailwall/internal/config"
	"mailwall/internal/dnsx"
	"mailwall/internal/lists"
	"mailwall/internal/store"
	"mailwall/internal/version"
)

const usage = `mailwall: the mail-authentication stack beside Postfix in one program:
a milter (SPF, DKIM, DMARC, ARC, a phishing score, DKIM signing), an SPF
policy server, DMARC reports, a dashboard, and a mail lab on loopback.
"mailwall CMD -h" prints one command's help.

Usage:
  mailwall serve [--config FILE] [--dns HOST:PORT]
        run the milter, the SPF policy server, reports and the dashboard
        (--config default: /etc/mailwall/mailwall.yaml if it exists, else the embedded defaults)
  mailwall spf --ip IP --helo NAME --sender ADDR [--dns HOST:PORT] [--json]
        check SPF and print the Received-SPF header
  mailwall spf lint DOMAIN [--dns HOST:PORT] [--json]
        list what is wrong with a domain's SPF record
  mailwall lab-dns [--listen 127.0.0.1:5353] [--axfr-allow CIDR] ZONEFILE...
        serve zone files authoritatively on loopback (SIGHUP reloads)
  mailwall ddns [--config FILE] [--address IP] [--dry-run] [--json]
        publish this server's current address: A/AAAA and the SPF ip4:/ip6: term, by TSIG-signed
        dynamic update, then check every name server of the zone shows it
  mailwall config default|check [FILE]
        print the embedded defaults, or check a config file (default /etc/mailwall/mailwall.yaml)
        as serve would: its syntax, the files it names (keys, brands, tables), listen addresses
  mailwall check-message --ip IP --helo NAME --sender ADDR [--rcpt ADDR] [--auth USER] [--dns HOST:PORT] [--json] < message
        run the receive pipeline offline and print the headers it would add
  mailwall learn spam|ham [--rcpt ADDR] < message | learn --maildir DIR --as spam|ham | learn --import FILE | unlearn spam|ham < message
        teach the store's classifier model (checks.classifier.source: store); a running serve reads it at its next refresh
  mailwall reputation show [IDENTITY] [--kind K] [-n N]
        the ham and spam history of authenticated identities (checks.reputation), or of one
  mailwall train --labels FILE [--split S] [--classes phish,spam,ham] -o OUT DIR
        learn a classifier model from labelled messages (make model writes the starter model so)
  mailwall eval --labels FILE [--split S] [--model FILE | --train-labels FILE [--train-split S]] DIR
        the content analyzers over labelled messages: confusion matrix, detection at the thresholds and at 1% and 0.1% of ham flagged, the rules and features that decided
  mailwall import [--policyd-spf FILE] [--opendkim FILE] [--opendmarc FILE] [--main-cf FILE] [--out FILE|-] [--force]
        read policyd-spf, OpenDKIM, OpenDMARC and Postfix settings (Debian's paths by default),
        write a mailwall config that behaves the same and print what each setting became
  mailwall postfix-config [--config FILE] [--postfix-dir DIR] [--replace MILTER,...] [--apply] [--no-reload]
        print (or make, with a backup and postfix check) the main.cf and master.cf
        changes that put mailwall in place of OpenDKIM, OpenDMARC and policyd-spf
  mailwall dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--bits N] --out DIR
        make a signing key (S.private, mode 0600) and its DNS record (S.txt)
  mailwall dkim sign --domain D --selector S --key FILE < message
        print the message with a DKIM-Signature added
  mailwall dkim verify [--dns HOST:PORT] [--json] < message
        check every DKIM signature of a message
  mailwall domain check DOMAIN [--dns HOST:PORT] [--selector S ...] [--ns-port N] [--json]
                        [--sending DOMAIN [--ip IP] [--helo NAME] [--message FILE]]
        check a domain's SPF, DKIM, DMARC, MX and name servers as receivers see them;
        --sending adds what Gmail, Yahoo and Outlook.com require of senders, each with
        its fix (support.google.com/a/answer/81126, senders.yahooinc.com/best-practices,
        sendersupport.olc.protection.outlook.com/pm), and what cannot be seen from here
  mailwall send-test --from ADDR --to ADDR --server HOST:PORT [--source-ip IP] [--helo NAME]
                     [--sign-domain D --selector S --key FILE] [--subject S] [--tls-insecure] [--bulk] [--print]
        send a well-formed (and signed) test message and print the SMTP dialogue
  mailwall lab [run] LABFILE [--dir DIR]
        a mail lab on loopback from a lab file: keys, zones, lab DNS, a receiving MX;
        "run" sends every host's test messages and prints what the MX concluded
  mailwall dns query NAME [TYPE] | mailwall dns flush [NAME]
        ask the running daemon what its DNS cache holds (remaining TTLs), or drop it
  mailwall report list [--received] [--domain D] [--json] | show ID [--json] | send-now | import [--all] [--trusted] MAILDIR|FILE...
        DMARC aggregate reports: those made here (or received), one report's XML,
        make and send what is due now, read received reports from a Maildir, messages or files
  mailwall web password-hash < password | reset-password [--config FILE]
        print the bcrypt hash for web.password_hash, or make a new dashboard password
  mailwall web postsuper -H|-d QUEUEID [--socket PATH] | queue-helper [--postfix-config DIR]
        release or delete a held message for the dashboard, through mailwall-queue.socket's root helper
  mailwall allow add|remove|list [--ip CIDR | --sender ADDR | --domain D | --rcpt ADDR] [--note TEXT] [--expires DURATION] [--json]
        the site's allow list in the store (a sender or domain entry applies only when authenticated);
        import --postfix-access FILE [--table client|sender|recipient] | --policyd-spf FILE adds a table's OK lines
  mailwall block add|remove|list|import ...
        the site's block list, as allow (import adds an access table's REJECT lines)
  mailwall version | --version
        print the version, the commit it was built from and the Go version
`

// errUsage makes main exit with status 2.
var errUsage = errors.New("usage error")

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if wantsHelp(ctx, args) {
		return printHelp(ctx, args, stdout)
	}
	if args[0] == "help" && len(args) > 1 {
		return printHelp(ctx, args[1:], stdout)
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "spf":
		if len(args) > 1 && args[1] == "lint" {
			err = cmdSPFLint(ctx, args[2:], stdout, stderr)
		} else {
			err = cmdSPF(ctx, args[1:], stdout, stderr)
		}
	case "lab-dns":
		err = cmdLabDNS(ctx, args[1:], stdout, stderr)
	case "ddns":
		err = cmdDDNS(ctx, args[1:], stdout, stderr)
	case "config":
		err = cmdConfig(args[1:], stdout, stderr)
	case "dkim":
		err = cmdDKIM(ctx, args[1:], stdin, stdout, stderr)
	case "import":
		err = cmdImport(args[1:], stdout, stderr)
	case "postfix-config":
		err = cmdPostfixConfig(args[1:], stdout, stderr)
	case "check-message":
		err = cmdCheckMessage(ctx, args[1:], stdin, stdout, stderr)
	case "learn", "unlearn":
		err = cmdLearn(ctx, args[1:], args[0] == "unlearn", stdin, stdout, stderr)
	case "reputation":
		err = cmdReputation(ctx, args[1:], stdout, stderr)
	case "train":
		err = cmdTrain(ctx, args[1:], stdout, stderr)
	case "eval":
		err = cmdEval(ctx, args[1:], stdout, stderr)
	case "domain":
		err = cmdDomain(ctx, args[1:], stdout, stderr)
	case "send-test":
		err = cmdSendTest(ctx, args[1:], stdout, stderr)
	case "lab":
		err = cmdLab(ctx, args[1:], stdout, stderr)
	case "dns":
		err = cmdDNS(args[1:], stdout, stderr)
	case "report":
		err = cmdReport(ctx, args[1:], stdout, stderr)
	case "web":
		err = cmdWeb(ctx, args[1:], stdin, stdout, stderr)
	case "allow":
		err = cmdLists(ctx, lists.Allow, args[1:], stdout, stderr)
	case "block":
		err = cmdLists(ctx, lists.Block, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.Get())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mailwall: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintf(stderr, "mailwall: %v\n", err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "mailwall: %v\n", err)
		return 1
	}
}

// newFlags makes a flag set that reports errors through run's exit code.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mailwall "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseArgs parses flags that may follow positional arguments, as in
// "spf lint example.test --dns ...", and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return append(pos, fs.Args()...), nil
}

// parseFlags parses and maps flag errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// loadConfig reads the config file (or the defaults) and applies --dns.
// Without a path, /etc/mailwall/mailwall.yaml when it exists.
func loadConfig(path, dnsFlag string) (*config.Config, error) {
	cfg, err := config.Load(configPath(path, defaultConfigFile))
	if err != nil {
		return nil, err
	}
	if dnsFlag != "" {
		cfg.DNS.Servers = strings.Split(dnsFlag, ",")
	}
	return cfg, nil
}

// openStore reads the config at path (the default one when "") and
// opens its store: what the commands that read or teach the store start
// with. The caller closes the store.
func openStore(ctx context.Context, path string) (*config.Config, *store.Store, error) {
	cfg, err := loadConfig(path, "")
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN)
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
}

// loadResolver reads the config, applies --dns, and builds the caching
// resolver: what every command that checks mail starts with. wrap, if
// given, wraps the upstream client under the cache (serve's metrics).
func loadResolver(path, dnsFlag string, wrap ...func(dnsx.Resolver) dnsx.Resolver) (*config.Config, *dnsx.Cache, error) {
	cfg, err := loadConfig(path, dnsFlag)
	if err != nil {
		return nil, nil, err
	}
	res, err := newResolver(cfg, wrap...)
	if err != nil {
		return nil, nil, err
	}
	return cfg, res, nil
}

// newClient builds the upstream DNS client from the config.
func newClient(cfg *config.Config) (*dnsx.Client, error) {
	client, err := dnsx.NewClient(append([]string(nil), cfg.DNS.Servers...))
	if err != nil {
		return nil, err
	}
	client.Timeout = cfg.DNS.Timeout.D()
	client.Attempts = cfg.DNS.Attempts
	if client.Validator, err = cfg.DNS.Validator(); err != nil { // dns.dnssec
		return nil, err
	}
	return client, nil
}

// newResolver builds the caching resolver from the config.
func newResolver(cfg *config.Config, wrap ...func(dnsx.Resolver) dnsx.Resolver) (*dnsx.Cache, error) {
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	var upstream dnsx.Resolver = client
	for _, w := range wrap {
		upstream = w(upstream)
	}
	return dnsx.NewCache(upstream, dnsx.CacheOptions{
		MaxEntries:  cfg.DNS.CacheSize,
		MaxTTL:      cfg.DNS.MaxTTL.D(),
		MaxNegative: cfg.DNS.MaxNegativeTTL.D(),
	}), nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(newTextLog(w, opts)) // slog's TextHandler, and the milter's line fast (logline.go)
}

// writeJSON prints v indented, for --json output.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stopSignals starts catching SIGINT, SIGTERM and SIGHUP, early in a
// daemon's start: a SIGHUP sent while it is still opening its store or
// listeners must not kill it (the default action), but wait to be acted
// on by waitForStop.
func stopSignals() chan os.Signal {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return sigs
}

// waitForStop blocks until SIGINT or SIGTERM on sigs (from stopSignals;
// nil: start catching now), ctx's end, or an error on errc (nil errc:
// none), calling onHUP for each SIGHUP in between.
func waitForStop(ctx context.Context, sigs chan os.Signal, errc <-chan error, onHUP func()) error {
	if sigs == nil {
		sigs = stopSignals()
	}
	defer signal.Stop(sigs)
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				onHUP()
				continue
			}
			return nil
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}
