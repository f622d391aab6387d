package main

import (
	"fmt"
	"log/slog"

	"mailwall/internal/config"
	"mailwall/internal/conncheck"
	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/store"
)

// newGreylister builds the policy server's greylisting from the config;
// nil when greylisting is off. It needs the store: without one it is off,
// with a warning.
func newGreylister(cfg *config.Config, st *store.Store, res dnsx.Resolver, log *slog.Logger) (*greylist.Greylister, error) {
	gc := cfg.Greylist
	if !gc.Enabled {
		return nil, nil
	}
	if st == nil {
		log.Warn("greylist.enabled but no store (store.dsn empty or unavailable): greylisting is off")
		return nil, nil
	}
	allow, err := config.ParsePrefixes(gc.AllowIPs)
	if err != nil {
		return nil, fmt.Errorf("greylist.allow_ips: %w", err)
	}
	s25rAllow, err := config.ParsePrefixes(cfg.Checks.S25RAllowIPs)
	if err != nil {
		return nil, fmt.Errorf("checks.s25r_allow_ips: %w", err)
	}
	s25r, err := conncheck.NewS25R(nil, cfg.Checks.S25RAllowNames, s25rAllow)
	if err != nil {
		return nil, err
	}
	return greylist.New(greylist.Config{
		Mode: gc.Mode, Delay: gc.Delay.D(), RetryWindow: gc.RetryWindow.D(), MaxAge: gc.MaxAge.D(),
		AutoAllow: gc.AutoAllow, Text: gc.Text, Tarpit: gc.Tarpit.D(), AllowNets: allow, S25R: s25r,
		VerifyNames: gc.ClientName == "dns", Resolver: res,
	}, st)
}

// greylistRetention is what the retention loop purges of the greylist:
// nothing while greylisting is off (the rows stay for when it is back).
func greylistRetention(cfg *config.Config) store.GreylistRetention {
	if !cfg.Greylist.Enabled {
		return store.GreylistRetention{}
	}
	return store.GreylistRetention{RetryWindow: cfg.Greylist.RetryWindow.D(), MaxAge: cfg.Greylist.MaxAge.D()}
}
