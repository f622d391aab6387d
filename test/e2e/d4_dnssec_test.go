package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// TestD4DNSSECMilter: serve (the real binary) with dns.dnssec: validate
// and the lab root's DS as its trust anchor, asking a signed lab DNS.
// Through the milter, a message from a signed domain gets
// Authentication-Results saying "(…; secure)" for SPF, the DKIM key
// ("256-bit key; secure", as OpenDKIM writes it) and the DMARC policy; one
// from an unsigned domain says "unprotected"; one from a zone whose
// signatures were tampered with is deferred, SPF, DKIM and DMARC
// temperror naming the failing link, never a pass.
func TestD4DNSSECMilter(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-d4-dnssec-")
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.PublicKeyRecord(key)
	domains := []string{"d4good.test", "d4plain.test", "d4tamper.test"}
	zones := labtest.LabZones(t)
	for _, d := range domains {
		zones = append(zones, labtest.Zone(t, d, `@ IN TXT "v=spf1 ip4:127.0.0.61 -all"`, `_dmarc IN TXT "v=DMARC1; p=reject"`,
			dkim.ZoneRecord("s1", d, rec)))
	}
	s, _ := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"d4plain.test": {Unsigned: true}, "d4tamper.test": {TamperRRSIG: true}}}, zones...)
	anchor := s.TrustAnchor().String()
	d := mhStartDaemon(t, bin, root, daemonSetup{dns: s.Addr(), dnsTimeout: "2s"}, func(cfg string) string {
		const line = "  attempts: 1\n"
		if !strings.Contains(cfg, line) {
			t.Fatalf("the config has no %q", line)
		}
		return strings.Replace(cfg, line, line+fmt.Sprintf("  dnssec: validate\n  trust_anchors: [%q]\n", anchor), 1)
	})
	for _, tc := range []struct {
		domain string
		accept bool
		want   []string
	}{
		{"d4good.test", true, []string{"spf=pass (secure) smtp.mailfrom=alice@d4good.test", "dkim=pass (256-bit key; secure) header.d=d4good.test",
			"dmarc=pass (p=reject dis=none; secure) header.from=d4good.test"}},
		{"d4plain.test", true, []string{"spf=pass (unprotected)", "dkim=pass (256-bit key; unprotected) header.d=d4plain.test",
			"dmarc=pass (p=reject dis=none; unprotected)"}},
		{"d4tamper.test", false, []string{"spf=temperror (dns: d4tamper.test TXT: DNSSEC bogus: d4tamper.test TXT: RRSIG by key",
			"dkim=temperror (key lookup failed: dns: s1._domainkey.d4tamper.test TXT: DNSSEC bogus:", "dmarc=temperror (temporary DNS failure: _dmarc.d4tamper.test"}},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			signer := &dkim.Signer{Domain: tc.domain, Selector: "s1", Key: key}
			fields, body := d3Fields(t, signer, tc.domain, "lunch")
			qid := "D4" + strings.ToUpper(strings.TrimSuffix(tc.domain, ".test"))
			mods, reply := milterSend(t, d.milter, 30*time.Second, milterMsg{host: "mail." + tc.domain, ip: "127.0.0.61", queueID: qid,
				from: "<alice@" + tc.domain + ">", rcpt: "<bob@rcpt.test>", fields: fields, body: body})
			// A deferred message gets no header; the stored verdict keeps
			// the one it would have had.
			v := waitStored(t, d.db, []string{qid}, 10*time.Second)[qid]
			ar := header(mods, "Authentication-Results")
			for _, h := range v.Details.Headers {
				if h.Name == "Authentication-Results" && ar == "" {
					ar = h.Value
				}
			}
			t.Logf("%c %s\n%s", reply.Code, reply.Text, ar)
			if accepted := reply.Code == 'c' || reply.Code == 'a'; accepted != tc.accept {
				t.Errorf("reply %c %s, accepted %v, want %v", reply.Code, reply.Text, accepted, tc.accept)
			}
			if !tc.accept && (!strings.HasPrefix(reply.Text, "4") && reply.Code != 't') {
				t.Errorf("a bogus zone's mail is not deferred: %c %s", reply.Code, reply.Text)
			}
			for _, w := range tc.want {
				if !strings.Contains(ar, w) {
					t.Errorf("Authentication-Results lacks %q:\n%s", w, ar)
				}
			}
			if !tc.accept && (v.SPF != "temperror" || v.DMARC != "temperror" || !strings.Contains(v.DKIM, "temperror")) {
				t.Errorf("stored: spf %s dkim %s dmarc %s", v.SPF, v.DKIM, v.DMARC)
			}
		})
	}
	d.alive(t)
}
