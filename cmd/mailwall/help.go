package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// Help: "-h" (or "-help", "--help") anywhere in a command line, before a
// "--", prints that command's help to stdout and exits 0, whatever else
// the line holds, so no command has to handle it itself: its entries of
// the usage text, then the flags its flag set declares, read by running
// it with only "-h" (every command parses its flags before it does
// anything). "mailwall help CMD [SUB]" does the same.

// helpKey marks the context of a run that gathers a command's flags, so
// it is dispatched and not answered with help again.
type helpKey struct{}

// wantsHelp reports whether args ask for help.
func wantsHelp(ctx context.Context, args []string) bool {
	if ctx.Value(helpKey{}) != nil {
		return false
	}
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// usageEntry is one command of the usage text: its first line and the
// lines below it.
type usageEntry struct {
	path []string // the command words, alternatives split: [[spf] [lint]], [[learn] [spam ham]]
	text string
}

// usageEntries parses the usage text into its commands.
func usageEntries() []usageEntry {
	var out []usageEntry
	for _, line := range strings.Split(usage, "\n") {
		if rest, ok := strings.CutPrefix(line, "  mailwall "); ok {
			out = append(out, usageEntry{path: commandWords(rest), text: line + "\n"})
		} else if len(out) > 0 && strings.HasPrefix(line, "   ") {
			out[len(out)-1].text += line + "\n"
		}
	}
	return out
}

// commandWords are a usage line's leading command words, up to the first
// flag, placeholder (capitals) or option.
func commandWords(line string) []string {
	var words []string
	for _, w := range strings.Fields(line) {
		if w == "" || strings.ContainsAny(w[:1], "-[<|ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			break
		}
		words = append(words, w)
	}
	return words
}

// matches reports whether the entry is for the command path given.
func (e usageEntry) matches(path []string) bool {
	if len(path) > len(e.path) {
		return false
	}
	for i, w := range path {
		if !strings.Contains("|"+e.path[i]+"|", "|"+w+"|") {
			return false
		}
	}
	return true
}

// matching are the usage entries of the command path.
func matching(path []string) []usageEntry {
	var out []usageEntry
	for _, e := range usageEntries() {
		if e.matches(path) {
			out = append(out, e)
		}
	}
	return out
}

// helpPath is the command (and subcommand) a command line names: its
// leading words, as far as the usage text knows them.
func helpPath(args []string) []string {
	entries := usageEntries()
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		next := append(append([]string(nil), path...), a)
		known := false
		for _, e := range entries {
			known = known || e.matches(next)
		}
		if !known {
			break
		}
		path = next
	}
	if len(path) == 0 && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path = args[:1] // a command the usage text does not list
	}
	return path
}

// printHelp writes the help of the command args name.
func printHelp(ctx context.Context, args []string, stdout io.Writer) int {
	path := helpPath(args)
	if len(path) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var text strings.Builder
	for _, e := range usageEntries() {
		if e.matches(path) {
			text.WriteString(e.text)
		}
	}
	if text.Len() == 0 {
		// A subcommand listed inside its command's entry ("report show"):
		// the command's entries.
		for _, e := range usageEntries() {
			if e.matches(path[:1]) {
				text.WriteString(e.text)
			}
		}
	}
	if text.Len() == 0 {
		// One named inside another's entry ("unlearn" in learn's).
		for _, e := range usageEntries() {
			if strings.Contains(e.text, " "+path[0]+" ") {
				text.WriteString(e.text)
			}
		}
	}
	if text.Len() == 0 {
		fmt.Fprintf(stdout, "mailwall: unknown command %q\n\n%s", path[0], usage)
		return 0
	}
	fmt.Fprintf(stdout, "Usage:\n%s", text.String())
	// The flags of the subcommand named, even one the usage text lists
	// inside its command's entry ("report show").
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	flags := commandFlags(ctx, words)
	if matched := matching(path); flags == "" && len(matched) == 1 && len(matched[0].path) > len(words) {
		// "domain -h": the flags of its only subcommand, "domain check".
		var sub []string
		for _, w := range matched[0].path {
			sub = append(sub, strings.Split(w, "|")[0])
		}
		flags = commandFlags(ctx, sub)
	}
	if flags != "" {
		fmt.Fprintf(stdout, "\nFlags:\n%s", flags)
	}
	return 0
}

// commandFlags runs the command with only "-h", in a context already
// ended, and returns the flag defaults its flag set printed ("" when it
// has none).
func commandFlags(ctx context.Context, path []string) string {
	ctx, cancel := context.WithCancel(context.WithValue(ctx, helpKey{}, true))
	cancel()
	var errb bytes.Buffer
	run(ctx, append(append([]string(nil), path...), "-h"), strings.NewReader(""), io.Discard, &errb)
	out := errb.String()
	if !strings.HasPrefix(out, "Usage of ") {
		return ""
	}
	_, flags, _ := strings.Cut(out, "\n")
	return flags
}
