package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"mailwall/internal/config"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/report"
	"mailwall/internal/store"
)

// reporting makes, sends and imports DMARC aggregate reports for serve
// and for "mailwall report".
type reporting struct {
	cfg *config.Config
	st  *store.Store
	gen *report.Generator
	snd *report.Sender
	in  *report.Inbound
	log *slog.Logger
}

// newInbound reads received reports as the config says: those about
// reports.inbound.domains, else about the signing domains and the
// domains of the report addresses; believed when our
// Authentication-Results say their message passed DMARC.
func newInbound(cfg *config.Config, st *store.Store) *report.Inbound {
	ic := cfg.Reports.Inbound
	domains := ic.Domains
	if len(domains) == 0 {
		for _, s := range cfg.Checks.Signing {
			domains = append(domains, s.Domain)
		}
		for _, a := range ic.Addresses {
			if at := strings.LastIndexByte(a, '@'); at >= 0 {
				domains = append(domains, a[at+1:])
			}
		}
	}
	id := cfg.Checks.AuthServID
	if id == "" {
		id = cfg.ReceiverName()
	}
	return &report.Inbound{Store: st, Domains: domains, AuthServID: id, PerReporterPerDay: ic.PerReporterPerDay}
}

// printable makes a string from a report (a sender's file name, org
// name, an error quoting them) safe to print on a terminal: one with
// control or format characters (escape sequences, bidi overrides, tabs
// that would shift the table) is printed quoted, Go-escaped.
func printable(s string) string {
	// Invalid UTF-8 is quoted too: a lone 0x9b is CSI to a Latin-1
	// terminal.
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// looksLikeReport says whether a file is a report document (gzip, zip
// or XML) rather than a mail message carrying one.
func looksLikeReport(data []byte) bool {
	return bytes.HasPrefix(data, []byte{0x1f, 0x8b}) || bytes.HasPrefix(data, []byte("PK\x03\x04")) ||
		bytes.HasPrefix(bytes.TrimLeft(data, "\ufeff \t\r\n"), []byte("<"))
}

// reportSender is who reports say they are from: our domain and the
// From address.
func reportSender(cfg *config.Config) (receiver, from string) {
	receiver = cfg.Reports.Receiver
	if receiver == "" {
		receiver = cfg.Hostname
	}
	from = cfg.Reports.From
	if from == "" {
		from = "dmarc-noreply@" + receiver
	}
	return receiver, from
}

// newFailureReporter sends RFC 9991 failure reports for the milter.
func newFailureReporter(cfg *config.Config, res dnsx.Resolver, log *slog.Logger, outcome func(string)) *report.FailureReporter {
	receiver, from := reportSender(cfg)
	fc := cfg.Reports.Failure
	return &report.FailureReporter{DMARC: &dmarc.Evaluator{Resolver: res, PublicSuffixList: cfg.Checks.DMARCPSL}, Relay: cfg.Reports.Relay,
		Hostname: cfg.Hostname, From: from, Receiver: receiver, UserAgent: "mailwall/" + buildVersion(),
		PerDomain: fc.PerDomainPerHour, Total: fc.PerHour, Log: log, Outcome: outcome}
}

func newReporting(cfg *config.Config, st *store.Store, res dnsx.Resolver, log *slog.Logger, outcome func(string)) *reporting {
	rc := cfg.Reports
	receiver, from := reportSender(cfg)
	return &reporting{cfg: cfg, st: st, log: log, in: newInbound(cfg, st),
		gen: &report.Generator{Store: st, Receiver: receiver, OrgName: rc.OrgName, Email: from, Contact: rc.Contact, Version: buildVersion(), Log: log,
			NewPerHour: rc.NewDomainsPerHour, NewPerDay: rc.NewDomainsPerDay},
		snd: &report.Sender{Store: st, DMARC: &dmarc.Evaluator{Resolver: res, PublicSuffixList: cfg.Checks.DMARCPSL}, Relay: rc.Relay,
			Hostname: cfg.Hostname, From: from, Receiver: receiver, MaxAttempts: rc.MaxAttempts, Log: log, Outcome: outcome},
	}
}

// tick does one round: purge old records, import the Maildir, and when
// sending is on make the due reports and send those whose time has come.
func (r *reporting) tick(ctx context.Context) error {
	var errs []error
	rt := r.cfg.Store.Retention
	if p, err := r.st.Purge(ctx, time.Now(), store.Retention{Verdicts: rt.Verdicts.D(), Reports: rt.Reports.D()}); err != nil {
		errs = append(errs, err)
	} else if p != (store.Purged{}) {
		r.log.Info("store: old records purged", "verdicts", p.Verdicts, "dmarc_rows", p.DMARCRows, "reports_out", p.ReportsOut, "reports_in", p.ReportsIn)
	}
	if n, err := r.st.PurgeGreylist(ctx, time.Now(), greylistRetention(r.cfg)); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		r.log.Info("store: old greylist entries purged", "rows", n)
	}
	// Expired list entries stay a week, shown as expired by "list".
	if n, err := r.st.PurgeListEntries(ctx, time.Now().Add(-listExpiredKept)); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		r.log.Info("store: expired allow and block list entries purged", "entries", n)
	}
	if dir := r.cfg.Reports.Inbound.Maildir; dir != "" {
		res, err := r.in.ImportMaildir(ctx, dir, false, time.Now())
		if err != nil {
			errs = append(errs, err)
		}
		if res.Messages > 0 {
			r.log.Info("dmarc reports imported", "maildir", dir, "messages", res.Messages, "reports", res.Reports, "malformed", res.Malformed,
				"unauthenticated", res.Unauthenticated, "refused", res.Refused, "errors", strings.Join(res.Errors, "; "))
		}
	}
	if r.cfg.Reports.Send {
		if _, err := r.gen.Generate(ctx); err != nil {
			errs = append(errs, err)
		}
		if _, err := r.snd.Send(ctx, false); err != nil && !errors.Is(err, report.ErrLocked) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run ticks until ctx ends.
func (r *reporting) run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Reports.Every.D())
	defer t.Stop()
	for {
		if err := r.tick(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("dmarc reports", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("report: list, show, send-now or import: %w", errUsage)
	}
	sub := args[0]
	fs := newFlags("report "+sub, stderr)
	cfgPath := fs.String("config", "", configFlagHelp)
	dnsFlag := fs.String("dns", "", "DNS server(s) HOST:PORT (overrides dns.servers)")
	asJSON := fs.Bool("json", false, "print JSON")
	domain := fs.String("domain", "", "list: only this policy domain")
	received := fs.Bool("received", false, "list: the reports received instead of those made here")
	all := fs.Bool("all", false, "import: read cur/ too, not only new/")
	trusted := fs.Bool("trusted", false, "import: believe bare report FILEs (you vouch for where they came from); messages are believed when our Authentication-Results say they passed DMARC")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	cfg, resolver, err := loadResolver(*cfgPath, *dnsFlag)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN)
	if err != nil {
		return err
	}
	defer st.Close()
	log := newLogger(cfg, stderr)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	switch sub {
	case "list":
		if *received {
			rs, err := st.ReceivedReports(ctx, *domain, 0)
			if err != nil || *asJSON {
				return errors.Join(err, enc.Encode(rs))
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDOMAIN\tFROM\tBEGIN\tMESSAGES\tPOLICY\tAUTH\tERROR")
			for _, r := range rs {
				auth := "pass"
				if !r.Authenticated {
					auth = "unauthenticated: " + r.Auth
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, printable(r.Domain), printable(r.OrgName), r.Begin.Format("2006-01-02 15:04"), r.Messages,
					printable(r.Policy), printable(auth), printable(r.Error))
			}
			return tw.Flush()
		}
		rs, err := st.Reports(ctx, store.ReportFilter{Domain: *domain})
		if err != nil || *asJSON {
			return errors.Join(err, enc.Encode(rs))
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tDOMAIN\tBEGIN (UTC)\tRECORDS\tMESSAGES\tDESTINATIONS")
		for _, r := range rs {
			var ds []string
			for _, d := range r.Deliveries {
				ds = append(ds, fmt.Sprintf("%s %s", strings.TrimPrefix(d.URI, "mailto:"), d.State))
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\n", r.ID, r.PolicyDomain, r.Begin.Format("2006-01-02 15:04"), r.Records, r.Messages, strings.Join(ds, ", "))
		}
		return tw.Flush()
	case "show":
		if len(pos) != 1 {
			return fmt.Errorf("report show ID|REPORT-ID: %w", errUsage)
		}
		id, _ := strconv.ParseInt(pos[0], 10, 64)
		r, err := st.Report(ctx, id, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return enc.Encode(r)
		}
		xml, err := gunzip(r.GZ)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "# %s (%s)\n", r.ReportID, r.Filename)
		for _, d := range r.Deliveries {
			fmt.Fprintf(stdout, "# %s: %s, %d attempts %s\n", d.URI, d.State, d.Attempts, d.LastError)
		}
		_, err = stdout.Write(xml)
		return err
	case "send-now":
		rep := newReporting(cfg, st, resolver, log, nil)
		// Made and sent now whatever reports.send says: the admin asked.
		made, err := rep.gen.Generate(ctx)
		if err != nil {
			return err
		}
		sum, err := rep.snd.Send(ctx, true)
		fmt.Fprintf(stdout, "made %d reports; sent %d, to retry %d, failed %d, dropped %d (recovered after a crash: %d)\n",
			len(made), sum.Sent, sum.Retry, sum.Failed, sum.Dropped, sum.Recovered)
		return err
	case "import":
		if len(pos) == 0 {
			return fmt.Errorf("report import MAILDIR|FILE...: %w", errUsage)
		}
		in := newInbound(cfg, st)
		for _, p := range pos {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				res, err := in.ImportMaildir(ctx, p, *all, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s: %d messages, %d reports (%d malformed, %d unauthenticated), %d refused, %d already stored\n",
					p, res.Messages, res.Reports, res.Malformed, res.Unauthenticated, res.Refused, res.Duplicates)
				for _, e := range res.Errors {
					fmt.Fprintf(stdout, "  %s\n", printable(e))
				}
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var rrs []*store.ReceivedReport
			if looksLikeReport(data) {
				auth := report.Auth{Why: "a file imported by hand"}
				if *trusted {
					auth = report.Auth{Pass: true, Why: "a file imported by hand with --trusted"}
				}
				var rr *store.ReceivedReport
				rr, err = in.Ingest(ctx, "file:"+p, p, data, auth, time.Now())
				if rr != nil && rr.ID != 0 {
					rrs = append(rrs, rr)
				}
			} else {
				rrs, err = in.IngestMessage(ctx, "file:"+p, data, report.MessageAuth(data, in.AuthServID), time.Now())
			}
			for _, rr := range rrs {
				if rr.Error != "" {
					continue // said below
				}
				auth := ""
				if !rr.Authenticated {
					auth = " (unauthenticated: " + rr.Auth + ")"
				}
				fmt.Fprintf(stdout, "%s: %s report %s for %s, %d messages%s\n", p, printable(rr.OrgName), printable(rr.ReportID), printable(rr.Domain), rr.Messages, printable(auth))
			}
			switch {
			case errors.Is(err, store.ErrDuplicate):
				fmt.Fprintf(stdout, "%s: already stored\n", p)
			case errors.Is(err, report.ErrRefused):
				fmt.Fprintf(stdout, "%s: not stored: %s\n", p, printable(err.Error()))
			case err != nil && len(rrs) > 0:
				fmt.Fprintf(stdout, "%s: kept, flagged: %s\n", p, printable(err.Error()))
			case err != nil:
				fmt.Fprintf(stdout, "%s: %s\n", p, printable(err.Error()))
			}
		}
		return nil
	}
	return fmt.Errorf("report %s: %w", sub, errUsage)
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// buildVersion is the module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
