package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckMessageLists: check-message applies the allow and block lists
// of the configured store, as serve does: a client blocked there is
// rejected with the block list's reply; --no-lists leaves them out; an
// SQLite store that does not exist is not made, and the message is
// checked without lists.
func TestCheckMessageLists(t *testing.T) {
	dns := labDNS(t)
	cfg, db := listsConfig(t)
	if code, out, errs := runCLI("block", "add", "--ip", "127.0.0.2", "--note", "test", "--config", cfg); code != 0 {
		t.Fatalf("block add: %d %s %s", code, out, errs)
	}
	msg := "From: Alice <alice@example.test>\nTo: bob@rcpt.test\nSubject: hi\n\nhello\n"
	check := func(cfg string, extra ...string) string {
		t.Helper()
		args := append([]string{"check-message", "--config", cfg, "--dns", dns, "--ip", "127.0.0.2", "--helo", "mail.example.test",
			"--sender", "alice@example.test", "--rcpt", "bob@rcpt.test"}, extra...)
		code, out, errs := runCLIWithInput(msg, args...)
		if code != 0 {
			t.Fatalf("check-message: exit %d\n%s%s", code, out, errs)
		}
		return out
	}
	for _, tc := range []struct {
		name, cfg string
		extra     []string
		want      string
	}{
		{"blocked client", cfg, nil, "# action: reject (550 5.7.1 sender is on this site's block list)"},
		{"--no-lists", cfg, []string{"--no-lists"}, "# action: accept\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out := check(tc.cfg, tc.extra...); !strings.Contains(out, tc.want) {
				t.Errorf("want %q:\n%s", tc.want, out)
			}
		})
	}
	t.Run("no store yet", func(t *testing.T) {
		dir := t.TempDir()
		missing := filepath.Join(dir, "none", "mailwall.db")
		other := filepath.Join(dir, "mailwall.yaml")
		os.WriteFile(other, []byte("store:\n  driver: sqlite\n  dsn: "+missing+"\n"), 0o600)
		if out := check(other); !strings.Contains(out, "# action: accept\n") {
			t.Errorf("want accept without lists:\n%s", out)
		}
		if _, err := os.Stat(filepath.Dir(missing)); err == nil {
			t.Errorf("check-message made the store's directory %s", filepath.Dir(missing))
		}
	})
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
}
