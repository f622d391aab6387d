package dnsx_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// forger is an on-path attacker on loopback: it relays queries to the lab
// server over UDP and rewrites the answers with mutate.
func forger(tb testing.TB, upstream string, mutate func(q, resp *dns.Msg) *dns.Msg) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			resp, err := dns.Exchange(q, upstream)
			if err != nil {
				continue
			}
			resp = mutate(q, resp)
			out, err := resp.Pack()
			if err != nil {
				continue
			}
			pc.WriteTo(out, from)
		}
	}()
	return pc.LocalAddr().String()
}

func without(rrs []dns.RR, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != t {
			out = append(out, rr)
		}
	}
	return out
}

// Forged and stripped answers, as an on-path attacker or a poisoned cache
// would give them, are bogus (a temperror), never secure or insecure.
func TestDNSSECForgeries(t *testing.T) {
	s, anchor := signedLab(t)
	isA := func(q *dns.Msg) bool { return q.Question[0].Qtype == dns.TypeA }
	// forgeA rewrites the addresses of an A answer, its RRSIG left as is.
	forgeA := func(q, r *dns.Msg) *dns.Msg {
		if isA(q) {
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					a.A = net.IPv4(203, 0, 113, 66)
				}
			}
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		qname  string
		mutate func(q, resp *dns.Msg) *dns.Msg
		want   string // part of the bogus reason
	}{
		{"signatures stripped from the answer", "www.example.test", func(q, r *dns.Msg) *dns.Msg {
			if isA(q) {
				r.Answer = without(r.Answer, dns.TypeRRSIG)
			}
			return r
		}, "www.example.test A: no RRSIG, and zone example.test is signed"},
		{"address forged", "www.example.test", forgeA, "www.example.test A: RRSIG by key"},
		{"another name's denial replayed", "www.example.test", func(q, r *dns.Msg) *dns.Msg {
			if !isA(q) {
				return r
			}
			other := new(dns.Msg)
			other.SetQuestion("nope.example.test.", dns.TypeA)
			other.SetEdns0(1232, true)
			d, err := dns.Exchange(other, s.Addr())
			if err != nil {
				return r
			}
			d.Id, d.Question = q.Id, q.Question
			return d
		}, "no NSEC covers the name"},
		{"DS stripped (downgrade to insecure)", "www.example.test", func(q, r *dns.Msg) *dns.Msg {
			if q.Question[0].Qtype == dns.TypeDS && q.Question[0].Name == "example.test." {
				r.Answer = nil
				r.Ns = without(without(r.Ns, dns.TypeNSEC), dns.TypeRRSIG)
			}
			return r
		}, "example.test DS: no DS and no signed proof of its absence from test"},
		{"another name's NSEC3 opt-out proof replayed (downgrade to insecure)", "www.signed.optout.test", func(q, r *dns.Msg) *dns.Msg {
			if q.Question[0].Qtype != dns.TypeDS || q.Question[0].Name != "signed.optout.test." {
				return r
			}
			other := new(dns.Msg)
			other.SetQuestion("zz.optout.test.", dns.TypeDS)
			other.SetEdns0(1232, true)
			d, err := dns.Exchange(other, s.Addr())
			if err != nil {
				return r
			}
			d.Id, d.Question = q.Id, q.Question
			return d
		}, "signed.optout.test DS: no NSEC3 covers the next closer name signed.optout.test"},
		{"wildcard answer without its proof", "x.wild.example.test", func(q, r *dns.Msg) *dns.Msg {
			if isA(q) {
				r.Ns = nil
			}
			return r
		}, "wildcard answer without proof that x.wild.example.test does not exist"},
		{"NXDOMAIN without the wildcard denied", "nope.example.test", func(q, r *dns.Msg) *dns.Msg {
			if !isA(q) {
				return r
			}
			// Keep only the NSEC that covers the name (and the SOA).
			var keep []dns.RR
			for _, rr := range r.Ns {
				if n, ok := rr.(*dns.NSEC); ok && !(dnsx.CanonicalCompare(n.Hdr.Name, "nope.example.test.") < 0 && dnsx.CanonicalCompare("nope.example.test.", n.NextDomain) < 0) {
					continue
				}
				if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeNSEC {
					continue
				}
				keep = append(keep, rr)
			}
			for _, rr := range r.Ns {
				if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeNSEC {
					for _, k := range keep {
						if k.Header().Rrtype == dns.TypeNSEC && k.Header().Name == sig.Hdr.Name {
							keep = append(keep, sig)
						}
					}
				}
			}
			r.Ns = keep
			return r
		}, "no NSEC denies the wildcard *.example.test"},
		{"CNAME to a forged target", "alias.example.test", forgeA, "www.example.test A: RRSIG by key"},
		{"20 keys in the DNSKEY set", "www.example.test", func(q, r *dns.Msg) *dns.Msg {
			if q.Question[0].Qtype == dns.TypeDNSKEY && q.Question[0].Name == "example.test." {
				for i := range 19 {
					k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 300},
						Flags: 256, Protocol: 3, Algorithm: dns.ECDSAP256SHA256, PublicKey: strings.Repeat("A", 80) + string(rune('A'+i)) + "A=="}
					r.Answer = append(r.Answer, k)
				}
			}
			return r
		}, "example.test DNSKEY: 20 keys, more than 16"},
		{"50 bad signatures (KeyTrap)", "www.example.test", func(q, r *dns.Msg) *dns.Msg {
			if !isA(q) {
				return r
			}
			var sig *dns.RRSIG
			for _, rr := range r.Answer {
				if s, ok := rr.(*dns.RRSIG); ok {
					sig = s
				}
			}
			if sig == nil {
				return r
			}
			r.Answer = without(r.Answer, dns.TypeRRSIG)
			for i := range 50 {
				bad := dns.Copy(sig).(*dns.RRSIG)
				bad.Signature = strings.Repeat("A", len(bad.Signature)-8) + strings.Repeat(string(rune('B'+i%20)), 8)
				r.Answer = append(r.Answer, bad)
			}
			return r
		}, "more than 8 RRSIGs, none verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := forger(t, s.Addr(), tc.mutate)
			c := validatingClient(t, addr, anchor)
			c.UDPSize = 65000
			a, err := c.Query(context.Background(), tc.qname, dns.TypeA)
			if !errors.Is(err, dnsx.ErrBogus) || !dnsx.IsTemporary(err) {
				t.Fatalf("want bogus, got %v %+v", err, a)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("reason %q does not say %q", err, tc.want)
			}
		})
	}
}

// A zone found bogus is remembered for a while (RFC 4035 §4.7): asking
// again does not walk its chain again.
func TestDNSSECBogusRemembered(t *testing.T) {
	s, anchor := signedLab(t)
	var dnskeys atomic.Int32
	addr := forger(t, s.Addr(), func(q, r *dns.Msg) *dns.Msg {
		if q.Question[0].Qtype == dns.TypeDNSKEY && q.Question[0].Name == "expired.test." {
			dnskeys.Add(1)
		}
		return r
	})
	c := validatingClient(t, addr, anchor)
	for range 3 {
		if _, err := c.Query(context.Background(), "www.expired.test", dns.TypeA); !errors.Is(err, dnsx.ErrBogus) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := dnskeys.Load(); n != 1 {
		t.Errorf("expired.test DNSKEY asked %d times for 3 lookups, want 1", n)
	}
}

// trust_ad: a validating resolver on loopback that sets AD makes the
// answer secure; the query asks for AD (RFC 6840 §5.7) and does not set
// DO or CD, so such a resolver still refuses bogus data itself.
func TestDNSSECTrustADFromLoopback(t *testing.T) {
	s, _ := signedLab(t)
	var asked atomic.Bool
	addr := forger(t, s.Addr(), func(q, r *dns.Msg) *dns.Msg {
		opt := q.IsEdns0()
		asked.Store(q.AuthenticatedData && !q.CheckingDisabled && (opt == nil || !opt.Do()))
		r.AuthenticatedData = true
		return r
	})
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECTrustAD})
	if err != nil {
		t.Fatal(err)
	}
	c := &dnsx.Client{Servers: []string{addr}, Validator: v}
	a, err := c.Query(context.Background(), "www.example.test", dns.TypeA)
	if err != nil || a.Security != dnsx.Secure {
		t.Fatalf("%v %v", a, err)
	}
	if !asked.Load() {
		t.Error("query did not set AD, or set DO/CD")
	}
}

// Records off the answer's CNAME chain, signed or not, are not the answer:
// an attacker adding them neither spoils a secure answer nor costs work.
func TestDNSSECJunkIgnored(t *testing.T) {
	s, anchor := signedLab(t)
	addr := forger(t, s.Addr(), func(q, r *dns.Msg) *dns.Msg {
		if q.Question[0].Qtype == dns.TypeA {
			junk, _ := dns.NewRR("evil.example.test. 300 IN A 203.0.113.66")
			r.Answer = append(r.Answer, junk)
		}
		return r
	})
	c := validatingClient(t, addr, anchor)
	a, err := c.Query(context.Background(), "www.example.test", dns.TypeA)
	if err != nil || a.Security != dnsx.Secure || len(a.Records) != 1 {
		t.Fatalf("%v %v", a, err)
	}
}

// The chain of trust is bounded in zones: a validator allowed two cannot
// reach www.example.test (example.test, test, the root) and fails closed.
func TestDNSSECMaxZones(t *testing.T) {
	s, anchor := signedLab(t)
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{anchor}, MaxZones: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := &dnsx.Client{Servers: []string{s.Addr()}, Validator: v}
	if _, err := c.Query(context.Background(), "www.example.test", dns.TypeA); !errors.Is(err, dnsx.ErrBogus) || !strings.Contains(err.Error(), "longer than 2 zones") {
		t.Fatalf("err = %v", err)
	}
	if a, err := c.Query(context.Background(), "test", dns.TypeSOA); err != nil || a.Security != dnsx.Secure {
		t.Errorf("test SOA, two zones from the anchor: %v %v", a, err)
	}
}

// An RRSIG naming another signer (the root), put before the genuine one,
// does not hide it: the answer stays secure.
func TestDNSSECExtraSignerIgnored(t *testing.T) {
	s, anchor := signedLab(t)
	addr := forger(t, s.Addr(), func(q, r *dns.Msg) *dns.Msg {
		if q.Question[0].Qtype != dns.TypeA {
			return r
		}
		for _, rr := range r.Answer {
			if sig, ok := rr.(*dns.RRSIG); ok {
				fake := dns.Copy(sig).(*dns.RRSIG)
				fake.SignerName = "."
				r.Answer = append([]dns.RR{fake}, r.Answer...)
				break
			}
		}
		return r
	})
	c := validatingClient(t, addr, anchor)
	a, err := c.Query(context.Background(), "www.example.test", dns.TypeA)
	if err != nil || a.Security != dnsx.Secure {
		t.Fatalf("%v %v", a, err)
	}
}
