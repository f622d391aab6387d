package labdns

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

func signedServer(t *testing.T, cfg SignConfig) (*Server, *Signer) {
	t.Helper()
	mk := func(origin, text string) *Zone {
		zp := dns.NewZoneParser(strings.NewReader("$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 30\n"+text), origin, "")
		var rrs []dns.RR
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			rrs = append(rrs, rr)
		}
		if err := zp.Err(); err != nil {
			t.Fatal(err)
		}
		z, err := NewZone(rrs)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	signer, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewWithZones(Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Signer: signer},
		mk("example.test.", "www IN A 192.0.2.1\n"), mk("hashed.test.", "www IN A 192.0.2.2\n"), mk("plain.test.", "www IN A 192.0.2.3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, signer
}

func ask(t *testing.T, addr, name string, qtype uint16, do bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, do)
	r, err := dns.Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func count(rrs []dns.RR, t uint16) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			n++
		}
	}
	return n
}

// The signed lab answers as a signed authoritative server does: RRSIGs and
// denial records only for DO queries (RFC 3225, RFC 4035 §3.1), a DS at
// the parent for each signed child and none for an unsigned one.
func TestSignedAnswers(t *testing.T) {
	s, _ := signedServer(t, SignConfig{Zones: map[string]ZoneSigning{"hashed.test": {NSEC3: true}, "plain.test": {Unsigned: true}}})
	for _, tc := range []struct {
		name                   string
		qtype                  uint16
		do                     bool
		rcode                  int
		answer, sigs, nsec, n3 int
	}{
		{"www.example.test.", dns.TypeA, false, dns.RcodeSuccess, 1, 0, 0, 0},
		{"www.example.test.", dns.TypeA, true, dns.RcodeSuccess, 1, 1, 0, 0},
		{"example.test.", dns.TypeDNSKEY, true, dns.RcodeSuccess, 1, 1, 0, 0},
		{"example.test.", dns.TypeDS, true, dns.RcodeSuccess, 1, 1, 0, 0}, // from the root
		{"plain.test.", dns.TypeDS, true, dns.RcodeSuccess, 0, 0, 1, 0},   // NODATA: NSEC with NS, no DS
		{"nope.example.test.", dns.TypeA, false, dns.RcodeNameError, 0, 0, 0, 0},
		{"nope.example.test.", dns.TypeA, true, dns.RcodeNameError, 0, 0, 1, 0},
		{"nope.hashed.test.", dns.TypeA, true, dns.RcodeNameError, 0, 0, 0, 1},
		{"www.hashed.test.", dns.TypeMX, true, dns.RcodeSuccess, 0, 0, 0, 1},
		{"www.plain.test.", dns.TypeA, true, dns.RcodeSuccess, 1, 0, 0, 0},
	} {
		r := ask(t, s.Addr(), tc.name, tc.qtype, tc.do)
		all := append(append([]dns.RR(nil), r.Answer...), r.Ns...)
		got := []int{r.Rcode, len(r.Answer) - count(r.Answer, dns.TypeRRSIG), count(r.Answer, dns.TypeRRSIG), min(count(r.Ns, dns.TypeNSEC), 1), min(count(r.Ns, dns.TypeNSEC3), 1)}
		want := []int{tc.rcode, tc.answer, tc.sigs, tc.nsec, tc.n3}
		if !slicesEqual(got, want) {
			t.Errorf("%s %s do=%v: rcode, answer, sigs, nsec, nsec3 = %v, want %v\n%v", tc.name, dns.TypeToString[tc.qtype], tc.do, got, want, r)
		}
		if !tc.do && count(all, dns.TypeRRSIG)+count(all, dns.TypeNSEC)+count(all, dns.TypeNSEC3) > 0 {
			t.Errorf("%s without DO carries DNSSEC records", tc.name)
		}
		if opt := r.IsEdns0(); opt == nil || opt.Do() != tc.do {
			t.Errorf("%s: DO not echoed as %v", tc.name, tc.do)
		}
	}
}

// Zones set again (a reload, an UPDATE) are signed afresh with the same
// keys: the trust anchor holds, and no DS or DNSKEY is doubled.
func TestSignedResetKeepsAnchor(t *testing.T) {
	s, signer := signedServer(t, SignConfig{})
	anchor := signer.TrustAnchor().String()
	zones := *s.zones.Load()
	var again []*Zone
	for _, z := range zones {
		again = append(again, z)
	}
	if err := s.SetZones(again...); err != nil {
		t.Fatal(err)
	}
	if signer.TrustAnchor().String() != anchor {
		t.Error("anchor changed")
	}
	if r := ask(t, s.Addr(), "example.test.", dns.TypeDS, true); count(r.Answer, dns.TypeDS) != 1 {
		t.Errorf("DS set after reset: %v", r.Answer)
	}
	if r := ask(t, s.Addr(), "example.test.", dns.TypeDNSKEY, true); count(r.Answer, dns.TypeDNSKEY) != 1 {
		t.Errorf("DNSKEY set after reset: %v", r.Answer)
	}
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{anchor}})
	if err != nil {
		t.Fatal(err)
	}
	c := &dnsx.Client{Servers: []string{s.Addr()}, Validator: v, Timeout: 2 * time.Second}
	if a, err := c.Query(context.Background(), "www.example.test", dns.TypeA); err != nil || a.Security != dnsx.Secure {
		t.Errorf("after reset: %v %v", a, err)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A TSIG-signed UPDATE (update.go) to a signed zone is signed in turn: the
// new address validates as secure from the same trust anchor.
func TestSignedUpdate(t *testing.T) {
	dir := t.TempDir()
	signer, err := NewSigner(SignConfig{Zones: map[string]ZoneSigning{"upd.test": {NSEC3: true}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{
		Zones:      []ZoneFile{{Path: writeZone(t, dir, "upd.test.zone", updZoneTx)}},
		UpdateKeys: []UpdateKey{{Name: updKey, Secret: updSecret, Zones: []string{"upd.test"}}},
		Signer:     signer,
	})
	if r, err := sendUpdate(t, s, mailUpdate(updZone), updKey, dns.HmacSHA256, updSecret); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update: %v %v", r, err)
	}
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{signer.TrustAnchor().String()}})
	if err != nil {
		t.Fatal(err)
	}
	c := &dnsx.Client{Servers: []string{s.Addr()}, Validator: v}
	a, err := c.Query(context.Background(), "mail.upd.test", dns.TypeA)
	if err != nil || a.Security != dnsx.Secure || len(a.Records) != 1 || a.Records[0].(*dns.A).A.String() != "127.0.0.20" {
		t.Fatalf("after update: %v %v", a, err)
	}
}

// With a key directory the keys, and so the trust anchor, survive a
// restart; the private key is not readable by others.
func TestSignerKeyDir(t *testing.T) {
	dir := t.TempDir()
	a, err := NewSigner(SignConfig{KeyDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSigner(SignConfig{KeyDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if a.TrustAnchor().String() != b.TrustAnchor().String() {
		t.Errorf("anchor changed across a restart:\n%s\n%s", a.TrustAnchor(), b.TrustAnchor())
	}
	fi, err := os.Stat(filepath.Join(dir, "root.13.private"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key file: %v %v", fi, err)
	}
	c, err := NewSigner(SignConfig{KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustAnchor().String() == a.TrustAnchor().String() {
		t.Error("another directory, the same key")
	}
}
