package dkim

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"mailwall/internal/dnsx"
)

// cancelingResolver answers as r does whatever the context, as a cache
// holding the key would, and cancels the message's context at the first
// lookup: the milter client hanging up while its message is verified.
type cancelingResolver struct {
	r       dnsx.Resolver
	cancel  context.CancelFunc
	lookups atomic.Int32
}

func (c *cancelingResolver) Query(_ context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	c.lookups.Add(1)
	c.cancel()
	return c.r.Query(context.Background(), name, qtype)
}

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
	cr := &cancelingResolver{r: res, cancel: cancel}
	r, err := (&Verifier{Resolver: cr}).Verify(ctx, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if n := cr.lookups.Load(); n != 1 {
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
