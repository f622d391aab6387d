package main

import (
	"fmt"
	"strings"

	"mailwall/internal/config"
	"mailwall/internal/dnsbl"
	"mailwall/internal/policyd"
)

// blocklistsFor maps the dnsbl section onto the policy server's
// blocklists; nil when no IP list is configured (the default: each list's
// operator sets its terms, the admin must choose).
func blocklistsFor(cfg *config.Config) (*policyd.Blocklists, error) {
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
		ReplyNames:         d.ReplyNames,
	}
}
