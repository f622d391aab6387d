package admin

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// "mailwall dns query" shows what DNSSEC said of the answer, fetched or
// from the cache; a bogus one is an error naming the failing link.
func TestD4QueryShowsDNSSEC(t *testing.T) {
	var zones []*labdns.Zone
	for _, d := range []string{"good.test", "plain.test", "tamper.test"} {
		zones = append(zones, labtest.Zone(t, d, "mail IN A 192.0.2.1"))
	}
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"plain.test": {Unsigned: true}, "tamper.test": {TamperRRSIG: true}}}, zones...)
	path := filepath.Join(t.TempDir(), "admin.sock")
	s := &Server{Cache: dnsx.NewCache(client, dnsx.CacheOptions{}), Log: slog.New(slog.DiscardHandler)}
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	c := NewClient(path)
	for _, tc := range []struct {
		name, sec, reason, err string
	}{
		{"mail.good.test", "secure", "", ""},
		{"mail.good.test", "secure", "", ""}, // again, from the cache
		{"mail.plain.test", "insecure", "plain.test", ""},
		{"nx.good.test", "secure", "", ""}, // a denial proven by NSEC
		{"mail.tamper.test", "bogus", "", "DNSSEC bogus: mail.tamper.test A: RRSIG"},
	} {
		a, err := c.Query(tc.name, "A")
		if err != nil {
			t.Fatal(err)
		}
		if a.DNSSEC != tc.sec || !strings.Contains(a.DNSSECReason, tc.reason) || (tc.err == "") != (a.Error == "") || !strings.Contains(a.Error, tc.err) {
			t.Errorf("%s: %+v, want %s (%q) error %q", tc.name, a, tc.sec, tc.reason, tc.err)
		}
	}
}
