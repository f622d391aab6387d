package domaincheck

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// zone parses zone-file text (with its own SOA) at origin.
func zone(t *testing.T, origin, text string) *labdns.Zone {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader("$TTL 300\n"+text), dns.Fqdn(origin), "test")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	z, err := labdns.NewZone(rrs)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// serverPair starts two lab DNS servers on 127.0.0.2 and 127.0.0.3 with the
// same port, as two authoritative servers on port 53 would be, and returns
// the port. The second may allow zone transfers to loopback.
func serverPair(t *testing.T, zones1, zones2 []*labdns.Zone, openAXFR bool) int {
	t.Helper()
	for range 20 {
		s1, err := labdns.NewWithZones(labdns.Config{Listen: "127.0.0.2:0", Logger: quiet}, zones1...)
		if err != nil {
			t.Fatal(err)
		}
		if err := s1.Start(); err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(s1.Addr())
		cfg := labdns.Config{Listen: "127.0.0.3:" + port, Logger: quiet}
		if openAXFR {
			cfg.AXFRAllow = append(cfg.AXFRAllow, netip.MustParsePrefix("127.0.0.0/8"))
		}
		s2, err := labdns.NewWithZones(cfg, zones2...)
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Start(); err != nil {
			s1.Shutdown(context.Background())
			continue // the port is taken on 127.0.0.3: try another
		}
		t.Cleanup(func() {
			s1.Shutdown(context.Background())
			s2.Shutdown(context.Background())
		})
		var p int
		fmt.Sscan(port, &p)
		return p
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	return 0
}

var quiet = slog.New(slog.DiscardHandler)

func keyRecord(t *testing.T, alg string, bits int) string {
	k, err := dkim.GenerateKey(alg, bits)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := dkim.PublicKeyRecord(k)
	if err != nil {
		t.Fatal(err)
	}
	return dkim.ZoneRecord("sel", "", rec)
}

const reverse = `@ IN SOA ns1.good.test. hostmaster.good.test. 1 3600 900 1209600 300
@ IN NS ns1.good.test.
4.0.0 IN PTR mx.good.test.
`

func goodZone(t *testing.T) *labdns.Zone {
	return zone(t, "good.test", `@ IN SOA ns1 hostmaster 2026112301 3600 900 1209600 300
@ IN NS ns1
@ IN NS ns2
ns1 IN A 127.0.0.2
ns2 IN A 127.0.0.3
@ IN MX 10 mx
mx IN A 127.0.0.4
@ IN TXT "v=spf1 mx -all"
_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"
`+keyRecord(t, "rsa", 2048))
}

// badZone has every fault the checker must find; serial and spf differ
// between the two servers' copies.
func badZone(t *testing.T, serial int, spf string, weakKey string) *labdns.Zone {
	var includes, chain []string
	for i := range 11 {
		includes = append(includes, fmt.Sprintf("inc%d.bad.test", i))
		chain = append(chain, fmt.Sprintf(`inc%d IN TXT "v=spf1 ip4:192.0.2.%d -all"`, i, i))
	}
	return zone(t, "bad.test", fmt.Sprintf(`@ IN SOA ns1 hostmaster %d 3600 900 1209600 300
@ IN NS ns1
@ IN NS ns2
ns1 IN A 127.0.0.2
ns2 IN A 127.0.0.3
@ IN MX 10 mx
mx IN A 127.0.0.5
@ IN TXT %q
two IN TXT "v=spf1 mx -all"
two IN TXT "v=spf1 a -all"
many IN TXT "v=spf1 include:%s -all"
_dmarc IN TXT "v=DMARC1; p=none"
; a 512-bit key (openssl genrsa 512): Go no longer makes keys this small
old._domainkey IN TXT "v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALpV0uTGvjJcO9vyzROWCtUCjpW/JF3rOCTrtriqQ0WMtT4XPrKe0TFz1mcknXCREe7JRzVSHSxeB081ipzzzC8CAwEAAQ=="
test._domainkey IN TXT "v=DKIM1; t=y; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
%s
%s
`, serial, spf, strings.Join(includes, " include:"), strings.Join(chain, "\n"), weakKey))
}

func TestCheck(t *testing.T) {
	weak := keyRecord(t, "rsa", 1024)
	rev := zone(t, "127.in-addr.arpa", reverse)
	// The TLD, empty: the DMARC tree walk asks _dmarc.test.
	tld := zone(t, "test", "@ IN SOA ns1.good.test. hostmaster.good.test. 1 3600 900 1209600 300\n@ IN NS ns1.good.test.\n")
	checker := func(port int, selectors ...string) *Checker {
		return &Checker{
			Resolver:  &dnsx.Client{Servers: []string{fmt.Sprintf("127.0.0.2:%d", port)}, Timeout: time.Second},
			Selectors: selectors,
			NSPort:    port,
			Timeout:   time.Second,
		}
	}
	// bad.test's two servers disagree, and the second gives the zone away.
	c := checker(serverPair(t,
		[]*labdns.Zone{tld, rev, badZone(t, 2026112302, "v=spf1 mx -all", weak)},
		[]*labdns.Zone{tld, rev, badZone(t, 2026112301, "v=spf1 mx ~all", weak)}, true), "sel", "old", "test")
	good := goodZone(t)
	cleanChecker := checker(serverPair(t, []*labdns.Zone{tld, rev, good}, []*labdns.Zone{tld, rev, good}, false), "sel")
	ctx := context.Background()

	bad := c.Check(ctx, "bad.test")
	for _, want := range []struct {
		section string
		status  Status
		text    string
	}{
		{SectionDKIM, Warn, "RSA key of 1024 bits"},
		{SectionDKIM, Fail, "old._domainkey.bad.test: RSA key of 512 bits"},
		{SectionDKIM, Warn, "test._domainkey.bad.test: t=y"},
		{SectionDKIM, Pass, "test._domainkey.bad.test: ed25519 key"},
		{SectionDMARC, Warn, "p=none"},
		{SectionDMARC, Warn, "no rua="},
		{SectionMX, Fail, "mx.bad.test (127.0.0.5): no forward-confirmed reverse DNS"},
		{SectionNS, Fail, "SOA serials differ (ns1.bad.test 2026112302, ns2.bad.test 2026112301)"},
		{SectionNS, Fail, "servers give different TXT answers"},
		{SectionNS, Fail, "ns2.bad.test (127.0.0.3): zone transfer (AXFR) of bad.test allowed"},
		{SectionNS, Pass, "ns1.bad.test (127.0.0.2): zone transfer (AXFR) refused"},
	} {
		if !bad.Has(want.section, want.status, want.text) {
			t.Errorf("bad.test: no %s %s finding with %q", want.section, want.status, want.text)
		}
	}
	if t.Failed() {
		for _, f := range bad.Findings {
			t.Logf("%s %s %s", f.Section, f.Status, f)
		}
	}

	many := c.Check(ctx, "many.bad.test")
	if !many.Has(SectionSPF, Fail, "needs 11 DNS lookups") || many.SPF.Lookups != 11 || len(many.SPF.Tree) != 12 {
		t.Errorf("many.bad.test: %+v", many.SPF)
	}
	if !many.Has(SectionSPF, Info, "include:inc10.bad.test, 0 lookups") {
		t.Errorf("many.bad.test: include tree not listed: %v", many.Findings)
	}
	two := c.Check(ctx, "two.bad.test")
	if !two.Has(SectionSPF, Fail, "2 SPF records") {
		t.Errorf("two.bad.test: %v", two.Findings)
	}

	clean := cleanChecker.Check(ctx, "good.test")
	if n := clean.Count(Fail) + clean.Count(Warn); n != 0 {
		for _, f := range clean.Findings {
			t.Logf("%s %s %s", f.Section, f.Status, f)
		}
		t.Errorf("good.test: %d failures and warnings, want none", n)
	}
	for _, want := range []string{SectionSPF, SectionDKIM, SectionDMARC, SectionMX, SectionNS} {
		if !clean.Has(want, Pass, "") {
			t.Errorf("good.test: no pass in %s", want)
		}
	}
}

func TestDNSDownIsFailureNotPass(t *testing.T) {
	c := &Checker{Resolver: &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 100 * time.Millisecond, Attempts: 1}, Timeout: 100 * time.Millisecond}
	rep := c.Check(context.Background(), "good.test")
	if rep.Count(Pass) != 0 || rep.Count(Fail) == 0 {
		t.Errorf("with DNS down: %v", rep.Findings)
	}
}

func TestSeconds(t *testing.T) {
	for in, want := range map[uint32]string{30: "30 (30s)", 300: "300 (5m)", 3600: "3600 (1h)", 5400: "5400 (1h30m)", 90: "90 (1m30s)", 1209600: "1209600 (336h)"} {
		if got := seconds(in); got != want {
			t.Errorf("seconds(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestDKIMKeyRefusedByVerifiers: a key verifiers refuse (RFC 8301: over
// 4096 bits; mailwall: an exponent other than 65537 too) is a failure
// with the fix, not "RSA key of 8192 bits" passed as fine.
func TestDKIMKeyRefusedByVerifiers(t *testing.T) {
	for _, tc := range []struct {
		bits, e int
		status  Status
		msg     string // in the message
	}{
		{2048, 65537, Pass, "RSA key of 2048 bits"},
		{4096, 65537, Pass, "RSA key of 4096 bits"},
		{1024, 65537, Warn, "RSA key of 1024 bits: weak"},
		{512, 65537, Fail, "verifiers reject keys under 1024 bits (RFC 8301 §3.2; mailwall: dkim=policy)"},
		{4097, 65537, Fail, "RSA key of 4097 bits; at most 4096 accepted (RFC 8301): verifiers refuse the key"},
		{8192, 65537, Fail, "RSA key of 8192 bits; at most 4096 accepted (RFC 8301): verifiers refuse the key"},
		{2048, 3, Fail, "RSA key exponent 3; only 65537 accepted: verifiers refuse the key"},
		{2048, 1<<31 - 1, Fail, "RSA key exponent 2147483647; only 65537 accepted"},
	} {
		t.Run(fmt.Sprintf("%d-%d", tc.bits, tc.e), func(t *testing.T) {
			r := &run{c: &Checker{}, ctx: context.Background(), rep: &Report{}}
			r.dkimKey("k._domainkey.example.test", labtest.CostlyRSAKeyRecord(t, tc.bits, tc.e))
			if len(r.rep.Findings) != 1 {
				t.Fatalf("findings %+v", r.rep.Findings)
			}
			f := r.rep.Findings[0]
			if f.Section != SectionDKIM || f.Status != tc.status || !strings.Contains(f.Message, tc.msg) {
				t.Errorf("%s %q, want %s %q", f.Status, f.Message, tc.status, tc.msg)
			}
			if tc.status == Fail && !strings.Contains(f.Fix, "mailwall dkim keygen --bits 2048") {
				t.Errorf("fix %q", f.Fix)
			}
		})
	}
}
