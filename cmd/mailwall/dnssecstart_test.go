package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"mailwall/internal/config"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// TestCheckTrustAnchors: serve's start-up check logs an error when the
// DNS servers cannot give the anchors' keys (an unsigned lab under the
// real root's anchors, as a forwarder stripping DNSSEC would look), and
// only an info line when they can (the signed lab and its own anchor).
func TestCheckTrustAnchors(t *testing.T) {
	signed, _ := labtest.ServeSigned(t, labdns.SignConfig{}, labtest.Zone(t, "example.test.", "@ 300 IN TXT \"v=spf1 -all\""))
	unsigned := labtest.Serve(t, labtest.Zone(t, "example.test.", "@ 300 IN TXT \"v=spf1 -all\""))
	for _, tc := range []struct {
		name, server string
		anchors      []string
		want, not    string
	}{
		{"lab anchor", signed.Addr(), []string{signed.TrustAnchor().String()}, "level=INFO msg=\"DNSSEC: trust anchors checked", "level=ERROR"},
		{"root anchors, unsigned", unsigned.Addr(), nil, "level=ERROR msg=\"DNSSEC: the DNS servers do not give", "trust anchors checked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DNS.Servers = []string{tc.server}
			cfg.DNS.DNSSEC = "validate"
			cfg.DNS.TrustAnchors = tc.anchors
			var buf bytes.Buffer
			checkTrustAnchors(context.Background(), cfg, slog.New(slog.NewTextHandler(&buf, nil)))
			if !strings.Contains(buf.String(), tc.want) || strings.Contains(buf.String(), tc.not) {
				t.Errorf("log:\n%s\nwant %q, not %q", buf.String(), tc.want, tc.not)
			}
		})
	}
	// Off: nothing asked, nothing logged.
	var buf bytes.Buffer
	checkTrustAnchors(context.Background(), config.Default(), slog.New(slog.NewTextHandler(&buf, nil)))
	if buf.Len() != 0 {
		t.Errorf("dnssec off logged: %s", buf.String())
	}
}
