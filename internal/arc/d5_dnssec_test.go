package arc

import (
	"context"
	"strings"
	"testing"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// The ARC outcome carries the DNSSEC status of the seal and message
// signature keys, as DKIM results do (issue 27): secure only when every
// key was; a tampered key record is a lookup failure naming the link,
// never a pass.
func TestD5KeyDNSSEC(t *testing.T) {
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.PublicKeyRecord(key)
	var zones []*labdns.Zone
	for _, d := range []string{"good.test", "hashed.test", "plain.test", "tamper.test"} {
		zones = append(zones, labtest.Zone(t, d, dkim.ZoneRecord("arc", d, rec)))
	}
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"hashed.test": {NSEC3: true}, "plain.test": {Unsigned: true}, "tamper.test": {TamperRRSIG: true}}}, zones...)
	v := &Verifier{Resolver: client}
	// Each hop validates what it got with validation off, so a bogus key
	// does not stop the chain being built.
	plain := &Verifier{Resolver: &dnsx.Client{Servers: client.Servers, Timeout: client.Timeout}}
	sealer := func(d string) *Sealer { return &Sealer{Domain: d, Selector: "arc", Key: key, AuthServID: "mx." + d} }
	for _, tc := range []struct {
		name    string
		sealers []string // hops, oldest first
		result  Result
		sec     string
		reason  string
	}{
		{"secure", []string{"good.test"}, Pass, "secure", ""},
		{"secure nsec3", []string{"good.test", "hashed.test"}, Pass, "secure", ""},
		{"unsigned", []string{"plain.test"}, Pass, "insecure", ""},
		{"weakest link", []string{"good.test", "plain.test", "hashed.test"}, Pass, "insecure", ""},
		{"bogus", []string{"tamper.test"}, Fail, "", "DNSSEC bogus: arc._domainkey.tamper.test TXT: RRSIG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := plainMessage
			for _, d := range tc.sealers {
				msg, _ = hop(t, plain, sealer(d), msg, "spf=pass smtp.mailfrom=origin.test")
			}
			out, err := v.Validate(context.Background(), strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if out.Result != tc.result || out.KeyDNSSEC != tc.sec || !strings.Contains(out.Reason, tc.reason) {
				t.Errorf("%+v, want %s with keys %q, reason %q", out, tc.result, tc.sec, tc.reason)
			}
		})
	}
	// Without a validator the status stays empty.
	msg, _ := hop(t, v, sealer("good.test"), plainMessage, "spf=pass")
	client.Validator = nil
	if out, err := v.Validate(context.Background(), strings.NewReader(msg)); err != nil || out.Result != Pass || out.KeyDNSSEC != "" {
		t.Errorf("validation off: %+v %v", out, err)
	}
}
