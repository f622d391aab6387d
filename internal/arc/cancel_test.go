package arc

import (
	"context"
	"mailwall/internal/labtest"
	"strings"
	"testing"
)

// TestCanceledBetweenSignatures: a chain of three sets needs a key for
// the newest AMS, then each seal; once the context ends after the first,
// no further signature is checked and the chain fails as not evaluated.
// Before, all four were looked up and verified after the client had gone.
func TestCanceledBetweenSignatures(t *testing.T) {
	v, good, _ := hardenWorld(t, "v=DKIM1; p=")
	msg, _ := hop(t, v, good, plainMessage, "spf=pass smtp.mailfrom=origin.test")
	msg, _ = hop(t, v, good, msg, "arc=pass")
	msg, _ = hop(t, v, good, msg, "arc=pass")
	if out, _ := v.Validate(context.Background(), strings.NewReader(msg)); out.Result != Pass || out.OldestPass != 1 {
		t.Fatalf("not canceled: %+v", out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cr := &labtest.CancelingResolver{R: v.Resolver, Cancel: cancel}
	out, err := (&Verifier{Resolver: cr}).Validate(ctx, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if n := cr.Lookups.Load(); n != 1 {
		t.Errorf("%d key lookups after the context was canceled at the first, want 1", n)
	}
	if out.Result != Fail || out.Reason != "seal 3: not evaluated: context canceled" {
		t.Errorf("canceled: %+v", out)
	}
}
