package manpage

import (
	"os/exec"
	"strings"
	"testing"
)

func TestRoff(t *testing.T) {
	p := Page{
		Name: "mailwall-x", Section: "8", Summary: "does x", Source: "mailwall", Manual: "mailwall manual",
		Synopsis: []string{"mailwall x [--flag] FILE"},
		Sections: []Section{{Heading: "Description", Blocks: []Block{
			{Text: "First paragraph\nwrapped.\n\nSecond."},
			{Text: ".dot at the start, a back\\slash"},
			{Tag: "--flag", Text: "what it does"},
			{Code: ".literal\n  indented"},
		}}},
	}
	got := string(p.Roff())
	for _, want := range []string{
		".TH MAILWALL\\-X 8 \"\" \"mailwall\" \"mailwall manual\"\n",
		"mailwall\\-x \\- does x\n",
		".SH SYNOPSIS\n.nf\nmailwall x [\\-\\-flag] FILE\n.fi\n",
		"First paragraph wrapped.\n.IP\nSecond.\n",
		".PP\n\\&.dot at the start, a back\\eslash\n",
		".TP\n.B \\-\\-flag\nwhat it does\n",
		".nf\n\\&.literal\n  indented\n.fi\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
}

// TestRoffReadsClean renders a page with groff when it is installed:
// warnings mean a malformed page.
func TestRoffReadsClean(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed")
	}
	p := Page{Name: "t", Section: "1", Summary: "s", Synopsis: []string{"t -x"},
		Sections: []Section{{Heading: "Options", Blocks: []Block{{Tag: "-x", Text: "a\n\nb"}, {Code: "x\\y"}}}}}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(string(p.Roff()))
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}
