package main

import (
	"slices"
	"testing"

	"mailwall/internal/config"
)

// TestPrintable: what a report's sender chose (a zip member's name, an
// org_name) reached the terminal with its escape sequences in "report
// import" and "report list" (issue 23 item 9).
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"google.com":                         "google.com",
		"Ünïcödé Mail GmbH":                  "Ünïcödé Mail GmbH",
		"evil\x1b]0;owned\x07.xml":           `"evil\x1b]0;owned\a.xml"`,
		"csi\u009b31m":                       `"csi\u009b31m"`,
		"bidi\u202egpj.xml":                  `"bidi\u202egpj.xml"`,
		"tab\tshifts the table":              `"tab\tshifts the table"`,
		"new\nline":                          `"new\nline"`,
		"invalid \xff UTF-8":                 `"invalid \xff UTF-8"`,
		`already "quoted" \x1b is printable`: `already "quoted" \x1b is printable`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestNewInboundDomains(t *testing.T) {
	cfg := config.Default()
	cfg.Hostname = "mx.our.test"
	cfg.Checks.Signing = []config.SigningConfig{{Domain: "our.test", Selector: "s", Key: "k"}}
	cfg.Reports.Inbound.Addresses = []string{"dmarc@reports.our.test"}
	in := newInbound(cfg, nil)
	if !slices.Equal(in.Domains, []string{"our.test", "reports.our.test"}) || in.AuthServID != "mx.our.test" || in.PerReporterPerDay != 100 {
		t.Errorf("defaults: %+v", in)
	}
	cfg.Reports.Inbound.Domains = []string{"other.test"}
	cfg.Checks.AuthServID = "ar.our.test"
	if in := newInbound(cfg, nil); !slices.Equal(in.Domains, []string{"other.test"}) || in.AuthServID != "ar.our.test" {
		t.Errorf("configured: %+v", in)
	}
}
