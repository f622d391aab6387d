package main

import (
	"context"
	"testing"

	"mailwall/internal/config"
	"mailwall/internal/dnsbl"
)

// TestDNSBLAnalyzerBuilt: "dnsbl" in checks.analyzers (the default)
// builds nothing while no list is configured, so the default pipeline
// is what it was; with lists it is the analyzer with score_weight's
// points and reply_names (keys matched as the zones, in lower case).
func TestDNSBLAnalyzerBuilt(t *testing.T) {
	cfg := config.Default()
	as, err := newAnalyzers(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Name() == dnsbl.AnalyzerName {
			t.Errorf("default config builds the dnsbl analyzer without lists")
		}
	}
	cfg, err = config.Parse([]byte("dnsbl:\n  domain_sites: [\"KEY.dbl.example.test*2\"]\n  score_weight: 15\n  reply_names: {KEY.dbl.example.test: dbl.example.test}\n"))
	if err != nil {
		t.Fatal(err)
	}
	as, err = newAnalyzers(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got *dnsbl.Analyzer
	for _, a := range as {
		if d, ok := a.(*dnsbl.Analyzer); ok {
			got = d
		}
	}
	if got == nil || got.Points != 15 || got.Names["key.dbl.example.test"] != "dbl.example.test" {
		t.Errorf("analyzer %+v", got)
	}
}

// TestDNSBLReplyNamesCase: a reply name keyed with capitals in the config
// (the default file's example, "KEY.zen.dq.spamhaus.net") hides the zone
// in the policy server's replies too: zones are lower case once parsed.
func TestDNSBLReplyNamesCase(t *testing.T) {
	cfg, err := config.Parse([]byte("dnsbl:\n  ip_sites: [\"KEY.zen.example.test\"]\n  reply_names: {KEY.zen.example.test.: zen.example.test}\n"))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := blocklistsFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if zone := bl.Sites[0].Zone; bl.ReplyNames[zone] != "zen.example.test" {
		t.Errorf("zone %q, reply names %v: the zone would be shown", zone, bl.ReplyNames)
	}
}
