package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"mailwall/internal/config"
	"mailwall/internal/dnsx"
	"mailwall/internal/milter"
)

// TestRcptViaExclusive: greylist.via and dnsbl.rcpt_via give greylisting
// and the blocklists' thresholds to the policy server or to the milter,
// never both, so a client is never greylisted twice nor its lists
// judged twice; without either in the milter, the milter waits for no
// RCPT reply.
func TestRcptViaExclusive(t *testing.T) {
	st := openSQLiteStore(t)
	log := slog.New(slog.DiscardHandler)
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{"127.0.0.1:1"}}, dnsx.CacheOptions{}) // never asked here
	for _, tc := range []struct {
		name, grey, bl       string
		policyGrey, policyBL bool
		milterGrey, milterBL bool
	}{
		{"defaults: the policy server", "", "", true, true, false, false},
		{"both in the milter", "milter", "milter", false, false, true, true},
		{"greylisting in the milter", "milter", "", false, true, true, false},
		{"blocklists in the milter", "", "milter", true, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mailwall.yaml")
			yaml := "greylist:\n  enabled: true\n"
			if tc.grey != "" {
				yaml += "  via: " + tc.grey + "\n"
			}
			yaml += "dnsbl:\n  ip_sites: [\"bl.example.test*3\"]\n"
			if tc.bl != "" {
				yaml += "  rcpt_via: " + tc.bl + "\n"
			}
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			g, err := newGreylister(cfg, st, res, log)
			if err != nil || (g != nil) != tc.policyGrey {
				t.Errorf("policy server greylists: %v (%v), want %v", g != nil, err, tc.policyGrey)
			}
			bl, err := blocklistsFor(cfg)
			if err != nil || (bl != nil) != tc.policyBL {
				t.Errorf("policy server asks the lists: %v (%v), want %v", bl != nil, err, tc.policyBL)
			}
			r, err := newMilterRcpt(cfg, st, res, nil, nil, log)
			if err != nil {
				t.Fatal(err)
			}
			if got := r != nil && r.grey != nil; got != tc.milterGrey {
				t.Errorf("milter greylists: %v, want %v", got, tc.milterGrey)
			}
			if got := r != nil && r.bl != nil; got != tc.milterBL {
				t.Errorf("milter asks the lists at RCPT: %v, want %v", got, tc.milterBL)
			}
			f := &milterFilter{noReply: milter.ProtoNRRcpt | milter.ProtoNRMail, rcpt: r.conn()}
			if waits := f.NoReply()&milter.ProtoNRRcpt == 0; waits != (r != nil) {
				t.Errorf("milter waits for the RCPT reply: %v, want %v", waits, r != nil)
			}
		})
	}
}
