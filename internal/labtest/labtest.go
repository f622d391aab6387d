// Package labtest starts lab DNS servers on loopback for tests and
// benchmarks: the project's lab zones (testdata/lab), or zones written
// inline. The traffic is real DNS packets; only the data is the test's.
package labtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

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
	return udpServer(tb, func([]byte) []byte { return nil })
}

// Slow starts a UDP DNS proxy on loopback that passes every query to
// upstream and its answer back after delay, and returns its address.
func Slow(tb testing.TB, upstream string, delay time.Duration) string {
	return udpServer(tb, func(q []byte) []byte {
		time.Sleep(delay)
		c, err := net.Dial("udp", upstream)
		if err != nil {
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(q); err != nil {
			return nil
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			return nil
		}
		return buf[:n]
	})
}

// Garbage starts a UDP "DNS server" on loopback that answers every query
// with the query's ID followed by bytes that are no DNS message, and
// returns its address.
func Garbage(tb testing.TB) string {
	return udpServer(tb, func(q []byte) []byte {
		if len(q) < 2 {
			return nil
		}
		junk := []byte{q[0], q[1], 0x81, 0x80, 0x00, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xff, 0x13, 0x37}
		return append(junk, q[2:min(len(q), 9)]...)
	})
}

// udpServer answers each UDP datagram with answer(query), concurrently;
// a nil answer sends nothing.
func udpServer(tb testing.TB, answer func(q []byte) []byte) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	go func() {
		for {
			buf := make([]byte, 1500)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			go func() {
				if a := answer(buf[:n]); a != nil {
					pc.WriteTo(a, from)
				}
			}()
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

// CostlyRSAKeyRecord is a DKIM key record an attacker can publish for
// free: a random odd modulus of bits bits (nothing to factor or generate,
// so 262,144 bits cost nothing to make) with exponent e. A verifier that
// used it would pay for the modular exponentiation.
func CostlyRSAKeyRecord(tb testing.TB, bits, e int) string {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	if err != nil {
		tb.Fatal(err)
	}
	n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
	der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: e})
	if err != nil {
		tb.Fatal(err)
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}
