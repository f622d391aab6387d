package domaincheck

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// dnssecLab serves the zones signed as cases say, each with its name
// server on 127.0.0.1 at the lab's port, and returns a checker asking it
// without validating (as a check of a broken zone must still see it).
func dnssecLab(t *testing.T, cfg labdns.SignConfig, names []string, more ...*labdns.Zone) *Checker {
	t.Helper()
	zones := more
	for _, d := range names {
		zones = append(zones, labtest.Zone(t, d, "@ IN NS ns1", "ns1 IN A 127.0.0.1", `@ IN TXT "v=spf1 -all"`,
			"@ IN MX 10 mx", "mx IN A 127.0.0.1", `_dmarc IN TXT "v=DMARC1; p=reject"`))
	}
	s, _ := labtest.ServeSigned(t, cfg, zones...)
	_, port, _ := net.SplitHostPort(s.Addr())
	p, _ := strconv.Atoi(port)
	return &Checker{Resolver: &dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, NSPort: p, Timeout: time.Second}
}

func TestD4DNSSECCheck(t *testing.T) {
	zones := map[string]labdns.ZoneSigning{
		"good.test":    {},
		"ed.test":      {Algorithm: dns.ED25519, NSEC3: true},
		"hashed.test":  {NSEC3: true, NSEC3Iterations: 5, NSEC3Salt: "aabbccdd"},
		"nods.test":    {OmitDS: true},
		"plain.test":   {Unsigned: true},
		"wrong.test":   {WrongDS: true},
		"sha1.test":    {Algorithm: dns.RSASHA1},
		"tamper.test":  {TamperRRSIG: true},
		"expired.test": {ExpireRRSIG: true},
	}
	var names []string
	for n := range zones {
		names = append(names, n)
	}
	c := dnssecLab(t, labdns.SignConfig{Zones: zones}, names)
	// A signer that stopped re-signing three days before expiry.
	soon := dnssecLab(t, labdns.SignConfig{Expiration: time.Now().Add(3 * 24 * time.Hour)}, []string{"soon.test"})
	type want struct {
		status Status
		text   string
	}
	for _, tc := range []struct {
		c      *Checker
		domain string
		want   []want
		clean  bool // no fail or warn in the section
	}{
		{c, "good.test", []want{{Pass, "DS at the parent (key tag"}, {Pass, "algorithm 13 (ECDSAP256SHA256)"},
			{Pass, "signatures valid on good.test DNSKEY, good.test SOA, good.test TXT, good.test MX, _dmarc.good.test TXT; the first expires in "},
			{Info, "denied with NSEC"}}, true},
		{c, "ed.test", []want{{Pass, "algorithm 15 (ED25519)"}, {Pass, "NSEC3 with no additional iterations and no salt"}}, true},
		{c, "hashed.test", []want{{Warn, "NSEC3 with 5 additional iterations: RFC 9276"}, {Warn, "NSEC3 salt aabbccdd"}, {Pass, "signatures valid"}}, false},
		{c, "nods.test", []want{{Warn, "unsigned delegation: the zone is signed (1 DNSKEY) but its parent has no DS"}, {Warn, "fix: publish the DS at the registrar: nods.test. 3600 IN DS "}}, false},
		{c, "plain.test", []want{{Info, "not signed"}}, true},
		{c, "wrong.test", []want{{Fail, "no DNSKEY of the zone matches the DS at the parent"}}, false},
		{c, "sha1.test", []want{{Fail, "algorithm 5 (RSASHA1) signs with SHA-1"}}, false},
		{c, "tamper.test", []want{{Fail, "tamper.test TXT: no RRSIG (of 1) verifies"}, {Pass, "DS at the parent"}}, false},
		{c, "expired.test", []want{{Fail, "expired.test DNSKEY: RRSIG expired on"}}, false},
		{soon, "soon.test", []want{{Warn, "RRSIGs expire within 7 days, the first in "}, {Warn, "on soon.test DNSKEY, soon.test SOA, soon.test TXT, soon.test MX, _dmarc.soon.test TXT: once"}}, false},
	} {
		rep := tc.c.Check(context.Background(), tc.domain)
		for _, w := range tc.want {
			if !rep.Has(SectionDNSSEC, w.status, w.text) {
				t.Errorf("%s: no dnssec %s finding with %q", tc.domain, w.status, w.text)
			}
		}
		var dirty bool
		for _, f := range rep.Findings {
			dirty = dirty || f.Section == SectionDNSSEC && (f.Status == Fail || f.Status == Warn)
		}
		if dirty == tc.clean {
			t.Errorf("%s: clean %v, want %v", tc.domain, !dirty, tc.clean)
		}
		if t.Failed() {
			for _, f := range rep.Findings {
				if f.Section == SectionDNSSEC {
					t.Logf("%s %s", f.Status, f)
				}
			}
			return
		}
	}
}

// An RSA key over 4096 bits is refused from its length, before any
// arithmetic with it (a 262,144-bit modulus costs seconds per
// signature); 4096 bits and ECDSA keys are not.
func TestD4OversizeRSA(t *testing.T) {
	key := func(alg uint8, modulusBytes int) *dns.DNSKEY {
		// RFC 3110 §2: exponent length, exponent, modulus.
		raw := append([]byte{3, 1, 0, 1}, bytes.Repeat([]byte{0xff}, modulusBytes)...)
		return &dns.DNSKEY{Hdr: dns.RR_Header{Name: "big.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET},
			Flags: 257, Protocol: 3, Algorithm: alg, PublicKey: base64.StdEncoding.EncodeToString(raw)}
	}
	for _, tc := range []struct {
		k    *dns.DNSKEY
		want bool
	}{
		{key(dns.RSASHA256, 256), false},
		{key(dns.RSASHA256, 512), false},
		{key(dns.RSASHA256, 513), true},
		{key(dns.RSASHA1, 32768), true},
		{key(dns.ECDSAP256SHA256, 1024), false}, // not RSA: its size is fixed by the curve
	} {
		if got := oversizeRSA(tc.k); got != tc.want {
			t.Errorf("algorithm %d, %d bytes: %v, want %v", tc.k.Algorithm, len(tc.k.PublicKey)*3/4, got, tc.want)
		}
	}
}
