package main

import (
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, out, errOut := runCLI(arg)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errOut)
		}
		if !strings.HasPrefix(out, "mailwall ") || !strings.Contains(out, "revision ") || !strings.Contains(out, "go1.") {
			t.Errorf("%s: %q lacks the version, revision or Go version", arg, out)
		}
	}
}
