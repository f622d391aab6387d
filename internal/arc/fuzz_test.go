package arc

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// FuzzValidate: any message gets an outcome, never a panic; a chain that
// fails says why.
func FuzzValidate(f *testing.F) {
	f.Add("ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.org; s=dummy; b=AAAA\r\nARC-Message-Signature: i=1; a=rsa-sha256; d=example.org; s=dummy; h=from; bh=AAAA; b=AAAA\r\nARC-Authentication-Results: i=1; mx.example.org; spf=pass\r\nFrom: a@example.org\r\n\r\nbody\r\n")
	f.Add("ARC-Authentication-Results: i=51; x\r\n\r\n")
	f.Add("ARC-Seal: i=1;; cv=pass\r\n\r\n")
	v := &Verifier{Resolver: &dnsx.Client{Servers: []string{labtest.Lab(f)}, Timeout: time.Second}}
	f.Fuzz(func(t *testing.T, msg string) {
		out, err := v.Validate(context.Background(), strings.NewReader(msg))
		if err == nil && out.Result == Fail && out.Reason == "" {
			t.Fatalf("fail without a reason for %q", msg)
		}
	})
}
