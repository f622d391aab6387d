package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/lists"
	"mailwall/internal/store"
)

// listsConfig writes a config whose store is a fresh SQLite file.
func listsConfig(t *testing.T) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "mailwall.db")
	cfg = filepath.Join(dir, "mailwall.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  driver: sqlite\n  dsn: "+db+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, db
}

// TestListsCommand: allow and block add, list, remove on the configured
// store, the flags checked, and the entries as the store keeps them.
func TestListsCommand(t *testing.T) {
	cfg, db := listsConfig(t)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"block", "add", "--ip", "192.0.2.0/24", "--note", "botnet", "--config", cfg}, 0, "block ip 192.0.2.0/24 added\n"},
		{[]string{"allow", "add", "--domain", "Partner.Example", "--expires", "720h", "--config", cfg}, 0, "allow domain partner.example added, expires "},
		{[]string{"allow", "add", "--rcpt", "postmaster@here.example", "--config", cfg}, 0, "allow rcpt postmaster@here.example added\n"},
		{[]string{"allow", "add", "--sender", "not-an-address", "--config", cfg}, 1, ""},
		{[]string{"allow", "add", "--ip", "192.0.2.1", "--domain", "x.example", "--config", cfg}, 2, ""},
		{[]string{"allow", "frob", "--config", cfg}, 2, ""},
		{[]string{"block", "remove", "--ip", "192.0.2.9", "--config", cfg}, 1, ""},
	} {
		code, out, errs := runCLI(tc.args...)
		if code != tc.code || !strings.HasPrefix(out, tc.out) {
			t.Errorf("%v: exit %d %q %q, want %d %q", tc.args, code, out, errs, tc.code, tc.out)
		}
	}
	code, out, _ := runCLI("allow", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "domain  partner.example") || !strings.Contains(out, "rcpt    postmaster@here.example") || strings.Contains(out, "192.0.2.0") {
		t.Errorf("allow list: %d\n%s", code, out)
	}
	code, out, _ = runCLI("block", "list", "--json", "--config", cfg)
	var got []lists.Entry
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 1 || got[0].Value != "192.0.2.0/24" || got[0].Note != "botnet" {
		t.Errorf("block list --json: %d %q %v", code, out, err)
	}
	if code, out, _ := runCLI("block", "remove", "--ip", "192.0.2.0/24", "--config", cfg); code != 0 || out != "block ip 192.0.2.0/24 removed\n" {
		t.Errorf("remove: %d %q", code, out)
	}
	st, err := store.Open(context.Background(), "sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := st.ListEntries(context.Background())
	if err != nil || len(all) != 2 || all[0].Expires.IsZero() {
		t.Errorf("stored: %+v %v", all, err)
	}
}

// TestListsImport: a Postfix access table's OK lines go to the allow
// list and its REJECT lines to the block list; policyd-spf's Whitelist
// and Domain_Whitelist to the allow list.
func TestListsImport(t *testing.T) {
	cfg, _ := listsConfig(t)
	dir := t.TempDir()
	access := filepath.Join(dir, "sender_access")
	os.WriteFile(access, []byte("# senders\npartner.example OK\nspammer@free.example REJECT go away\n@junk.example 554 no\nuser@ REJECT\nlater.example DEFER\n"), 0o600)
	conf := filepath.Join(dir, "policyd-spf.conf")
	os.WriteFile(conf, []byte("debugLevel = 1\nWhitelist = 192.0.2.0/24,2001:db8::/32\nDomain_Whitelist = relay.example\n"), 0o600)
	code, out, errs := runCLI("allow", "import", "--postfix-access", access, "--config", cfg)
	if code != 0 || out != "1 allow entries imported, 2 lines skipped\n" || !strings.Contains(errs, "user@") {
		t.Errorf("allow import: %d %q %q", code, out, errs)
	}
	code, out, _ = runCLI("block", "import", "--postfix-access", access, "--config", cfg)
	if code != 0 || out != "2 block entries imported, 2 lines skipped\n" {
		t.Errorf("block import: %d %q", code, out)
	}
	code, out, _ = runCLI("allow", "import", "--policyd-spf", conf, "--config", cfg)
	if code != 0 || out != "3 allow entries imported, 0 lines skipped\n" {
		t.Errorf("policyd-spf import: %d %q", code, out)
	}
	_, out, _ = runCLI("block", "list", "--config", cfg)
	if !strings.Contains(out, "domain  junk.example") || !strings.Contains(out, "sender  spammer@free.example") {
		t.Errorf("block list after import:\n%s", out)
	}
}
