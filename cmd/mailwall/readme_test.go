package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The README is for the admin (issue 26, item 9): short, the two commands
// first, and links into docs/ that lead somewhere.
const (
	readmeMaxLines = 200
	// The commands must open the README's first code block, within this
	// many lines of the top.
	readmeCommandsWithin = 30
)

// readmeCommands are the two commands at the README's top, in order: the
// program's main job on its embedded defaults, and the test command that
// .ci/run runs.
var readmeCommands = []string{"go run ./cmd/mailwall serve", "make test"}

func readRepoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestREADMEIsShort(t *testing.T) {
	b := readRepoFile(t, "README.md")
	if n := bytes.Count(b, []byte("\n")); n >= readmeMaxLines {
		t.Errorf("README.md has %d lines; keep it under %d and move detail into docs/", n, readmeMaxLines)
	}
}

// TestREADMECommandsAtTop checks that the README's first code block opens
// with the two commands, and that the test command is the one CI runs.
func TestREADMECommandsAtTop(t *testing.T) {
	got, err := readmeTopCommands(readRepoFile(t, "README.md"), len(readmeCommands))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range readmeCommands {
		if got[i] != want {
			t.Errorf("README.md's command %d is %q, want %q", i+1, got[i], want)
		}
	}
	testCmd := readmeCommands[len(readmeCommands)-1]
	ci := strings.Split(string(readRepoFile(t, ".ci/run")), "\n")
	if !slices.Contains(ci, testCmd) {
		t.Errorf(".ci/run has no line %q: CI must run the README's test command", testCmd)
	}
	if !bytes.Contains(readRepoFile(t, "Makefile"), []byte("\ntest-deps:")) {
		t.Error("Makefile has no test-deps target (the test prerequisites the README and docs/development.md name)")
	}
}

// TestREADMELinksIntoDocs checks that the README leads to each page the
// admin needs; TestDocLinks checks that the links work.
func TestREADMELinksIntoDocs(t *testing.T) {
	readme := string(readRepoFile(t, "README.md"))
	for _, page := range []string{
		"docs/migration.md",
		"docs/operating.md",
		"docs/lab.md",
		"docs/phishing.md",
		"docs/classifier.md",
		"docs/reports.md",
		"docs/config.md",
		"docs/man/",
		"docs/security.md",
		"docs/reliability.md",
		"docs/benchmarks.md",
		"docs/development.md",
	} {
		if !strings.Contains(readme, "]("+page) {
			t.Errorf("README.md has no link to %s", page)
		}
	}
}

// readmeTopCommands returns the first n commands of the first fenced code
// block, which must start within readmeCommandsWithin lines; a command is
// a line's text before its "#" comment, trimmed.
func readmeTopCommands(readme []byte, n int) ([]string, error) {
	lines := strings.Split(string(readme), "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "```") {
			continue
		}
		if i >= readmeCommandsWithin {
			return nil, fmt.Errorf("the first code block starts at line %d, not within the first %d", i+1, readmeCommandsWithin)
		}
		var cmds []string
		for _, l := range lines[i+1:] {
			if strings.HasPrefix(l, "```") || len(cmds) == n {
				break
			}
			cmd, _, _ := strings.Cut(l, "#")
			cmds = append(cmds, strings.TrimSpace(cmd))
		}
		if len(cmds) < n {
			return nil, fmt.Errorf("the first code block has %d lines, want the %d commands", len(cmds), n)
		}
		return cmds, nil
	}
	return nil, fmt.Errorf("no code block in the first %d lines", readmeCommandsWithin)
}

// TestDocLinks checks every relative link of README.md and docs/*.md: the
// file exists and, for a Markdown file, so does the #anchor.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{filepath.Join(root, "README.md")}, docs...)
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	checked := 0
	for _, f := range files {
		problems, n, err := checkDocLinks(f)
		if err != nil {
			t.Fatal(err)
		}
		checked += n
		for _, p := range problems {
			t.Error(p)
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d relative links: is the link pattern still right?", checked)
	}
}

// TestCheckDocLinksFindsBrokenOnes runs the link check on pages made here,
// so that it is known to fail when it should.
func TestCheckDocLinksFindsBrokenOnes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("other.md", "# Other page\n\n## The `store` (SQLite)\n\n```\n# not a heading\n```\n")
	write("page.md", strings.Join([]string{
		"# Page",
		"## Two words",
		"[ok](other.md) [ok](other.md#the-store-sqlite) [ok](#two-words) [ok](#page)",
		"[web](https://example.test/x.md) [mail](mailto:a@example.test)",
		"`[not a link](missing.md)`",
		"```",
		"[not a link](missing.md)",
		"```",
		"[bad file](missing.md) [bad anchor](other.md#not-a-heading) [bad here](#nowhere)",
	}, "\n"))
	problems, n, err := checkDocLinks(filepath.Join(dir, "page.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Errorf("checked %d relative links, want 7", n)
	}
	want := []string{"missing.md", "other.md#not-a-heading", "#nowhere"}
	if len(problems) != len(want) {
		t.Fatalf("problems %q, want one for each of %q", problems, want)
	}
	for i, w := range want {
		if !strings.Contains(problems[i], "("+w+")") {
			t.Errorf("problem %d is %q, want one about %s", i, problems[i], w)
		}
	}
}

var mdLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)

// checkDocLinks returns a sentence for each relative link of a Markdown
// file whose file or anchor does not exist, and how many it checked.
// Links inside fenced code blocks and code spans are not links.
func checkDocLinks(path string) (problems []string, checked int, err error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	for i, line := range markdownProse(text) {
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if u, err := url.Parse(target); err == nil && u.Scheme != "" {
				continue // http:, https:, mailto:
			}
			checked++
			file, anchor, _ := strings.Cut(target, "#")
			dest := path
			if file != "" {
				dest = filepath.Join(filepath.Dir(path), filepath.FromSlash(file))
				if _, err := os.Stat(dest); err != nil {
					problems = append(problems, fmt.Sprintf("%s:%d: link (%s): no such file", path, i+1, target))
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			anchors, err := markdownAnchors(dest)
			if err != nil {
				return nil, 0, err
			}
			if !anchors[anchor] {
				problems = append(problems, fmt.Sprintf("%s:%d: link (%s): no heading with that anchor in %s", path, i+1, target, dest))
			}
		}
	}
	return problems, checked, nil
}

var codeSpan = regexp.MustCompile("`[^`]*`")

// markdownProse returns a file's lines with fenced code blocks blanked and
// code spans removed, so that line numbers stay right.
func markdownProse(text []byte) []string {
	var lines []string
	inFence := false
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			lines = append(lines, "")
			continue
		}
		if inFence {
			lines = append(lines, "")
			continue
		}
		lines = append(lines, codeSpan.ReplaceAllString(line, ""))
	}
	return lines
}

// markdownAnchors returns the anchors GitHub makes for a file's headings:
// the heading's text lowercased, code spans' backticks and punctuation
// dropped, spaces made hyphens, "-1", "-2" added to repeats.
func markdownAnchors(path string) (map[string]bool, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimLeft(line, "#")
		if !strings.HasPrefix(title, " ") {
			continue
		}
		slug := headingSlug(title)
		for n, s := 1, slug; ; n++ {
			if !anchors[s] {
				anchors[s] = true
				break
			}
			s = fmt.Sprintf("%s-%d", slug, n)
		}
	}
	return anchors, nil
}

func headingSlug(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(title)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestHeadingSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{" `reports`", "reports"},
		{" Phishing rules (`internal/phish`)", "phishing-rules-internalphish"},
		{" 3. Let mailwall read the signing keys", "3-let-mailwall-read-the-signing-keys"},
		{" Everything side by side: `make bench-peers` (2026-11-23, sixth run)", "everything-side-by-side-make-bench-peers-2026-11-23-sixth-run"},
		{" Connection checks: iprev, S25R, HELO", "connection-checks-iprev-s25r-helo"},
		{" checks.dkim_x", "checksdkim_x"},
	} {
		if got := headingSlug(tc.heading); got != tc.want {
			t.Errorf("headingSlug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

func TestREADMETopCommandsReading(t *testing.T) {
	for _, tc := range []struct {
		name, readme string
		want         []string
		err          bool
	}{
		{"commands with comments", "# x\n\ntext\n\n```sh\ngo run ./cmd/mailwall serve   # start\nmake test  # test\nmore\n```\n", readmeCommands, false},
		{"block too far down", strings.Repeat("text\n", readmeCommandsWithin) + "```sh\ngo run ./cmd/mailwall serve\nmake test\n```\n", nil, true},
		{"one command only", "```sh\ngo run ./cmd/mailwall serve\n```\nmake test\n", nil, true},
		{"no code block", "# x\n\njust text\n", nil, true},
		{"other order", "```\nmake test\ngo run ./cmd/mailwall serve\n```\n", []string{"make test", "go run ./cmd/mailwall serve"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readmeTopCommands([]byte(tc.readme), 2)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error: %v", err, tc.err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
