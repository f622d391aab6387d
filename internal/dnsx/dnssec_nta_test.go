package dnsx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// Validating from the root's anchors (no lab anchor), the special-use
// names a lab serves (.test, 127.in-addr.arpa) are insecure by negative
// trust anchor (RFC 7646), signed or not; any other name the lab makes up
// stays bogus unless configured as a negative anchor. With the lab's own
// anchor the special-use names are validated like any other.
func TestDNSSECNegativeAnchors(t *testing.T) {
	zones := func() []*labdns.Zone {
		return []*labdns.Zone{
			labtest.Zone(t, "test"),
			labtest.Zone(t, "example.test", "www IN A 192.0.2.1"),
			labtest.Zone(t, "0.0.127.in-addr.arpa", "1 IN PTR localhost."),
			labtest.Zone(t, "madeup", "www IN A 192.0.2.2"),
		}
	}
	unsigned := labtest.Serve(t, zones()...)
	signed, labClient := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{"tampered.test": {TamperRRSIG: true}}},
		append(zones(), labtest.Zone(t, "tampered.test", "www IN A 192.0.2.3"))...)
	// A lab root delegating straight to direct.test: the DS and the
	// denials are signed by ".", above the negative anchor.
	direct, _ := labtest.ServeSigned(t, labdns.SignConfig{}, labtest.Zone(t, "direct.test", "www IN A 192.0.2.4"))
	client := func(addr string, nta ...string) *dnsx.Client {
		v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, NegativeAnchors: nta})
		if err != nil {
			t.Fatal(err)
		}
		return &dnsx.Client{Servers: []string{addr}, Timeout: 2 * time.Second, Validator: v}
	}
	for _, tc := range []struct {
		what  string
		c     *dnsx.Client
		name  string
		qtype uint16
		want  dnsx.Security
		why   string // substring of the reason (insecure) or of the bogus error
	}{
		{"unsigned lab", client(unsigned.Addr()), "www.example.test", dns.TypeA, dnsx.Insecure, "test: negative trust anchor"},
		{"unsigned lab", client(unsigned.Addr()), "nope.example.test", dns.TypeA, dnsx.Insecure, "test: negative trust anchor"},
		{"unsigned lab", client(unsigned.Addr()), "1.0.0.127.in-addr.arpa", dns.TypePTR, dnsx.Insecure, "127.in-addr.arpa: negative trust anchor"},
		{"unsigned lab", client(unsigned.Addr()), "www.madeup", dns.TypeA, dnsx.Bogus, "DNSSEC bogus"},
		{"configured", client(unsigned.Addr(), "madeup"), "www.madeup", dns.TypeA, dnsx.Insecure, "madeup: negative trust anchor"},
		{"signed lab, root anchors", client(signed.Addr()), "www.example.test", dns.TypeA, dnsx.Insecure, "test: negative trust anchor"},
		{"signed lab, root anchors", client(signed.Addr()), "www.tampered.test", dns.TypeA, dnsx.Insecure, "test: negative trust anchor"},
		{"root-signed delegation", client(direct.Addr()), "direct.test", dns.TypeDS, dnsx.Insecure, "test: negative trust anchor"},
		{"root-signed delegation", client(direct.Addr()), "www.direct.test", dns.TypeA, dnsx.Insecure, "test: negative trust anchor"},
		{"root-signed delegation", client(direct.Addr()), "nope.test", dns.TypeA, dnsx.Insecure, "test: negative trust anchor"},
		{"signed lab, lab anchor", labClient, "www.example.test", dns.TypeA, dnsx.Secure, ""},
		{"signed lab, lab anchor", labClient, "www.tampered.test", dns.TypeA, dnsx.Bogus, "www.tampered.test A: RRSIG"},
	} {
		t.Run(tc.what+"/"+tc.name, func(t *testing.T) {
			a, err := tc.c.Query(context.Background(), tc.name, tc.qtype)
			if tc.want == dnsx.Bogus {
				if !errors.Is(err, dnsx.ErrBogus) || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("want bogus naming %q, got %v, %+v", tc.why, err, a)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Security != tc.want || !strings.Contains(a.SecurityReason, tc.why) {
				t.Errorf("%v (%s), want %v (%s)", a.Security, a.SecurityReason, tc.want, tc.why)
			}
		})
	}
}

// CheckAnchors passes when the servers give the anchor's zone's DNSKEY
// set signed by the anchored key, and fails, naming the anchor, when they
// strip DNSSEC (the unsigned lab stands for such a resolver) or serve
// another root.
func TestDNSSECCheckAnchors(t *testing.T) {
	signed, labClient := labtest.ServeSigned(t, labdns.SignConfig{}, labtest.Zone(t, "example.test", "www IN A 192.0.2.1"))
	// A root without DNSKEY or RRSIGs: what a resolver stripping DNSSEC
	// gives a validator.
	unsigned := labtest.Serve(t, labtest.Zone(t, "."), labtest.Zone(t, "example.test", "www IN A 192.0.2.1"))
	root, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate})
	if err != nil {
		t.Fatal(err)
	}
	// A validator of its own: labClient's has validated "." already.
	lab, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{signed.TrustAnchor().String()}})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECTrustAD})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		c    *dnsx.Client
		want string // "" for no error
	}{
		{"lab anchor, signed lab", labClient, ""},
		{"lab anchor, stripping server", &dnsx.Client{Servers: []string{unsigned.Addr()}, Timeout: 2 * time.Second, Validator: lab}, "DNSSEC trust anchor .: not validated"},
		{"root anchors, lab root", &dnsx.Client{Servers: []string{signed.Addr()}, Timeout: 2 * time.Second, Validator: root}, "no key matching trust anchor 20326, 38696"},
		{"trust_ad", &dnsx.Client{Servers: []string{unsigned.Addr()}, Timeout: 2 * time.Second, Validator: ad}, ""},
	} {
		err := tc.c.Validator.CheckAnchors(context.Background(), tc.c)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.what, err, tc.want)
		}
	}
}
