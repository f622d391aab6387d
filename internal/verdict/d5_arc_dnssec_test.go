package verdict

import (
	"crypto"
	"net/netip"
	"strings"
	"testing"

	"mailwall/internal/arc"
	"mailwall/internal/dkim"
	"mailwall/internal/labdns"
)

// The arc= result notes its keys' DNSSEC status as dkim= does (issue 27):
// "secure" for a seal key validated from the lab anchor, "unprotected"
// for one in an unsigned zone; a tampered key zone makes the chain fail
// with the failing link named.
func TestD5ARCKeyDNSSEC(t *testing.T) {
	keys := map[string]crypto.Signer{}
	cases := map[string]labdns.ZoneSigning{"example.test": {}, "lists.test": {}, "plain.test": {Unsigned: true}, "tamper.test": {TamperRRSIG: true}}
	for d := range cases {
		k, err := dkim.GenerateKey("ed25519", 0)
		if err != nil {
			t.Fatal(err)
		}
		keys[d] = k
	}
	c := d4World(t, cases, keys)
	for _, tc := range []struct {
		sealer string
		result arc.Result
		sec    string
		want   string
	}{
		{"lists.test", arc.Pass, "secure", "arc=pass (secure) header.oldest-pass=1"},
		{"plain.test", arc.Pass, "insecure", "arc=pass (unprotected) header.oldest-pass=1"},
		{"tamper.test", arc.Fail, "", "arc=fail (message signature 1: temperror: key lookup failed: dns: sel._domainkey.tamper.test TXT: DNSSEC bogus: sel._domainkey.tamper.test TXT: RRSIG"},
	} {
		t.Run(tc.sealer, func(t *testing.T) {
			sealer := &arc.Sealer{Domain: tc.sealer, Selector: "sel", Key: keys[tc.sealer], AuthServID: "mx." + tc.sealer}
			set, err := sealer.Seal(msg, arc.None, "spf=pass smtp.mailfrom=example.test")
			if err != nil {
				t.Fatal(err)
			}
			env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}
			r := check(t, c, env, set.Header()+msg)
			ar := header(r, "Authentication-Results")
			if r.ARC.Result != tc.result || r.ARC.KeyDNSSEC != tc.sec || !strings.Contains(ar, tc.want) {
				t.Errorf("arc %+v, want %s with keys %q and %q in\n%s", r.ARC, tc.result, tc.sec, tc.want, ar)
			}
		})
	}
}
