// Package labtest starts lab DNS servers on loopback for tests and
// benchmarks: the project's lab zones (testdata/lab), or zones written
// inline. The traffic is real DNS packets; only the data is the test's.
package labtest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"mailwall/internal/labdns"
)

// LabZoneFiles returns the paths of testdata/lab/*.zone.
func LabZoneFiles(tb testing.TB) []string {
	_, file, _, _ := runtime.Caller(0)
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "..", "..", "testdata", "lab", "*.zone"))
	if len(files) == 0 {
		tb.Fatal("labtest: no zone files in testdata/lab")
	}
	return files
}

// Lab serves the project's lab zones and returns the server's address.
func Lab(tb testing.TB) string {
	cfg := labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	for _, f := range LabZoneFiles(tb) {
		cfg.Zones = append(cfg.Zones, labdns.ZoneFile{Path: f})
	}
	s, err := labdns.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	start(tb, s)
	return s.Addr()
}

// Zone builds a zone at origin from records in zone-file syntax, relative
// to origin. An SOA is added: TTL 300, MINIMUM 30 seconds.
func Zone(tb testing.TB, origin string, records ...string) *labdns.Zone {
	tb.Helper()
	origin = dns.Fqdn(origin)
	text := "$ORIGIN " + origin + "\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 30\n" + strings.Join(records, "\n") + "\n"
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "labtest")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		tb.Fatal(err)
	}
	z, err := labdns.NewZone(rrs)
	if err != nil {
		tb.Fatal(err)
	}
	return z
}

// Serve serves zones; SetZones on the result changes them mid-test.
func Serve(tb testing.TB, zones ...*labdns.Zone) *labdns.Server {
	s, err := labdns.NewWithZones(labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}, zones...)
	if err != nil {
		tb.Fatal(err)
	}
	start(tb, s)
	return s
}

func start(tb testing.TB, s *labdns.Server) {
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
}

// Silent starts a UDP "DNS server" on loopback that reads queries and never
// answers, and returns its address: every query to it times out.
func Silent(tb testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// LabZones parses the project's lab zones, to serve them with others:
// Serve(tb, append(LabZones(tb), Zone(tb, ...))...).
func LabZones(tb testing.TB) []*labdns.Zone {
	var zones []*labdns.Zone
	for _, f := range LabZoneFiles(tb) {
		z, err := labdns.ParseZoneFile(f, "")
		if err != nil {
			tb.Fatal(err)
		}
		zones = append(zones, z)
	}
	return zones
}
