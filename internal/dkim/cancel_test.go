package dkim

import (
	"context"
	"mailwall/internal/labtest"
	"strings"
	"testing"
)

// TestCanceledBetweenSignatures: once the context ends, the signatures
// not yet begun are not checked (no key lookup, no arithmetic) but
// reported as temperrors, not evaluated. Before, all three were looked up
// and verified after the client had gone.
func TestCanceledBetweenSignatures(t *testing.T) {
	keys, res := testKeys(t)
	s := &Signer{Domain: "example.test", Selector: "rsa", Key: keys["rsa"]}
	msg := sign(t, s, sign(t, s, sign(t, s, plainMessage)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cr := &labtest.CancelingResolver{R: res, Cancel: cancel}
	r, err := (&Verifier{Resolver: cr}).Verify(ctx, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if n := cr.Lookups.Load(); n != 1 {
		t.Errorf("%d key lookups after the context was canceled at the first, want 1", n)
	}
	if len(r) != 3 || r[0].Status != Pass {
		t.Fatalf("results %+v", r)
	}
	for _, x := range r[1:] {
		if x.Status != TempError || x.Reason != "not evaluated: context canceled" || x.Domain != "example.test" {
			t.Errorf("after the cancel: %+v", x)
		}
	}
}
