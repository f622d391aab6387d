package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"mailwall/internal/arc"
	"mailwall/internal/config"
	"mailwall/internal/conncheck"
	"mailwall/internal/debuglog"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/lists"
	"mailwall/internal/phish"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// newDKIMVerifier is the DKIM verifier checks.dkim configures.
func newDKIMVerifier(dc config.DKIMConfig, res dnsx.Resolver) *dkim.Verifier {
	return &dkim.Verifier{Resolver: res, AcceptRSASHA1: dc.AcceptRSASHA1, MaxSignatures: dc.MaxSignatures, Budget: dc.VerifyBudget.D()}
}

// newPipeline builds the receive pipeline from the config.
func newPipeline(cfg *config.Config, res dnsx.Resolver) (*verdict.Checker, error) {
	res = debuglog.Wrap(res) // a debug peer's log shows each DNS answer
	cc := cfg.Checks
	pol := verdict.DefaultPolicy()
	pol.HeloRequireFQDN, pol.SubjectTag = cc.HeloRequireFQDN, cc.SubjectTag
	for _, a := range []struct {
		dst *verdict.Action
		v   string
	}{{&pol.HeloInvalid, cc.Actions.HeloInvalid}, {&pol.IPRevFail, cc.Actions.IPRevFail}, {&pol.S25R, cc.Actions.S25R},
		{&pol.SPFFail, cc.Actions.SPFFail}, {&pol.DMARCReject, cc.Actions.DMARCReject}, {&pol.DMARCQuarantine, cc.Actions.DMARCQuarantine},
		{&pol.TempError, cc.Actions.TempError}} {
		act, err := verdict.ParseAction(a.v)
		if err != nil {
			return nil, err
		}
		*a.dst = act
	}
	id := cc.AuthServID
	if id == "" {
		id = cfg.ReceiverName()
	}
	c := &verdict.Checker{
		Resolver: res, AuthServID: id, Policy: pol,
		SPF:   checkerFor(cfg, res),
		DKIM:  newDKIMVerifier(cc.DKIM, res),
		DMARC: &dmarc.Evaluator{Resolver: res, PublicSuffixList: cc.DMARCPSL},
	}
	for _, path := range cc.HeloRegexpTables {
		t, err := conncheck.LoadRegexpTable(path)
		if err != nil {
			return nil, err
		}
		c.HeloTables = append(c.HeloTables, t)
	}
	if cc.S25R {
		allow, err := config.ParsePrefixes(cc.S25RAllowIPs)
		if err != nil {
			return nil, err
		}
		if c.S25R, err = conncheck.NewS25R(nil, cc.S25RAllowNames, allow); err != nil {
			return nil, err
		}
	}
	internal, err := config.ParsePrefixes(cc.InternalHosts)
	if err != nil {
		return nil, err
	}
	c.Internal = internal
	if c.NotChecked, err = config.ParsePrefixes(cc.NotChecked); err != nil {
		return nil, fmt.Errorf("checks.not_checked: %w", err)
	}
	if cc.ARC.Verify || cc.ARC.Seal.Domain != "" {
		// Sealing needs the incoming chain's status for its cv=.
		c.ARC = &arc.Verifier{Resolver: res, Budget: cc.DKIM.VerifyBudget.D()}
	}
	for _, d := range cc.ARC.TrustedSealers {
		c.TrustedSealers = append(c.TrustedSealers, strings.ToLower(strings.TrimSuffix(d, ".")))
	}
	if seal := cc.ARC.Seal; seal.Domain != "" {
		key, err := dkim.LoadPrivateKey(seal.Key)
		if err != nil {
			return nil, fmt.Errorf("checks.arc.seal: %w", err)
		}
		c.Sealer = &arc.Sealer{Domain: seal.Domain, Selector: seal.Selector, Key: key, AuthServID: id}
	}
	if c.Analyzers, err = newAnalyzers(context.Background(), cfg, res); err != nil {
		return nil, err
	}
	c.Policy.ScoreTag, c.Policy.ScoreQuarantine, c.Policy.ScoreReject = cc.Score.Tag, cc.Score.Quarantine, cc.Score.Reject
	c.Policy.ScoreRejectText = cc.Score.RejectText // the sender's text; the rules are logged
	c.Signers = map[string]*dkim.Signer{}
	for _, s := range cc.Signing {
		key, err := dkim.LoadPrivateKey(s.Key)
		if err != nil {
			return nil, err
		}
		c.Signers[strings.ToLower(s.Domain)] = &dkim.Signer{Domain: s.Domain, Selector: s.Selector, Key: key}
	}
	return c, nil
}

// newPhish builds the phishing rules: the built-in brands, the config's
// and the brands file's, and the weights.
func newPhish(pc config.PhishConfig) (*phish.Checker, error) {
	var brands []phish.Brand
	if pc.DefaultBrands {
		brands = phish.DefaultBrands()
	}
	extra := pc.Brands
	if pc.BrandsFile != "" {
		data, err := os.ReadFile(pc.BrandsFile)
		if err != nil {
			return nil, fmt.Errorf("checks.phish.brands_file: %w", err)
		}
		var list []config.BrandConfig
		if err := yaml.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("checks.phish.brands_file: %s: %w", pc.BrandsFile, err)
		}
		extra = append(extra, list...)
	}
	for _, b := range extra {
		brands = append(brands, phish.Brand{Name: b.Name, Domains: b.Domains, Words: b.Words})
	}
	p, err := phish.New(brands, pc.Weights)
	if err != nil {
		return nil, fmt.Errorf("checks.phish: %w", err)
	}
	p.Warmup = pc.FirstSeenWarmup.D()
	return p, nil
}

// checkLists reads the site's allow and block lists from the store serve
// uses, so that check-message gives serve's verdict. An SQLite store
// that does not exist has no lists and is not made; a store that does
// not open (another host's PostgreSQL, a file only mailwall may read) is
// said on stderr and the message is checked without lists.
func checkLists(ctx context.Context, cfg *config.Config, stderr io.Writer) (*lists.Cache, func()) {
	none := func() {}
	if cfg.Store.DSN == "" {
		return nil, none
	}
	if cfg.Store.Driver == "sqlite" {
		if _, err := os.Stat(cfg.Store.DSN); err != nil {
			return nil, none
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN)
	if err != nil {
		fmt.Fprintf(stderr, "mailwall: check-message: the allow and block lists are not applied: %v\n", err)
		return nil, none
	}
	c := lists.NewCache(st, slog.New(slog.DiscardHandler))
	if err := c.Refresh(ctx); err != nil {
		st.Close()
		fmt.Fprintf(stderr, "mailwall: check-message: the allow and block lists are not applied: %v\n", err)
		return nil, none
	}
	return c, func() { st.Close() }
}

func cmdCheckMessage(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("check-message", stderr)
	ipFlag := fs.String("ip", "", "client IP address")
	helo := fs.String("helo", "", "HELO/EHLO name")
	sender := fs.String("sender", "", "MAIL FROM address (empty: a bounce)")
	rcpt := fs.String("rcpt", "", "RCPT TO address")
	auth := fs.String("auth", "", "SASL user, for an authenticated submission")
	dnsFlag := fs.String("dns", "", "DNS server(s) HOST:PORT, comma separated")
	cfgPath := fs.String("config", "", "config file")
	asJSON := fs.Bool("json", false, "print JSON")
	noLists := fs.Bool("no-lists", false, "do not read the allow and block lists from the store")
	debug := fs.Bool("debug", false, "log each stage's detail to stderr, as for a debug peer (log.debug_peers): DNS answers, DKIM hashes, the rules' inputs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*ipFlag)
	if err != nil || *helo == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: mailwall check-message --ip IP --helo NAME --sender ADDR [--rcpt ADDR] [--dns HOST:PORT] [--json] < message.eml")
		return errUsage
	}
	cfg, res, err := loadResolver(*cfgPath, *dnsFlag)
	if err != nil {
		return err
	}
	pipe, err := newPipeline(cfg, res)
	if err != nil {
		return err
	}
	closeStore, err := checkStoreModels(ctx, pipe.Analyzers, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	if !*noLists {
		c, closeLists := checkLists(ctx, cfg, stderr)
		defer closeLists()
		pipe.Lists = c
	}
	env := verdict.Envelope{ClientIP: ip, Helo: *helo, MailFrom: strings.Trim(*sender, "<>"), AuthUser: *auth}
	if *rcpt != "" {
		env.Rcpts = []string{strings.Trim(*rcpt, "<>")}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.SPF.Timeout.D()+10*time.Second)
	defer cancel()
	if *debug {
		ctx = debuglog.With(ctx, slog.New(slog.NewTextHandler(stderr, nil)).With("debug_peer", true))
	}
	r, fields, err := pipe.CheckMessage(ctx, env, stdin)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, r)
	}
	for _, h := range r.Headers {
		fmt.Fprintf(stdout, "%s:%s\n", h.Name, strings.ReplaceAll(h.Value, "\r\n", "\n"))
	}
	if subj := pipe.SubjectTagged(r, fields); subj != "" {
		fmt.Fprintf(stdout, "Subject:%s\n", subj)
	}
	for _, rm := range r.Remove {
		fmt.Fprintf(stdout, "# removed: %s #%d (claims our authserv-id)\n", rm.Name, rm.Index)
	}
	fmt.Fprintf(stdout, "# action: %s", r.Action)
	if r.Reply != "" && (r.Action == verdict.Reject || r.Action == verdict.TempFail) {
		fmt.Fprintf(stdout, " (%s)", r.Reply)
	}
	fmt.Fprintln(stdout)
	for _, why := range r.Reasons {
		fmt.Fprintf(stdout, "# reason: %s\n", why)
	}
	for _, h := range r.Hits {
		fmt.Fprintf(stdout, "# rule: %s (%d): %s\n", h.Rule, h.Weight, h.Detail)
	}
	return nil
}
