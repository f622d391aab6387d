package dmarc

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

func TestMailbox(t *testing.T) {
	for _, c := range []struct{ uri, want string }{
		{"mailto:dmarc@example.test", "dmarc@example.test"},
		{"MAILTO:Dmarc@Example.TEST", "Dmarc@example.test"},
		{"mailto:d%2Bagg@example.test", "d+agg@example.test"},
		{"mailto:d+agg@example.test?subject=hi", "d+agg@example.test"},
		{"mailto:first.last@sub.example.test", "first.last@sub.example.test"},
		{"mailto:r@b%C3%BCcher.example", "r@xn--bcher-kva.example"},
		// The issue 23 attack: decoded, this is no single address.
		{"mailto:victim%40victim.test%3E%20ORCPT%3Drfc822%3Bx@evil.test", ""},
		{"mailto:victim%40victim.test@evil.test", ""},
		{"mailto:a@evil.test%3E%20NOTIFY%3DNEVER", ""},
		{"mailto:a%0D%0ARCPT%20TO:%3Cv@victim.test%3E@evil.test", ""},
		{"mailto:<a@evil.test>", ""},
		{"mailto:a b@evil.test", ""},
		{"mailto:a@evil.test,b@victim.test", ""},
		{"mailto:a%2Cb@victim.test", ""},
		{"mailto:victim%25victim.test@evil.test", ""}, // "%" hack
		{"mailto:victim!victim.test@evil.test", ""},   // bang path
		{"mailto:\"a@b\"@evil.test", ""},
		{"mailto:a@[192.0.2.1]", ""},
		{"mailto:a@localhost", ""},
		{"mailto:a@evil.test.", ""},
		{"mailto:a@-evil.test", ""},
		{"mailto:.a@evil.test", ""},
		{"mailto:a..b@evil.test", ""},
		{"mailto:a@ev_il.test", ""},
		{"mailto:a%zz@evil.test", ""},
		{"mailto:@evil.test", ""},
		{"mailto:a@", ""},
		{"mailto:", ""},
		{"mailto", ""},
		{"https://evil.test/r", ""},
		{"mailto:" + strings.Repeat("a", 65) + "@evil.test", ""},
	} {
		u := URI{URI: c.uri}
		got, err := u.Mailbox()
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %q", c.uri, got)
			}
			if u.Host() != "" || u.Address() != "" {
				t.Errorf("%q: Host %q, Address %q for an unusable URI", c.uri, u.Host(), u.Address())
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.uri, got, err, c.want)
		}
		if u.Address() != got || u.Host() != got[strings.LastIndexByte(got, '@')+1:] {
			t.Errorf("%q: Address %q, Host %q differ from the mailbox %q", c.uri, u.Address(), u.Host(), got)
		}
	}
}

func TestParseURIsRefusesSmuggledAddresses(t *testing.T) {
	uris, bad := ParseURIs("mailto:victim%40victim.test%3E%20ORCPT%3Drfc822%3Bx@evil.test!10m, mailto:ok@evil.test!1k")
	if len(uris) != 1 || uris[0].URI != "mailto:ok@evil.test" || uris[0].MaxSize != 1024 {
		t.Errorf("kept %+v", uris)
	}
	if len(bad) != 1 || !strings.Contains(bad[0], "ignored") {
		t.Errorf("notes %q", bad)
	}
}

// TestDestinationsDecoded: the external destination check is made on the
// decoded address's domain. Before issue 23 it was made on the URI as
// written, so an escaped "@" passed as evil.test (which consents) and the
// report went to victim.test.
func TestDestinationsDecoded(t *testing.T) {
	s := labtest.Serve(t,
		labtest.Zone(t, "test"),
		labtest.Zone(t, "attacker.test", `_dmarc IN TXT "v=DMARC1; p=none"`),
		labtest.Zone(t, "evil.test", `attacker.test._report._dmarc IN TXT "v=DMARC1"`,
			`*._report._dmarc IN TXT "v=DMARC1"`),
		labtest.Zone(t, "victim.test"),
		labtest.Zone(t, "consent.test", `attacker.test._report._dmarc IN TXT "v=DMARC1; rua=mailto:a%40victim.test@consent.test"`),
	)
	e := &Evaluator{Resolver: dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})}
	ctx := context.Background()
	for _, policy := range []string{"attacker.test", "evil.test"} {
		ok, notes, err := e.Destinations(ctx, policy, []URI{
			{URI: "mailto:victim%40victim.test%3E%20ORCPT%3Drfc822%3Bx@evil.test"},
			{URI: "mailto:victim%40victim.test@evil.test"},
			{URI: "mailto:dmarc@evil.test"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(ok) != 1 || ok[0].Address() != "dmarc@evil.test" {
			t.Errorf("%s: destinations %+v", policy, ok)
		}
		if len(notes) != 2 {
			t.Errorf("%s: notes %q", policy, notes)
		}
	}
	// A consenting record's override is held to the same rules: the
	// smuggled one is no URI, so the consented address stays.
	for _, f := range []func(context.Context, string, []URI) ([]URI, []string, error){e.Destinations, e.FailureDestinations} {
		ok, notes, err := f(ctx, "attacker.test", []URI{{URI: "mailto:r@consent.test"}})
		if err != nil || len(ok) != 1 || ok[0].Address() != "r@consent.test" {
			t.Errorf("override: %+v %q %v", ok, notes, err)
		}
	}
}

// FuzzMailbox: whatever a URI holds, an address Mailbox accepts is one
// plain mailbox (nothing an SMTP command line could be split or extended
// by), it checks again as itself, and Host is its domain.
func FuzzMailbox(f *testing.F) {
	f.Add("mailto:dmarc@example.test")
	f.Add("mailto:victim%40victim.test%3E%20ORCPT%3Drfc822%3Bx@evil.test")
	f.Add("mailto:r@b%C3%BCcher.example?subject=x")
	f.Fuzz(func(t *testing.T, s string) {
		u := URI{URI: s}
		addr, err := u.Mailbox()
		if err != nil {
			return
		}
		if strings.ContainsAny(addr, "<> \t\r\n\x00,;:\"()[]\\%!") || strings.Count(addr, "@") != 1 {
			t.Fatalf("%q gave %q", s, addr)
		}
		if again, err := CheckMailbox(addr); err != nil || again != addr {
			t.Fatalf("%q gave %q, which checks as %q %v", s, addr, again, err)
		}
		if u.Host() != addr[strings.IndexByte(addr, '@')+1:] {
			t.Fatalf("%q: host %q for %q", s, u.Host(), addr)
		}
	})
}
