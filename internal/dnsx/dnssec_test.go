package dnsx_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
	"mailwall/internal/spf"
)

// signedLab serves, on loopback, a lab root and zones signed (or broken)
// in every way the validator must tell apart, and returns the server and
// the root's trust anchor.
func signedLab(tb testing.TB) (*labdns.Server, string) {
	tb.Helper()
	z := func(origin string, records ...string) *labdns.Zone { return labtest.Zone(tb, origin, records...) }
	spfRec := `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"`
	zones := []*labdns.Zone{
		z("test"),
		z("example.test", "www IN A 192.0.2.10", spfRec, "*.wild IN A 192.0.2.11", "alias IN CNAME www", "out IN CNAME www.unsigned.test.", "a.b.c IN A 192.0.2.12"),
		z("nsec3.test", "www IN A 192.0.2.20", spfRec, "deep.er IN A 192.0.2.21"),
		z("unsigned.test", "www IN A 192.0.2.30", spfRec),
		z("tampered.test", "www IN A 192.0.2.40", spfRec),
		z("expired.test", "www IN A 192.0.2.50", spfRec),
		z("nods.test", "www IN A 192.0.2.60", spfRec),
		z("wrongds.test", "www IN A 192.0.2.70", spfRec),
		z("optout.test", "www IN A 192.0.2.80"),
		z("sub.optout.test", "www IN A 192.0.2.81"),
		z("signed.optout.test", "www IN A 192.0.2.82"),
		z("iter.test", "www IN A 192.0.2.90"),
		z("ed.test", "www IN A 192.0.2.100"),
	}
	signer, err := labdns.NewSigner(labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"nsec3.test":      {NSEC3: true, NSEC3Salt: "aabbccdd", NSEC3Iterations: 2},
		"unsigned.test":   {Unsigned: true},
		"tampered.test":   {TamperRRSIG: true},
		"expired.test":    {ExpireRRSIG: true},
		"nods.test":       {OmitDS: true},
		"wrongds.test":    {WrongDS: true},
		"optout.test":     {NSEC3: true, OptOut: true},
		"sub.optout.test": {Unsigned: true},
		"iter.test":       {NSEC3: true, NSEC3Iterations: 150},
		"ed.test":         {Algorithm: dns.ED25519},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := labdns.NewWithZones(labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Signer: signer}, zones...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, signer.TrustAnchor().String()
}

func validatingClient(tb testing.TB, addr, anchor string) *dnsx.Client {
	tb.Helper()
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{anchor}})
	if err != nil {
		tb.Fatal(err)
	}
	return &dnsx.Client{Servers: []string{addr}, Validator: v}
}

func TestDNSSECStatuses(t *testing.T) {
	s, anchor := signedLab(t)
	c := validatingClient(t, s.Addr(), anchor)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  dnsx.Security
		nx    bool
		empty bool
		bogus string // substring of the reason; the lookup fails
		why   string // substring of an insecure answer's reason
	}{
		{name: "www.example.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "example.test", qtype: dns.TypeTXT, want: dnsx.Secure},
		{name: "alias.example.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "a.b.c.example.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "out.example.test", qtype: dns.TypeA, want: dnsx.Insecure, why: "unsigned.test: delegation"}, // CNAME into an unsigned zone
		{name: "x.wild.example.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "nope.example.test", qtype: dns.TypeA, want: dnsx.Secure, nx: true, empty: true},
		{name: "www.example.test", qtype: dns.TypeMX, want: dnsx.Secure, empty: true},
		{name: "b.c.example.test", qtype: dns.TypeA, want: dnsx.Secure, empty: true}, // empty non-terminal
		{name: "www.nsec3.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "nope.nsec3.test", qtype: dns.TypeA, want: dnsx.Secure, nx: true, empty: true},
		{name: "www.nsec3.test", qtype: dns.TypeTXT, want: dnsx.Secure, empty: true},
		{name: "er.nsec3.test", qtype: dns.TypeA, want: dnsx.Secure, empty: true},
		{name: "www.ed.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "www.unsigned.test", qtype: dns.TypeA, want: dnsx.Insecure, why: "unsigned.test: delegation from test without DS"},
		{name: "nope.unsigned.test", qtype: dns.TypeA, want: dnsx.Insecure, nx: true, empty: true},
		{name: "www.nods.test", qtype: dns.TypeA, want: dnsx.Insecure, why: "nods.test: delegation from test without DS"},
		{name: "www.sub.optout.test", qtype: dns.TypeA, want: dnsx.Insecure, why: "opt-out"},
		{name: "www.signed.optout.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "nope.optout.test", qtype: dns.TypeA, want: dnsx.Insecure, nx: true, empty: true, why: "opt-out"},
		{name: "nope.iter.test", qtype: dns.TypeA, want: dnsx.Insecure, nx: true, empty: true, why: "150 iterations"},
		{name: "www.iter.test", qtype: dns.TypeA, want: dnsx.Secure},
		{name: "www.tampered.test", qtype: dns.TypeA, bogus: "www.tampered.test A: RRSIG by key"},
		{name: "nope.tampered.test", qtype: dns.TypeA, bogus: "tampered.test"},
		{name: "www.expired.test", qtype: dns.TypeA, bogus: "RRSIG expired"},
		{name: "www.wrongds.test", qtype: dns.TypeA, bogus: "wrongds.test DNSKEY: no key matching DS"},
	} {
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			a, err := c.Query(context.Background(), tc.name, tc.qtype)
			if tc.bogus != "" {
				var be *dnsx.BogusError
				if !errors.As(err, &be) || !errors.Is(err, dnsx.ErrBogus) || !dnsx.IsTemporary(err) {
					t.Fatalf("want a temporary bogus error, got %v, %+v", err, a)
				}
				if !strings.Contains(be.Reason, tc.bogus) {
					t.Errorf("reason %q does not name %q", be.Reason, tc.bogus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Security != tc.want {
				t.Errorf("security = %v (%s), want %v", a.Security, a.SecurityReason, tc.want)
			}
			if a.NXDomain() != tc.nx || a.Empty() != tc.empty {
				t.Errorf("nxdomain=%v empty=%v, want %v %v (%v)", a.NXDomain(), a.Empty(), tc.nx, tc.empty, a.Records)
			}
			if tc.why != "" && !strings.Contains(a.SecurityReason, tc.why) {
				t.Errorf("reason %q does not say %q", a.SecurityReason, tc.why)
			}
			for _, rr := range a.Records {
				if rr.Header().Rrtype == dns.TypeRRSIG {
					t.Errorf("RRSIG among the records: %v", rr)
				}
			}
		})
	}
}

// A validator without the lab's anchor (the real root's, given
// explicitly: the default adds negative anchors for .test, see
// TestDNSSECNegativeAnchors) cannot vouch for the lab: its DNSKEY matches
// no anchor, so everything under it is bogus.
func TestDNSSECWrongAnchor(t *testing.T) {
	s, _ := signedLab(t)
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: strings.Split(strings.TrimSpace(dnsx.RootAnchors), "\n")})
	if err != nil {
		t.Fatal(err)
	}
	c := &dnsx.Client{Servers: []string{s.Addr()}, Validator: v}
	_, err = c.Query(context.Background(), "www.example.test", dns.TypeA)
	if !errors.Is(err, dnsx.ErrBogus) || !strings.Contains(err.Error(), ". DNSKEY: no key matching trust anchor 20326, 38696") {
		t.Fatalf("err = %v", err)
	}
}

// Without a validator nothing changes: the answer is Unvalidated and
// carries no DNSSEC records.
func TestDNSSECOffUnchanged(t *testing.T) {
	s, _ := signedLab(t)
	c := &dnsx.Client{Servers: []string{s.Addr()}}
	a, err := c.Query(context.Background(), "www.tampered.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if a.Security != dnsx.Unvalidated || len(a.Records) != 1 {
		t.Errorf("security %v records %v", a.Security, a.Records)
	}
}

// An SPF check whose record sits in a bogus zone is a temperror, never the
// pass the forged record would give; in an insecure zone it passes.
func TestDNSSECSPFOutcome(t *testing.T) {
	s, anchor := signedLab(t)
	res := dnsx.NewCache(validatingClient(t, s.Addr(), anchor), dnsx.CacheOptions{})
	ip := netip.MustParseAddr("192.0.2.1")
	for domain, want := range map[string]spf.Result{
		"example.test":  spf.Pass,
		"nsec3.test":    spf.Pass,
		"unsigned.test": spf.Pass,
		"nods.test":     spf.Pass,
		"tampered.test": spf.TempError,
		"expired.test":  spf.TempError,
		"wrongds.test":  spf.TempError,
	} {
		o := (&spf.Checker{Resolver: res, Timeout: time.Minute}).CheckHost(context.Background(), ip, domain, "a@"+domain, "x")
		if o.Result != want {
			t.Errorf("%s: %s (%s), want %s", domain, o.Result, o.Problem, want)
		}
	}
}

// trust_ad believes the AD bit of a resolver on loopback; the lab server
// never sets it (it is authoritative), so answers are insecure there, and
// unvalidated from a server neither on loopback nor listed.
func TestDNSSECTrustAD(t *testing.T) {
	s, _ := signedLab(t)
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECTrustAD})
	if err != nil {
		t.Fatal(err)
	}
	c := &dnsx.Client{Servers: []string{s.Addr()}, Validator: v}
	a, err := c.Query(context.Background(), "www.example.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if a.Security != dnsx.Insecure {
		t.Errorf("security %v (%s)", a.Security, a.SecurityReason)
	}
}

// Every algorithm the validator supports gives secure answers, with
// positive and negative answers; RSASHA1 (5) makes the zone insecure, not
// bogus (RFC 4035 §5.2, RFC 6840 §5.2).
func TestDNSSECAlgorithms(t *testing.T) {
	algs := map[string]uint8{"rsa.test": dns.RSASHA256, "rsa512.test": dns.RSASHA512, "p256.test": dns.ECDSAP256SHA256,
		"p384.test": dns.ECDSAP384SHA384, "ed.test": dns.ED25519, "sha1.test": dns.RSASHA1}
	cfg := labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{}}
	zones := []*labdns.Zone{labtest.Zone(t, "test")}
	for z, alg := range algs {
		cfg.Zones[z] = labdns.ZoneSigning{Algorithm: alg}
		zones = append(zones, labtest.Zone(t, z, "www IN A 192.0.2.1"))
	}
	signer, err := labdns.NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := labdns.NewWithZones(labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Signer: signer}, zones...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	c := validatingClient(t, s.Addr(), signer.TrustAnchor().String())
	for z, alg := range algs {
		want := dnsx.Secure
		if alg == dns.RSASHA1 {
			want = dnsx.Insecure
		}
		for _, name := range []string{"www." + z, "nope." + z} {
			a, err := c.Query(context.Background(), name, dns.TypeA)
			if err != nil || a.Security != want {
				t.Errorf("%s (algorithm %d): %v %v, want %v", name, alg, a, err, want)
			} else if want == dnsx.Insecure && !strings.Contains(a.SecurityReason, "no supported algorithm") {
				t.Errorf("%s: reason %q", name, a.SecurityReason)
			}
		}
	}
}

// The answer's TTL is capped by its RRSIG's original TTL and by the time
// the signature has left (RFC 4035 §5.3.3): here the zone's records say
// 300 s, the signatures expire in 100 s.
func TestDNSSECTTLCappedBySignature(t *testing.T) {
	signer, err := labdns.NewSigner(labdns.SignConfig{Expiration: time.Now().Add(100 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := labdns.NewWithZones(labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Signer: signer},
		labtest.Zone(t, "example.test", "www IN A 192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	c := validatingClient(t, s.Addr(), signer.TrustAnchor().String())
	a, err := c.Query(context.Background(), "www.example.test", dns.TypeA)
	if err != nil || a.Security != dnsx.Secure {
		t.Fatalf("%v %v", a, err)
	}
	if a.TTL > 100 || a.TTL < 90 {
		t.Errorf("TTL %d, want at most the 100 s the signature has left", a.TTL)
	}
}

// One validator shared by concurrent lookups (as the resolver is): each
// gets its own right status while chains are walked and cached under them.
func TestDNSSECConcurrent(t *testing.T) {
	s, anchor := signedLab(t)
	c := validatingClient(t, s.Addr(), anchor)
	want := map[string]dnsx.Security{"www.example.test": dnsx.Secure, "www.nsec3.test": dnsx.Secure, "www.unsigned.test": dnsx.Insecure,
		"www.nods.test": dnsx.Insecure, "www.tampered.test": dnsx.Bogus, "www.wrongds.test": dnsx.Bogus}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for range 8 {
		wg.Go(func() {
			for name, w := range want {
				a, err := c.Query(context.Background(), name, dns.TypeA)
				got := dnsx.Bogus
				if err == nil {
					got = a.Security
				} else if !errors.Is(err, dnsx.ErrBogus) {
					errs <- name + ": " + err.Error()
					continue
				}
				if got != w {
					errs <- name + ": " + got.String()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
