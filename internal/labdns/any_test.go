package labdns

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// ampZone has a name with 12 TXT records of 300 octets, an A and an
// MX: an ANY query of 40 octets for it used to get a 4,096-octet UDP
// answer (issue 23).
func ampZone(t *testing.T) string {
	var b strings.Builder
	b.WriteString("$ORIGIN amp.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	b.WriteString("big IN A 127.0.0.9\nbig IN MX 10 mail.amp.test.\n")
	for i := range 12 {
		fmt.Fprintf(&b, "big IN TXT \"%02d%s\"\n", i, strings.Repeat("x", 250))
	}
	b.WriteString("alias IN CNAME big\n")
	return writeZone(t, t.TempDir(), "amp.test.zone", b.String())
}

// TestMinimalANY: over UDP, ANY gets one RRset (RFC 8482 §4.1), and no
// UDP answer is over 1232 octets whatever EDNS size the client offers;
// TCP answers ANY in full.
func TestMinimalANY(t *testing.T) {
	s := startServer(t, Config{Zones: []ZoneFile{{Path: ampZone(t)}}})
	for _, edns := range []uint16{0, 1232, 4096, 65535} {
		r := query(t, s.Addr(), "udp", "big.amp.test", dns.TypeANY, edns)
		packed, _ := r.Pack()
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeA || r.Truncated {
			t.Errorf("ANY, EDNS %d: %s", edns, r)
		}
		if len(packed) > 200 {
			t.Errorf("ANY, EDNS %d: %d octets", edns, len(packed))
		}
		r = query(t, s.Addr(), "udp", "big.amp.test", dns.TypeTXT, edns)
		packed, _ = r.Pack()
		if len(packed) > MaxUDPSize || !r.Truncated {
			t.Errorf("TXT, EDNS %d: %d octets, truncated %v", edns, len(packed), r.Truncated)
		}
		if opt := r.IsEdns0(); edns > 0 && (opt == nil || opt.UDPSize() > MaxUDPSize) {
			t.Errorf("TXT, EDNS %d: OPT %v", edns, opt)
		}
	}
	if r := query(t, s.Addr(), "udp", "alias.amp.test", dns.TypeANY, 4096); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Errorf("ANY at a CNAME: %s", r)
	}
	if r := query(t, s.Addr(), "udp", "nothing.amp.test", dns.TypeANY, 4096); r.Rcode != dns.RcodeNameError {
		t.Errorf("ANY for no name: %s", r)
	}
	if r := query(t, s.Addr(), "tcp", "big.amp.test", dns.TypeANY, 4096); len(r.Answer) != 14 {
		t.Errorf("ANY over TCP: %d records", len(r.Answer))
	}
}
