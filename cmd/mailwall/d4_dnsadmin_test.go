package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/admin"
	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// mailwall dns query prints the answer's DNSSEC status under its first
// line when the daemon validates, and a bogus answer as an error.
func TestD4DNSQueryDNSSEC(t *testing.T) {
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"plain.test": {Unsigned: true}, "tamper.test": {TamperRRSIG: true}}},
		labtest.Zone(t, "good.test", "mail IN A 192.0.2.1"), labtest.Zone(t, "plain.test", "mail IN A 192.0.2.2"),
		labtest.Zone(t, "tamper.test", "mail IN A 192.0.2.3"))
	sock := filepath.Join(t.TempDir(), "admin.sock")
	s := &admin.Server{Cache: dnsx.NewCache(client, dnsx.CacheOptions{}), Log: slog.New(slog.DiscardHandler)}
	if err := s.Listen(sock); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name     string
		code     int
		out, err string
	}{
		{"mail.good.test", 0, "\n  DNSSEC: secure\n  mail.good.test.\t", ""},
		{"mail.plain.test", 0, "\n  DNSSEC: insecure (", ""},
		{"mail.tamper.test", 1, "", "DNSSEC bogus: mail.tamper.test A: RRSIG"},
	} {
		code, out, errs := runCLI("dns", "query", tc.name, "A", "--socket", sock)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.err) {
			t.Errorf("%s: exit %d\n%s\n%s", tc.name, code, out, errs)
		}
	}
}

// mailwall domain check prints the zone's DNSSEC state in its own
// section: a signed zone without DS at the parent is an unsigned
// delegation, with the DS to publish as the fix.
func TestD4DomainCheckDNSSEC(t *testing.T) {
	s, _ := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{"nods.test": {OmitDS: true}}},
		labtest.Zone(t, "good.test", "@ IN NS ns1", "ns1 IN A 127.0.0.1", `@ IN TXT "v=spf1 -all"`),
		labtest.Zone(t, "nods.test", "@ IN NS ns1", "ns1 IN A 127.0.0.1", `@ IN TXT "v=spf1 -all"`))
	_, port, _ := net.SplitHostPort(s.Addr())
	for _, tc := range []struct{ domain, want string }{
		{"good.test", "\nDNSSEC\n  pass  good.test: DS at the parent (key tag "},
		{"nods.test", "\nDNSSEC\n  warn  nods.test: unsigned delegation: the zone is signed (1 DNSKEY) but its parent has no DS, so validators treat its answers as insecure\n        fix: publish the DS at the registrar: nods.test. 3600 IN DS "},
	} {
		_, out, errs := runCLI("domain", "check", tc.domain, "--dns", s.Addr(), "--ns-port", port, "--timeout", "1s")
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s: no %q in\n%s%s", tc.domain, tc.want, out, errs)
		}
	}
}
