package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dispatched are the commands run's switch dispatches, read from main.go,
// so a command added there without help fails TestHelpEveryCommand.
func dispatched(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\tcase ((?:"[^"]+",? ?)+):`).FindAllStringSubmatch(string(src), -1) {
		for _, c := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(m[1], -1) {
			if !strings.HasPrefix(c[1], "-") && c[1] != "help" && c[1] != "version" {
				out = append(out, c[1])
			}
		}
	}
	if len(out) < 15 {
		t.Fatalf("read %d commands from main.go's switch: %v", len(out), out)
	}
	return out
}

// TestHelpEveryCommand: "-h" on every command and every subcommand the
// usage text names prints its own help on stdout and exits 0, with
// nothing on stderr and nothing done; "--help" and "help CMD" too.
func TestHelpEveryCommand(t *testing.T) {
	// Nothing may be written by a help run: it runs in an empty directory.
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(filepath.Join(wd, "main.go"))
	os.WriteFile("main.go", src, 0o644)
	defer os.Chdir(wd)

	paths := map[string]bool{}
	for _, c := range dispatched(t) {
		paths[c] = true
	}
	for _, e := range usageEntries() {
		if !paths[e.path[0]] && e.path[0] != "version" {
			t.Errorf("usage text lists %q, which run does not dispatch", e.path[0])
		}
		// Every subcommand, its alternatives expanded.
		prefixes := []string{""}
		for _, w := range e.path {
			var next []string
			for _, p := range prefixes {
				for _, alt := range strings.Split(w, "|") {
					next = append(next, strings.TrimSpace(p+" "+alt))
				}
			}
			prefixes = next
			for _, p := range prefixes {
				paths[p] = true
			}
		}
	}
	// Subcommands the usage text names inside another's entry.
	for _, p := range []string{"report show", "report send-now", "report import", "dns flush", "web reset-password",
		"allow import", "block add", "block import", "lab run", "unlearn spam"} {
		paths[p] = true
	}
	entries := usageEntries()
	for p := range paths {
		words := strings.Fields(p)
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string(nil), words...), h)
			code, out, errs := runCLI(args...)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "Usage:\n  mailwall ") {
				t.Errorf("mailwall %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), code, errs, out)
				continue
			}
			if !strings.Contains(out, " "+words[0]) {
				t.Errorf("mailwall %s: help does not name %q:\n%s", strings.Join(args, " "), words[0], out)
			}
			// Only its own entries, not the whole usage text.
			if n := strings.Count(out, "\n  mailwall "); n >= len(entries)/2 {
				t.Errorf("mailwall %s: %d commands in its help, not its own", strings.Join(args, " "), n)
			}
		}
		if code, out, _ := runCLI(append([]string{"help"}, words...)...); code != 0 || !strings.HasPrefix(out, "Usage:\n") {
			t.Errorf("mailwall help %s: exit %d:\n%s", p, code, out)
		}
	}
	if left, _ := filepath.Glob("*"); len(left) != 1 {
		t.Errorf("help runs left files behind: %v", left)
	}
	// The flags of the command named come with its help.
	for _, c := range []struct{ args, want string }{
		{"serve -h", "-config string"},
		{"spf lint example.test -h", "-dns string"},
		{"domain -h", "-ns-port int"},
		{"report show --json -h", "-received"},
		{"dkim keygen -h", "-selector string"},
	} {
		if code, out, _ := runCLI(strings.Fields(c.args)...); code != 0 || !strings.Contains(out, "\nFlags:\n") || !strings.Contains(out, c.want) {
			t.Errorf("mailwall %s: exit %d, want flags with %q:\n%s", c.args, code, c.want, out)
		}
	}
	// After "--", -h is an argument, not a request for help.
	if code, _, _ := runCLI("spf", "lint", "--", "-h"); code == 0 {
		t.Errorf("spf lint -- -h: exit 0, want the command run (and refuse the domain)")
	}
}

// TestUsageDescribesToday: the usage line names what mailwall is now.
func TestUsageDescribesToday(t *testing.T) {
	first := strings.SplitN(usage, "\n\n", 2)[0]
	for _, want := range []string{"milter", "DKIM", "DMARC", "policy server", "dashboard"} {
		if !strings.Contains(first, want) {
			t.Errorf("usage's opening lacks %q:\n%s", want, first)
		}
	}
}

// TestConfigPath: no --config reads /etc/mailwall/mailwall.yaml when it
// exists, else the embedded defaults; --config wins.
func TestConfigPath(t *testing.T) {
	dir := t.TempDir()
	exists := filepath.Join(dir, "mailwall.yaml")
	os.WriteFile(exists, []byte("log:\n  level: debug\n"), 0o600)
	missing := filepath.Join(dir, "none.yaml")
	for _, c := range []struct{ flag, dflt, want string }{
		{"", exists, exists},
		{"", missing, ""},
		{"other.yaml", exists, "other.yaml"},
	} {
		if got := configPath(c.flag, c.dflt); got != c.want {
			t.Errorf("configPath(%q, %q) = %q, want %q", c.flag, c.dflt, got, c.want)
		}
	}
}

// TestConfigCheckRefusesWhatServeWould: config check fails, naming the
// key, on what would stop serve (or, for web.listen, its dashboard), not
// only on what the YAML parser sees.
func TestConfigCheckRefusesWhatServeWould(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, yaml, want string }{
		{"brands file missing", "checks:\n  phish:\n    brands_file: " + filepath.Join(dir, "none.yaml") + "\n", "checks.phish.brands_file"},
		{"signing key missing", "checks:\n  signing:\n    - {domain: example.test, selector: s1, key: " + filepath.Join(dir, "s1.private") + "}\n", "s1.private"},
		{"policy port out of range", "policyd:\n  listen: [\"inet:127.0.0.1:70000\"]\n", "policyd.listen"},
		{"milter port not a number", "milter:\n  listen: [\"inet:127.0.0.1:milter\"]\n", "milter.listen"},
		{"web address without a port", "web:\n  listen: 127.0.0.1\n", "web.listen"},
		{"HELO table missing", "checks:\n  helo_regexp_tables: [" + filepath.Join(dir, "helo.regexp") + "]\n", "helo.regexp"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
		os.WriteFile(path, []byte(c.yaml), 0o600)
		code, _, errs := runCLI("config", "check", path)
		if code != 1 || !strings.Contains(errs, c.want) || !strings.Contains(errs, "serve would refuse it") {
			t.Errorf("%s: exit %d, %q; want 1 naming %s", c.name, code, errs, c.want)
		}
	}
}
