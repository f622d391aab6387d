package labdns

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The lab answers below a DNAME as RFC 6672 §2.3 says: the DNAME, the
// CNAME synthesized from it (owner = the name asked, TTL = the DNAME's),
// then the answer at the target; with DO, the DNAME's RRSIG and none for
// the synthesized CNAME (§5.3.1). A synthesis longer than a domain name
// is YXDOMAIN (§2.2).
func TestSignedDNAME(t *testing.T) {
	long := strings.Repeat("a", 63)
	zp := dns.NewZoneParser(strings.NewReader("$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 30\n"+
		"old 120 IN DNAME new.example.test.\nwww.new IN A 192.0.2.1\n"+
		"big IN DNAME "+long+"."+long+"."+long+".example.test.\n"), "example.test.", "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	z, err := NewZone(rrs)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(SignConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewWithZones(Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Signer: signer}, z)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })

	for _, do := range []bool{false, true} {
		r := ask(t, s.Addr(), "www.old.example.test.", dns.TypeA, do)
		var got []string
		sigs := map[uint16]bool{}
		for _, rr := range r.Answer {
			if sig, ok := rr.(*dns.RRSIG); ok {
				sigs[sig.TypeCovered] = true
				continue
			}
			got = append(got, rr.String())
		}
		want := []string{
			"old.example.test.\t120\tIN\tDNAME\tnew.example.test.",
			"www.old.example.test.\t120\tIN\tCNAME\twww.new.example.test.",
			"www.new.example.test.\t300\tIN\tA\t192.0.2.1",
		}
		if r.Rcode != dns.RcodeSuccess || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("do=%v: rcode %d answer\n%s\nwant\n%s", do, r.Rcode, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if do && (!sigs[dns.TypeDNAME] || !sigs[dns.TypeA] || sigs[dns.TypeCNAME]) || !do && len(sigs) > 0 {
			t.Errorf("do=%v: RRSIGs over %v, want DNAME and A only with DO", do, sigs)
		}
	}
	// The DNAME owner itself is not redirected.
	if r := ask(t, s.Addr(), "old.example.test.", dns.TypeDNAME, true); len(r.Answer) != 2 {
		t.Errorf("DNAME at its owner: %v", r.Answer)
	}
	if r := ask(t, s.Addr(), long+".big.example.test.", dns.TypeA, false); r.Rcode != dns.RcodeYXDomain {
		t.Errorf("overlong synthesis: rcode %s, want YXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}
