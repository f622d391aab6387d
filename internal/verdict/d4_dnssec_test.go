package verdict

import (
	"crypto"
	"net/netip"
	"strings"
	"testing"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
	"mailwall/internal/spf"
)

// d4World serves, signed under a lab root, one mail domain per DNSSEC
// case (each with SPF for 192.0.2.10, a DKIM key at sel._domainkey and
// p=reject), and returns a checker whose resolver validates from the
// lab root's anchor (cached), with a signing key per domain.
func d4World(tb testing.TB, cases map[string]labdns.ZoneSigning, keys map[string]crypto.Signer) *Checker {
	tb.Helper()
	return newChecker(dnsx.NewCache(d4Lab(tb, cases, keys), dnsx.CacheOptions{}))
}

// d4Lab is d4World's lab DNS, and the validating client that asks it.
func d4Lab(tb testing.TB, cases map[string]labdns.ZoneSigning, keys map[string]crypto.Signer) *dnsx.Client {
	tb.Helper()
	zones := []*labdns.Zone{labtest.Zone(tb, "2.0.192.in-addr.arpa", `10 IN PTR mail.good.test.`)}
	for d := range cases {
		rec, err := dkim.PublicKeyRecord(keys[d])
		if err != nil {
			tb.Fatal(err)
		}
		zones = append(zones, labtest.Zone(tb, d, `@ IN TXT "v=spf1 ip4:192.0.2.10 -all"`, `mail IN A 192.0.2.10`,
			`_dmarc IN TXT "v=DMARC1; p=reject"`, dkim.ZoneRecord("sel", d, rec)))
	}
	_, client := labtest.ServeSigned(tb, labdns.SignConfig{Zones: cases}, zones...)
	return client
}

// Authentication-Results says what DNSSEC said of each record a result
// rests on (issue 27): "(2048-bit key; secure)" as OpenDKIM writes it for
// a validated key, "unprotected" for an unsigned zone or a delegation
// without DS, and a tampered or expired signature makes SPF, DKIM and
// DMARC temperror, never pass, naming the failing link.
func TestD4DNSSECInAuthenticationResults(t *testing.T) {
	rsaKey, err := dkim.GenerateKey("rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.Signer{"good.test": rsaKey}
	cases := map[string]labdns.ZoneSigning{
		"good.test":   {},
		"hashed.test": {NSEC3: true},
		"plain.test":  {Unsigned: true},
		"nods.test":   {OmitDS: true},
		"tamper.test": {TamperRRSIG: true},
		"expire.test": {ExpireRRSIG: true},
		"wrong.test":  {WrongDS: true},
	}
	for d := range cases {
		if keys[d] == nil {
			if keys[d], err = dkim.GenerateKey("ed25519", 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := d4World(t, cases, keys)
	for _, tc := range []struct {
		domain           string
		spf, dkim, dmarc string // results
		sec              string // the status each result carries; "" for temperror
		want             []string
	}{
		{"good.test", "pass", "pass", "pass", "secure",
			[]string{"spf=pass (secure) smtp.mailfrom=alice@good.test", "dkim=pass (2048-bit key; secure) header.d=good.test", "dmarc=pass (p=reject dis=none; secure) header.from=good.test"}},
		{"hashed.test", "pass", "pass", "pass", "secure",
			[]string{"spf=pass (secure)", "dkim=pass (256-bit key; secure)", "dmarc=pass (p=reject dis=none; secure)"}},
		{"plain.test", "pass", "pass", "pass", "insecure",
			[]string{"spf=pass (unprotected)", "dkim=pass (256-bit key; unprotected)", "dmarc=pass (p=reject dis=none; unprotected)"}},
		{"nods.test", "pass", "pass", "pass", "insecure",
			[]string{"spf=pass (unprotected)", "dkim=pass (256-bit key; unprotected)", "dmarc=pass (p=reject dis=none; unprotected)"}},
		{"tamper.test", "temperror", "temperror", "temperror", "", []string{"spf=temperror (dns: tamper.test TXT: DNSSEC bogus: tamper.test TXT: RRSIG", "dkim=temperror (key lookup failed", "dmarc=temperror (temporary DNS failure: _dmarc.tamper.test"}},
		{"expire.test", "temperror", "temperror", "temperror", "", []string{"spf=temperror (", "DNSSEC bogus", "dkim=temperror", "dmarc=temperror"}},
		{"wrong.test", "temperror", "temperror", "temperror", "", []string{"spf=temperror (", "DNSSEC bogus", "dkim=temperror", "dmarc=temperror"}},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			m := strings.ReplaceAll(msg, "example.test", tc.domain)
			sig, err := (&dkim.Signer{Domain: tc.domain, Selector: "sel", Key: keys[tc.domain]}).Sign(strings.NewReader(m))
			if err != nil {
				t.Fatal(err)
			}
			env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail." + tc.domain, MailFrom: "alice@" + tc.domain, Rcpts: []string{"bob@rcpt.test"}}
			r := check(t, c, env, sig+m)
			ar := header(r, "Authentication-Results")
			if r.SPF.Result != spf.Result(tc.spf) || len(r.DKIM) != 1 || string(r.DKIM[0].Status) != tc.dkim || r.DMARC.Result != tc.dmarc {
				t.Fatalf("spf=%s dkim=%+v dmarc=%s, want %s %s %s\n%s", r.SPF.Result, r.DKIM, r.DMARC.Result, tc.spf, tc.dkim, tc.dmarc, ar)
			}
			if r.SPF.DNSSEC != tc.sec || r.DKIM[0].KeyDNSSEC != tc.sec || r.DMARC.PolicyDNSSEC != tc.sec {
				t.Errorf("statuses spf %q dkim %q dmarc %q, want %q", r.SPF.DNSSEC, r.DKIM[0].KeyDNSSEC, r.DMARC.PolicyDNSSEC, tc.sec)
			}
			// The dashboard's verdict page shows each stage's reason.
			stages := map[string]string{}
			for _, st := range r.stageResults() {
				stages[st.Stage] = st.Reason
			}
			if tc.sec != "" && (!strings.HasSuffix(stages["spf"], "; dnssec "+tc.sec) || !strings.Contains(stages["dkim"], " key dnssec "+tc.sec) ||
				!strings.HasSuffix(stages["dmarc"], "; policy dnssec "+tc.sec)) {
				t.Errorf("stage reasons lack the DNSSEC status: %q", stages)
			}
			if tc.sec == "" && r.Action == Accept {
				t.Errorf("a bogus zone's mail was accepted: %s %v", r.Verdict, r.Reasons)
			}
			for _, w := range tc.want {
				if !strings.Contains(ar, w) {
					t.Errorf("Authentication-Results lacks %q:\n%s", w, ar)
				}
			}
		})
	}
}

// Without a validator the results say nothing of DNSSEC: the field is as
// it was before issue 27.
func TestD4NoDNSSECNoComment(t *testing.T) {
	c, signer := world(t)
	sig, err := signer.Sign(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}
	r := check(t, c, env, sig+msg)
	ar := header(r, "Authentication-Results")
	if strings.Contains(ar, "secure") || strings.Contains(ar, "unprotected") || r.SPF.DNSSEC != "" || r.DKIM[0].KeyDNSSEC != "" || r.DMARC.PolicyDNSSEC != "" {
		t.Errorf("DNSSEC noted with validation off:\n%s", ar)
	}
}

func TestD4WithDNSSEC(t *testing.T) {
	for _, tc := range []struct {
		comment, status string
		bits            int
		want            string
	}{
		{"", "", 2048, ""},
		{"p=reject dis=none", "", 0, "p=reject dis=none"},
		{"", "secure", 2048, "2048-bit key; secure"},
		{"", "insecure", 1024, "1024-bit key; unprotected"},
		{"", "unvalidated", 0, "unprotected"},
		{"p=reject dis=none", "secure", 0, "p=reject dis=none; secure"},
		{"body hash did not verify", "insecure", 256, "body hash did not verify; 256-bit key; unprotected"},
	} {
		if got := withDNSSEC(tc.comment, tc.status, tc.bits); got != tc.want {
			t.Errorf("withDNSSEC(%q, %q, %d) = %q, want %q", tc.comment, tc.status, tc.bits, got, tc.want)
		}
	}
}

// BenchmarkD4MessageDNSSEC is BenchmarkMessage on a signed lab: with
// dns.dnssec off and validate, answers cached (as a running MX has them)
// and not (every answer fetched, and with validate checked against the
// zone keys the validator keeps).
func BenchmarkD4MessageDNSSEC(b *testing.B) {
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		b.Fatal(err)
	}
	keys := map[string]crypto.Signer{"example.test": key, "good.test": key}
	client := d4Lab(b, map[string]labdns.ZoneSigning{"example.test": {}, "good.test": {}}, keys)
	plain := &dnsx.Client{Servers: client.Servers, Timeout: client.Timeout}
	signer := &dkim.Signer{Domain: "example.test", Selector: "sel", Key: key}
	for _, bc := range []struct {
		name string
		res  dnsx.Resolver
	}{
		{"off/cached", dnsx.NewCache(plain, dnsx.CacheOptions{})},
		{"validate/cached", dnsx.NewCache(client, dnsx.CacheOptions{})},
		{"off/uncached", plain},
		{"validate/uncached", client},
	} {
		b.Run(bc.name, func(b *testing.B) { benchMessage(b, newChecker(bc.res), signer) })
	}
}
