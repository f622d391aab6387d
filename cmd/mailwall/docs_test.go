package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/man and docs/config.md")

// generatedDocs are the files the docs generator owns, by repository path.
func generatedDocs(t *testing.T) map[string][]byte {
	t.Helper()
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for name, b := range pages {
		files[filepath.Join("docs", "man", name)] = b
	}
	md, err := configMarkdown()
	if err != nil {
		t.Fatal(err)
	}
	files[filepath.Join("docs", "config.md")] = md
	return files
}

// TestDocsUpToDate fails when a man page or the config reference differs
// from what the code generates: a flag, a subcommand or a config key
// changed without "go test ./cmd/mailwall -run TestDocsUpToDate -update".
func TestDocsUpToDate(t *testing.T) {
	files := generatedDocs(t)
	if *update {
		os.MkdirAll(filepath.Join("..", "..", "docs", "man"), 0o755)
		for path, b := range files {
			if err := os.WriteFile(filepath.Join("..", "..", path), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not up to date (%v): run go test ./cmd/mailwall -run TestDocsUpToDate -update", path, err)
		}
	}
	stale, _ := filepath.Glob(filepath.Join("..", "..", "docs", "man", "*"))
	for _, p := range stale {
		if _, ok := files[filepath.Join("docs", "man", filepath.Base(p))]; !ok {
			t.Errorf("%s is not generated any more: remove it", p)
		}
	}
}

// TestEveryCommandDocumented: each command run dispatches has a page with
// options when it takes any, and each page names a real command.
func TestEveryCommandDocumented(t *testing.T) {
	documented := map[string]bool{}
	for _, d := range commandDocs() {
		documented[d.name] = true
		if code, _, stderr := runCLI(d.name, "--no-such-flag"); strings.Contains(stderr, fmt.Sprintf("unknown command %q", d.name)) {
			t.Errorf("%s: documented, but run does not know it (exit %d)", d.name, code)
		}
		for _, args := range d.flagsOf {
			if len(flagBlocks(args)) == 0 {
				t.Errorf("%v -h prints no options", args)
			}
		}
	}
	for _, line := range strings.Split(usage, "\n") {
		if name, ok := strings.CutPrefix(line, "  mailwall "); ok {
			name, _, _ = strings.Cut(name, " ")
			if !documented[name] {
				t.Errorf("mailwall %s is in the usage but has no man page", name)
			}
		}
	}
}

// TestManPagesRender formats every page with man's own formatter: a
// warning is a malformed page.
func TestManPagesRender(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed (apt-get install groff-base)")
	}
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range pages {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s: groff: %v\n%s", name, err, out)
		}
	}
}
