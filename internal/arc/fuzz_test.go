package arc

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// FuzzValidate: any message gets an outcome, never a panic; a chain that
// fails says why; a message without a chain that we seal then passes.
func FuzzValidate(f *testing.F) {
	f.Add("ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.org; s=dummy; b=AAAA\r\nARC-Message-Signature: i=1; a=rsa-sha256; d=example.org; s=dummy; h=from; bh=AAAA; b=AAAA\r\nARC-Authentication-Results: i=1; mx.example.org; spf=pass\r\nFrom: a@example.org\r\n\r\nbody\r\n")
	f.Add("ARC-Authentication-Results: i=51; x\r\n\r\n")
	f.Add("ARC-Seal: i=1;; cv=pass\r\n\r\n")
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		f.Fatal(err)
	}
	rec, _ := dkim.PublicKeyRecord(key)
	srv := labtest.Serve(f, append(labtest.LabZones(f), labtest.Zone(f, "fuzz.test", `arc._domainkey IN TXT "`+rec+`"`))...)
	v := &Verifier{Resolver: &dnsx.Client{Servers: []string{srv.Addr()}, Timeout: time.Second}}
	sealer := &Sealer{Domain: "fuzz.test", Selector: "arc", Key: key, AuthServID: "mx.fuzz.test"}
	f.Fuzz(func(t *testing.T, msg string) {
		out, err := v.Validate(context.Background(), strings.NewReader(msg))
		if err == nil && out.Result == Fail && out.Reason == "" {
			t.Fatalf("fail without a reason for %q", msg)
		}
		if err != nil || out.Result != None {
			return
		}
		set, err := sealer.Seal(msg, out.Result, "spf=pass")
		if err != nil {
			return // no From, say
		}
		again, err := v.Validate(context.Background(), strings.NewReader(set.Header()+msg))
		if err != nil || again.Result != Pass {
			t.Fatalf("sealed %q: %+v %v\n%s", msg, again, err, set.Header())
		}
	})
}
