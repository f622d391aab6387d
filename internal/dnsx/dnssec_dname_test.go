package dnsx_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// DNAME answers on the signed lab (RFC 6672 §5.3.1): the DNAME is signed,
// the CNAME synthesized from it is not and stands only when it is exactly
// the synthesis.
func TestDNSSECDNAME(t *testing.T) {
	z := func(origin string, records ...string) *labdns.Zone { return labtest.Zone(t, origin, records...) }
	_, c := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"hashed.test":   {NSEC3: true, NSEC3Salt: "abcd", NSEC3Iterations: 1},
		"forged.test":   {WrongDNAMESynthesis: true},
		"tampered.test": {TamperRRSIG: true},
		"plain.test":    {Unsigned: true},
	}},
		z("test"),
		z("dname.test", "old IN DNAME new.dname.test.", "www.new IN A 192.0.2.110", "ext IN DNAME target.test.", "far IN DNAME hashed.test."),
		z("target.test", "www IN A 192.0.2.111"),
		z("hashed.test", "www IN A 192.0.2.112"),
		z("forged.test", "old IN DNAME new.forged.test.", "www.new IN A 192.0.2.113"),
		z("tampered.test", "old IN DNAME new.tampered.test.", "www.new IN A 192.0.2.114"),
		z("plain.test", "old IN DNAME new.plain.test.", "www.new IN A 192.0.2.115"),
	)
	for _, tc := range []struct {
		name  string
		want  dnsx.Security
		addr  string // the A record reached; "" with nx
		nx    bool
		bogus string // substring of the reason; the lookup fails
		qtype uint16 // default A
		cname string // the CNAME target answered (qtype CNAME)
	}{
		{name: "www.old.dname.test", want: dnsx.Secure, addr: "192.0.2.110"},
		{name: "WWW.Old.dname.test", want: dnsx.Secure, addr: "192.0.2.110"},
		{name: "www.ext.dname.test", want: dnsx.Secure, addr: "192.0.2.111"}, // into another zone
		{name: "www.far.dname.test", want: dnsx.Secure, addr: "192.0.2.112"}, // into an NSEC3 zone
		{name: "nope.old.dname.test", want: dnsx.Secure, nx: true},           // the target's denial is checked
		{name: "nope.far.dname.test", want: dnsx.Secure, nx: true},
		{name: "www.old.plain.test", want: dnsx.Insecure, addr: "192.0.2.115"},
		{name: "www.old.dname.test", qtype: dns.TypeCNAME, want: dnsx.Secure, cname: "www.new.dname.test."}, // the synthesized CNAME asked for
		{name: "www.old.forged.test", qtype: dns.TypeCNAME, bogus: "does not match its synthesis"},
		{name: "www.old.forged.test", bogus: "CNAME www.old.forged.test -> forged.www.new.forged.test does not match its synthesis from DNAME old.forged.test -> www.new.forged.test"},
		{name: "www.old.tampered.test", bogus: "old.tampered.test DNAME: RRSIG by key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qtype := dns.TypeA
			if tc.qtype != 0 {
				qtype = tc.qtype
			}
			a, err := c.Query(context.Background(), tc.name, qtype)
			if tc.bogus != "" {
				var be *dnsx.BogusError
				if !errors.As(err, &be) || !dnsx.IsTemporary(err) {
					t.Fatalf("want a temporary bogus error, got %v, %+v", err, a)
				}
				if !strings.Contains(be.Reason, tc.bogus) {
					t.Errorf("reason %q does not say %q", be.Reason, tc.bogus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Security != tc.want {
				t.Errorf("security = %v (%s), want %v", a.Security, a.SecurityReason, tc.want)
			}
			if a.NXDomain() != tc.nx {
				t.Errorf("nxdomain = %v, want %v (%v)", a.NXDomain(), tc.nx, a.Records)
			}
			var got []string
			for _, rr := range a.Records {
				switch x := rr.(type) {
				case *dns.A:
					got = append(got, x.A.String())
				case *dns.CNAME:
					got = append(got, x.Target)
				}
			}
			if tc.cname != "" {
				tc.addr = tc.cname
			}
			if want := []string{tc.addr}; !tc.nx && (len(got) != 1 || got[0] != tc.addr) {
				t.Errorf("addresses %v, want %v", got, want)
			}
		})
	}
}

func TestSynthesizeDNAME(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct{ qname, owner, target, want string }{
		{"www.old.example.test", "old.example.test", "new.example.test", "www.new.example.test."},
		{"A.B.Old.Example.Test.", "old.example.test.", "New.Example.Test.", "a.b.new.example.test."},
		{"x.example.test", "example.test", ".", "x."},
		{"x.y", ".", "z.test", "x.y.z.test."},
		{"old.example.test", "old.example.test", "new.example.test", ""}, // the owner itself is not redirected
		{"www.other.test", "old.example.test", "new.example.test", ""},
		{long + "." + long + "." + long + ".o.test", "o.test", long + ".t", ""}, // over 255 octets: YXDOMAIN
	} {
		d := &dns.DNAME{Hdr: dns.RR_Header{Name: tc.owner, Rrtype: dns.TypeDNAME}, Target: tc.target}
		if got := dnsx.SynthesizeDNAME(tc.qname, d); got != tc.want {
			t.Errorf("SynthesizeDNAME(%q, %s -> %s) = %q, want %q", tc.qname, tc.owner, tc.target, got, tc.want)
		}
	}
}
