package main

import (
	"fmt"
	"os"
	"strings"

	"mailwall/internal/config"
	"mailwall/internal/dnsbl"
	"mailwall/internal/dnsx"
	"mailwall/internal/policyd"
)

// blocklistsFor maps the dnsbl section onto the policy server's
// blocklists; nil when no IP list is configured (the default: each list's
// operator sets its terms, the admin must choose), or when the milter
// applies them at RCPT (dnsbl.rcpt_via).
func blocklistsFor(cfg *config.Config) (*policyd.Blocklists, error) {
	b, err := parseBlocklists(cfg)
	if err != nil || cfg.DNSBL.RcptVia == "milter" {
		return nil, err
	}
	return b, nil
}

// parseBlocklists is the dnsbl section's IP lists with their thresholds;
// nil when none is configured.
func parseBlocklists(cfg *config.Config) (*policyd.Blocklists, error) {
	d := cfg.DNSBL
	if len(d.IPSites) == 0 {
		return nil, nil
	}
	var sites []dnsbl.Site
	for _, e := range d.IPSites {
		s, err := dnsbl.ParseSite(strings.TrimSpace(e))
		if err != nil {
			return nil, fmt.Errorf("dnsbl.ip_sites: %w", err)
		}
		sites = append(sites, s)
	}
	b := blocklistPolicy(cfg)
	b.Sites = sites
	return &b, nil
}

// blocklistPolicy is the dnsbl section's thresholds, action and reply,
// without sites (the lab serves its own).
func blocklistPolicy(cfg *config.Config) policyd.Blocklists {
	d := cfg.DNSBL
	return policyd.Blocklists{
		Timeout:            d.Timeout.D(),
		Budget:             d.Budget.D(),
		RejectThreshold:    d.RejectThreshold,
		Action:             policyd.BlocklistAction(d.Action),
		AllowlistThreshold: d.AllowlistThreshold,
		GreylistThreshold:  d.GreylistThreshold,
		Reply:              d.Reply,
		ReplyNames:         replyNames(d),
		ZoneActions:        zoneActions(d),
	}
}

// zoneActions is dnsbl.zone_actions keyed as the zones are once parsed.
func zoneActions(d config.DNSBLConfig) map[string]policyd.BlocklistAction {
	if len(d.ZoneActions) == 0 {
		return nil
	}
	acts := make(map[string]policyd.BlocklistAction, len(d.ZoneActions))
	for z, a := range d.ZoneActions {
		acts[strings.ToLower(strings.TrimSuffix(strings.TrimSpace(z), "."))] = policyd.BlocklistAction(a)
	}
	return acts
}

// replyNames is dnsbl.reply_names keyed as the zones are once parsed
// (lower case, no trailing dot): "KEY.zen.dq.spamhaus.net" as written
// in the config must still hide the key.
func replyNames(d config.DNSBLConfig) map[string]string {
	names := make(map[string]string, len(d.ReplyNames))
	for z, n := range d.ReplyNames {
		names[strings.ToLower(strings.TrimSuffix(z, "."))] = n
	}
	return names
}

// newDNSBLAnalyzer is the milter's "dnsbl" analyzer on the dnsbl
// section's lists; nil when none is configured, so the default costs
// nothing. A list that refuses or fails is logged on stderr, as serve
// logs (at most a line a zone and kind a minute), besides the problem
// recorded with the message.
func newDNSBLAnalyzer(cfg *config.Config, res dnsx.Resolver) (*dnsbl.Analyzer, error) {
	d := cfg.DNSBL
	if len(d.IPSites) == 0 && len(d.DomainSites) == 0 {
		return nil, nil
	}
	parse := func(key string, entries []string) ([]dnsbl.Site, error) {
		var sites []dnsbl.Site
		for _, e := range entries {
			s, err := dnsbl.ParseSite(strings.TrimSpace(e))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			sites = append(sites, s)
		}
		return sites, nil
	}
	ip, err := parse("dnsbl.ip_sites", d.IPSites)
	if err != nil {
		return nil, err
	}
	dom, err := parse("dnsbl.domain_sites", d.DomainSites)
	if err != nil {
		return nil, err
	}
	// The TXT reason is asked only for a listing, and only the
	// explanation shows it.
	c := dnsbl.New(res, dnsbl.Options{IPSites: ip, DomainSites: dom, Timeout: d.Timeout.D(), Budget: d.Budget.D(), TXT: true,
		Logger: newLogger(cfg, os.Stderr).With("via", "milter")})
	return &dnsbl.Analyzer{C: c, Points: d.ScoreWeight, Names: replyNames(d)}, nil
}
