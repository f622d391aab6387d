package dkim

import (
	"strings"
	"testing"

	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// The key record's DNSSEC status reaches the result (KeyDNSSEC), and a
// key whose signatures are tampered with is a temperror naming the link,
// never a key to verify with.
func TestD4KeyDNSSEC(t *testing.T) {
	key, err := GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := PublicKeyRecord(key)
	var zones []*labdns.Zone
	for _, d := range []string{"good.test", "plain.test", "tamper.test"} {
		zones = append(zones, labtest.Zone(t, d, ZoneRecord("sel", d, rec)))
	}
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{
		"plain.test": {Unsigned: true}, "tamper.test": {TamperRRSIG: true}}}, zones...)
	v := &Verifier{Resolver: client}
	for _, tc := range []struct {
		domain string
		status Status
		sec    string
		reason string
	}{
		{"good.test", Pass, "secure", ""},
		{"plain.test", Pass, "insecure", ""},
		{"tamper.test", TempError, "", "DNSSEC bogus: sel._domainkey.tamper.test TXT: RRSIG"},
	} {
		msg := "From: a@" + tc.domain + "\r\nSubject: hi\r\n\r\nbody\r\n"
		sig, err := (&Signer{Domain: tc.domain, Selector: "sel", Key: key}).Sign(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		res := verifyString(t, v, sig+msg)
		if len(res) != 1 || res[0].Status != tc.status || res[0].KeyDNSSEC != tc.sec || !strings.Contains(res[0].Reason, tc.reason) {
			t.Errorf("%s: %+v, want %s with key %q, reason %q", tc.domain, res, tc.status, tc.sec, tc.reason)
		}
	}
	// Without a validator the status stays empty.
	client.Validator = nil
	msg := "From: a@plain.test\r\nSubject: hi\r\n\r\nbody\r\n"
	sig, _ := (&Signer{Domain: "plain.test", Selector: "sel", Key: key}).Sign(strings.NewReader(msg))
	if res := verifyString(t, v, sig+msg); len(res) != 1 || res[0].Status != Pass || res[0].KeyDNSSEC != "" {
		t.Errorf("validation off: %+v", res)
	}
}
