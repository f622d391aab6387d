package lab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/labdns"
	"mailwall/internal/policyd"
	"mailwall/internal/receiver"
	"mailwall/internal/sendtest"
	"mailwall/internal/verdict"
)

// Options are what Start needs besides the lab file.
type Options struct {
	Dir string // where keys, zones and the Maildir go
	// Pipeline builds the MX's receive pipeline on the lab's resolver.
	Pipeline func(dnsx.Resolver) (*verdict.Checker, error)
	Logger   *slog.Logger
	// Blocklists are the thresholds, action and reply of the lab file's
	// lists (its Sites are the file's); the MX asks them at RCPT through
	// the policy server's code, as serve does.
	Blocklists policyd.Blocklists
}

// Lab is a running lab: DNS and the MX.
type Lab struct {
	File     *File
	Dir      string
	DNS      *labdns.Server
	MX       *receiver.Server
	Resolver dnsx.Resolver

	signers map[string]*dkim.Signer // by domain

	mu   sync.Mutex
	last *receiver.Delivery
}

// Start builds the lab under opts.Dir and starts its DNS server and MX.
func Start(f *File, opts Options) (*Lab, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dns, signers, err := f.StartDNS(opts.Dir, opts.Logger)
	if err != nil {
		return nil, err
	}
	l := &Lab{File: f, Dir: opts.Dir, DNS: dns, signers: signers}
	if err := ownMaildir(filepath.Join(opts.Dir, "Maildir")); err != nil {
		l.Close()
		return nil, err
	}
	// The MX asks the lab DNS server and nothing else.
	client, err := resolverClient(dns, opts.Dir) // validating when the lab is signed (dnssec.go)
	if err != nil {
		l.Close()
		return nil, err
	}
	l.Resolver = dnsx.NewCache(client, dnsx.CacheOptions{})
	pipe, err := opts.Pipeline(l.Resolver)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("lab: pipeline: %w", err)
	}
	checkRcpt, err := rcptCheck(f, opts, l.Resolver)
	if err != nil {
		l.Close()
		return nil, err
	}
	l.MX, err = receiver.Listen(receiver.Config{
		Addr:      net.JoinHostPort(f.MX.IP, strconv.Itoa(f.MX.Port)),
		Hostname:  f.MX.Name,
		Maildir:   filepath.Join(opts.Dir, "Maildir"),
		Domains:   []string{f.MX.Domain},
		Pipeline:  pipe,
		Logger:    opts.Logger,
		CheckRcpt: checkRcpt,
		OnDelivery: func(d receiver.Delivery) {
			l.mu.Lock()
			l.last = &d
			l.mu.Unlock()
		},
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("lab: mx: %w", err)
	}
	go l.MX.Serve()
	return l, nil
}

// rcptCheck is what the MX does at RCPT, as serve does: the lab's lists
// asked about the client with the policy server's decision, then
// greylisting (SPF is left to the MX's pipeline). nil when the lab has
// neither.
func rcptCheck(f *File, opts Options, res dnsx.Resolver) (func(verdict.Envelope, string) *receiver.Refusal, error) {
	var bl *policyd.RcptBlocklists
	if len(f.Blocklists) > 0 {
		b := opts.Blocklists
		b.Sites = f.Sites()
		bl = policyd.NewRcptBlocklists(&b, res, opts.Logger)
	}
	var grey *greylist.Greylister
	if g := f.Greylist; g != nil {
		var err error
		// The client's name is verified through lab DNS, as
		// greylist.client_name: dns does (no Postfix to say it).
		grey, err = greylist.New(greylist.Config{Mode: g.Mode, Delay: g.Delay, VerifyNames: true, Resolver: res}, greylist.NewMemStore())
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	if bl == nil && grey == nil {
		return nil, nil
	}
	return func(env verdict.Envelope, rcpt string) *receiver.Refusal {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var v policyd.RcptBlocklistVerdict
		if bl != nil {
			v = bl.Check(ctx, env.ClientIP, env.QueueID)
		}
		if v.Reply != "" {
			return refusal(v.Reply)
		}
		if grey == nil || v.Allowlisted {
			return nil
		}
		d := grey.Check(ctx, greylist.Request{IP: env.ClientIP, Sender: env.MailFrom, Recipient: rcpt, Listed: v.GreyReason})
		policyd.LogGreylist(opts.Logger, env.QueueID, env.ClientIP.String(), "", env.MailFrom, rcpt, d)
		if d.Outcome != greylist.Deferred {
			return nil
		}
		return refusal("450 " + d.Text)
	}, nil
}

// refusal turns a reply ("554 5.7.1 text", "450 4.7.1 text") into the
// MX's refusal; a reply without a code of its own is a 450 4.7.1.
func refusal(reply string) *receiver.Refusal {
	r := &receiver.Refusal{Code: 450, Enhanced: [3]int{4, 7, 1}}
	text := reply
	code, rest, _ := strings.Cut(text, " ")
	if n, err := strconv.Atoi(code); err == nil && n >= 400 && n < 600 {
		r.Code, text = n, rest
		r.Enhanced = [3]int{n / 100, 0, 0}
	}
	if enh, rest, ok := strings.Cut(text, " "); ok {
		var e [3]int
		if _, err := fmt.Sscanf(enh, "%d.%d.%d", &e[0], &e[1], &e[2]); err == nil && e[0] == r.Code/100 {
			r.Enhanced, text = e, rest
		}
	}
	r.Message = text
	return r
}

// StartDNS builds the lab's zones and keys under dir and serves the zones
// on f.DNS; it returns the server and, by domain, the signers.
func (f *File) StartDNS(dir string, logger *slog.Logger) (*labdns.Server, map[string]*dkim.Signer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	files, signers, err := f.Build(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	cfg := labdns.Config{Listen: f.DNS, Logger: logger}
	if cfg.Signer, err = f.signer(); err != nil { // dnssec.go
		return nil, nil, err
	}
	for _, p := range files {
		cfg.Zones = append(cfg.Zones, labdns.ZoneFile{Path: p})
	}
	dns, err := labdns.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	if err := dns.Start(); err != nil {
		return nil, nil, fmt.Errorf("lab: dns: %w", err)
	}
	return dns, signers, nil
}

// Close stops the MX and the DNS server.
func (l *Lab) Close() {
	if l.MX != nil {
		l.MX.Close()
	}
	l.DNS.Shutdown(context.Background())
}

// Row is one line of the lab table.
type Row struct {
	Host     string   `json:"host"`
	IP       string   `json:"ip"`
	MailFrom string   `json:"mail_from"` // also the From address
	SPF      string   `json:"spf"`
	DKIM     string   `json:"dkim"`
	DMARC    string   `json:"dmarc"`
	Action   string   `json:"action"`
	Score    int      `json:"score"`
	Rules    []string `json:"rules,omitempty"` // phishing rules that fired
	Reply    string   `json:"reply"`           // the SMTP reply to the message
	// Retry marks the second attempt of a message the MX greylisted,
	// sent once the delay was over.
	Retry   bool     `json:"retry,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// Run sends every case from its host, signed when the host signs for the
// claimed domain, and returns what the MX concluded about each.
func (l *Lab) Run(ctx context.Context) ([]Row, error) {
	var rows []Row
	for _, c := range l.File.Cases() {
		row, err := l.send(ctx, c)
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
		if g := l.File.Greylist; g == nil || !strings.HasPrefix(row.Reply, "450 ") {
			continue
		}
		// Greylisted (or deferred): retry as a real server would, once
		// the delay is over.
		t := time.NewTimer(l.File.Greylist.Delay + 200*time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return rows, ctx.Err()
		case <-t.C:
		}
		row, err = l.send(ctx, c)
		if err != nil {
			return rows, err
		}
		row.Retry = true
		rows = append(rows, row)
	}
	return rows, nil
}

func (l *Lab) send(ctx context.Context, c Case) (Row, error) {
	d, h, _ := l.File.Host(c.Host)
	claimed := c.From[strings.LastIndexByte(c.From, '@')+1:]
	m := sendtest.Message{From: c.From, To: "postmaster@" + l.File.MX.Domain, Subject: fmt.Sprintf("lab: %s as %s", c.Host, claimed)}
	// A host signs only for its own domain: it holds no other key.
	if s := l.signers[d.Name]; h.Sign && strings.EqualFold(claimed, d.Name) {
		m.Domain, m.Selector, m.Key = s.Domain, s.Selector, s.Key
	}
	msg, err := sendtest.Build(m)
	if err != nil {
		return Row{}, err
	}
	l.mu.Lock()
	l.last = nil
	l.mu.Unlock()
	res, err := sendtest.Send(ctx, sendtest.Options{Server: l.MX.Addr(), SourceIP: netip.MustParseAddr(h.IP), Helo: c.Host, NoTLS: true, Timeout: 30 * time.Second}, c.From, m.To, msg)
	if err != nil {
		return Row{}, fmt.Errorf("lab: %s: %w", c.Host, err)
	}
	row := Row{Host: c.Host, IP: h.IP, MailFrom: c.From, Action: "refused", Reply: fmt.Sprintf("%d %s", res.Code, firstLine(res.Reply))}
	if res.Code >= 400 && res.Code < 500 {
		row.Action = "deferred" // greylisted, or a blocklist's defer: a real server retries
	}
	l.mu.Lock()
	last := l.last
	l.mu.Unlock()
	if last != nil {
		r := last.Result
		row.SPF, row.DMARC, row.Action, row.Reasons = string(r.SPF.Result), r.DMARC.Result, string(r.Action), r.Reasons
		row.Score, row.Rules = r.Score(), r.Rules()
		row.DKIM = "none"
		for _, s := range r.DKIM {
			row.DKIM = string(s.Status)
			if s.Status == dkim.Pass {
				break
			}
		}
	}
	return row, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// WriteTable prints rows as an aligned table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tIP\tFROM\tSPF\tDKIM\tDMARC\tSCORE\tACTION\tREPLY")
	for _, r := range rows {
		host := r.Host
		if r.Retry {
			host += " (retry)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", host, r.IP, r.MailFrom, dash(r.SPF), dash(r.DKIM), dash(r.DMARC), r.Score, r.Action, r.Reply)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
