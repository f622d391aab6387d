package labdns

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var testZone = `; BIND-style zone with the usual forms
$ORIGIN example.test.
$TTL 300
@        IN SOA ns1 hostmaster ( 7 3600 600 86400
                                60 ) ; minimum on its own line
         IN NS  ns1
ns1      IN A   127.0.0.1
mail  600 IN A  127.0.0.2
         IN AAAA ::2
@        IN MX  10 mail
@        IN TXT "v=spf1 " "ip4:127.0.0.2 -all"
alias    IN CNAME mail
ext      IN CNAME host.example.org.
sel._domainkey IN TXT "v=DKIM1; k=rsa; p=MIGf"
*.wild   IN TXT "wildcard"
big      IN TXT "` + strings.Repeat("x", 250) + `" "` + strings.Repeat("y", 250) + `"
big      IN TXT "` + strings.Repeat("z", 250) + `"
2.0.0.127.in-addr.arpa. IN PTR mail
`

func writeZone(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func query(t *testing.T, addr, net, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], net, err)
	}
	return resp
}

func TestParseZoneFileOutOfZoneRecordRejected(t *testing.T) {
	dir := t.TempDir()
	// The reverse PTR in testZone lies outside example.test: an error
	// naming it, as BIND's "out of zone data" would be.
	p := writeZone(t, dir, "example.test.zone", testZone)
	_, err := ParseZoneFile(p, "")
	if err == nil || !strings.Contains(err.Error(), "outside zone") {
		t.Fatalf("got %v, want an out-of-zone error", err)
	}
}

func labZone(t *testing.T) (string, string) {
	dir := t.TempDir()
	text := strings.Replace(testZone, "2.0.0.127.in-addr.arpa. IN PTR mail\n", "", 1)
	return dir, writeZone(t, dir, "db.example.test", text)
}

func TestAnswers(t *testing.T) {
	_, path := labZone(t)
	s := startServer(t, Config{Zones: []ZoneFile{{Path: path}}})
	addr := s.Addr()

	r := query(t, addr, "udp", "example.test", dns.TypeTXT, 0)
	if !r.Authoritative || r.RecursionAvailable || len(r.Answer) != 1 {
		t.Fatalf("TXT: %v", r)
	}
	if got := r.Answer[0].(*dns.TXT).Txt; len(got) != 2 || got[0]+got[1] != "v=spf1 ip4:127.0.0.2 -all" {
		t.Errorf("multi-string TXT = %q", got)
	}
	if r := query(t, addr, "udp", "mail.example.test", dns.TypeA, 0); len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 600 {
		t.Errorf("A with own TTL: %v", r.Answer)
	}
	if r := query(t, addr, "udp", "MAIL.Example.TEST", dns.TypeAAAA, 0); len(r.Answer) != 1 {
		t.Errorf("case-insensitive AAAA: %v", r)
	}
	// CNAME inside the zone: the chain and the target's records.
	if r := query(t, addr, "udp", "alias.example.test", dns.TypeA, 0); len(r.Answer) != 2 {
		t.Errorf("CNAME chain: %v", r.Answer)
	}
	// NXDOMAIN with the SOA, its TTL lowered to MINIMUM (RFC 2308 §3).
	r = query(t, addr, "udp", "nope.example.test", dns.TypeA, 0)
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Ttl != 60 {
		t.Errorf("NXDOMAIN: %v", r)
	}
	// An empty non-terminal exists: NODATA, not NXDOMAIN (RFC 8020).
	if r := query(t, addr, "udp", "_domainkey.example.test", dns.TypeTXT, 0); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("empty non-terminal: %v", r)
	}
	if r := query(t, addr, "udp", "a.wild.example.test", dns.TypeTXT, 0); len(r.Answer) != 1 || r.Answer[0].Header().Name != "a.wild.example.test." {
		t.Errorf("wildcard: %v", r.Answer)
	}
	// Not our zone: refused, never recursed.
	if r := query(t, addr, "udp", "example.com", dns.TypeA, 0); r.Rcode != dns.RcodeRefused {
		t.Errorf("outside zones: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

func TestTruncationAndTCP(t *testing.T) {
	_, path := labZone(t)
	s := startServer(t, Config{Zones: []ZoneFile{{Path: path}}})
	// Two TXT records of 500 and 250 octets: over 512 bytes.
	r := query(t, s.Addr(), "udp", "big.example.test", dns.TypeTXT, 0)
	if !r.Truncated {
		t.Errorf("UDP answer without EDNS not truncated: %d records", len(r.Answer))
	}
	if r := query(t, s.Addr(), "udp", "big.example.test", dns.TypeTXT, 1232); r.Truncated || len(r.Answer) != 2 {
		t.Errorf("EDNS 1232: truncated=%v answers=%d", r.Truncated, len(r.Answer))
	}
	if r := query(t, s.Addr(), "tcp", "big.example.test", dns.TypeTXT, 0); r.Truncated || len(r.Answer) != 2 {
		t.Errorf("TCP: truncated=%v answers=%d", r.Truncated, len(r.Answer))
	}
}

func TestAXFR(t *testing.T) {
	_, path := labZone(t)
	transfer := func(addr string) ([]dns.RR, error) {
		m := new(dns.Msg)
		m.SetAxfr("example.test.")
		tr := &dns.Transfer{}
		ch, err := tr.In(m, addr)
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for env := range ch {
			if env.Error != nil {
				return rrs, env.Error
			}
			rrs = append(rrs, env.RR...)
		}
		return rrs, nil
	}
	closed := startServer(t, Config{Zones: []ZoneFile{{Path: path}}})
	if rrs, err := transfer(closed.Addr()); err == nil {
		t.Errorf("AXFR with an empty allow list gave %d records", len(rrs))
	}
	other := startServer(t, Config{Zones: []ZoneFile{{Path: path}}, AXFRAllow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if _, err := transfer(other.Addr()); err == nil {
		t.Error("AXFR allowed to a peer outside the allow list")
	}
	open := startServer(t, Config{Zones: []ZoneFile{{Path: path}}, AXFRAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	rrs, err := transfer(open.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if len(rrs) < 10 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		t.Errorf("AXFR: %d records, want SOA first and last", len(rrs))
	}
	// Over UDP, never.
	if r := query(t, open.Addr(), "udp", "example.test", dns.TypeAXFR, 0); r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR over UDP: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestReloadKeepsZonesOnError(t *testing.T) {
	dir, path := labZone(t)
	s := startServer(t, Config{Zones: []ZoneFile{{Path: path}}})
	edited := strings.Replace(testZone, "2.0.0.127.in-addr.arpa. IN PTR mail\n", "new IN A 127.0.0.7\n", 1)
	writeZone(t, dir, "db.example.test", edited)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s.Addr(), "udp", "new.example.test", dns.TypeA, 0); len(r.Answer) != 1 {
		t.Fatalf("record added by reload not served: %v", r)
	}
	writeZone(t, dir, "db.example.test", "$ORIGIN example.test.\n@ IN SOA broken (\n")
	if err := s.Reload(); err == nil {
		t.Fatal("reload of a broken zone file succeeded")
	}
	if r := query(t, s.Addr(), "udp", "new.example.test", dns.TypeA, 0); len(r.Answer) != 1 {
		t.Errorf("zones lost after a failed reload: %v", r)
	}
}

func TestMalformedQueries(t *testing.T) {
	_, path := labZone(t)
	s := startServer(t, Config{Zones: []ZoneFile{{Path: path}}})
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v %v", r, err)
	}
	m = new(dns.Msg)
	m.SetNotify("example.test.")
	if r, _, err := c.Exchange(m, s.Addr()); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v %v", r, err)
	}
	// Garbage bytes over UDP: no answer, no crash; the server still serves.
	conn, err := c.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("\x00\x01garbage"))
	conn.Close()
	if r := query(t, s.Addr(), "udp", "example.test", dns.TypeSOA, 0); len(r.Answer) != 1 {
		t.Errorf("server broken after garbage: %v", r)
	}
}
