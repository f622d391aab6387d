package arc

// Issue 23's bounds on ARC validation: refused keys, h= length, the
// budget it shares with DKIM.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// hardenWorld serves an ed25519 key at good._domainkey.fwd.test and
// records at costly._domainkey.fwd.test.
func hardenWorld(t *testing.T, costly string) (*Verifier, *Sealer, *Sealer) {
	t.Helper()
	edKey, _ := dkim.GenerateKey("ed25519", 0)
	edRec, _ := dkim.PublicKeyRecord(edKey)
	srv := labtest.Serve(t, labtest.Zone(t, "fwd.test",
		dkim.ZoneRecord("good", "fwd.test", edRec), dkim.ZoneRecord("costly", "fwd.test", costly)))
	v := &Verifier{Resolver: &dnsx.Client{Servers: []string{srv.Addr()}, Timeout: 2 * time.Second}}
	good := &Sealer{Domain: "fwd.test", Selector: "good", Key: edKey, AuthServID: "mx.fwd.test"}
	bad := &Sealer{Domain: "fwd.test", Selector: "costly", Key: edKey, AuthServID: "mx.fwd.test"}
	return v, good, bad
}

// TestCostlyKeysRefused: a seal or message signature whose key is over
// 4096 bits, or has an exponent other than 65537, fails the chain with the
// reason, before any arithmetic with the key.
func TestCostlyKeysRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bits, e int
		reason  string
	}{
		{"262144 bits", 262144, 1<<31 - 1, "permerror: RSA key of 262144 bits; at most 4096 accepted (RFC 8301)"},
		{"e=3", 2048, 3, "permerror: RSA key exponent 3; only 65537 accepted"},
		{"512 bits", 512, 65537, "512-bit RSA key is too short (RFC 8301)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, good, bad := hardenWorld(t, labtest.CostlyRSAKeyRecord(t, tc.bits, tc.e))
			// The costly key signs (by its record) the newest set.
			one, _ := hop(t, v, good, plainMessage, "spf=pass smtp.mailfrom=origin.test")
			bad.Key = good.Key
			set, err := bad.Seal(one, Pass, "arc=pass")
			if err != nil {
				t.Fatal(err)
			}
			msg := set.Header() + one
			// Make the key's record an RSA one for the ed25519 a=: the
			// message signature and seal say rsa-sha256.
			msg = strings.ReplaceAll(msg, "a=ed25519-sha256", "a=rsa-sha256")
			start := time.Now()
			out, err := v.Validate(context.Background(), strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if out.Result != Fail || !strings.Contains(out.Reason, tc.reason) {
				t.Errorf("got %s (%s), want fail (%s)", out.Result, out.Reason, tc.reason)
			}
			if took := time.Since(start); took > 200*time.Millisecond {
				t.Errorf("validation took %s", took)
			}
		})
	}
}

// TestLongHeaderListRefused: an ARC-Message-Signature with an h= past
// dkim.MaxSignedHeaders fails the chain with the reason.
func TestLongHeaderListRefused(t *testing.T) {
	v, good, _ := hardenWorld(t, "v=DKIM1; p=")
	for _, n := range []int{dkim.MaxSignedHeaders, dkim.MaxSignedHeaders + 1} {
		// SignedNames lists a name once per field: X-Pad n-1 times.
		good.Headers = []string{"From", "X-Pad"}
		msg := strings.Repeat("X-Pad: p\r\n", n-1) + plainMessage
		one, _ := hop(t, v, good, msg, "spf=pass smtp.mailfrom=origin.test")
		out, err := v.Validate(context.Background(), strings.NewReader(one))
		if err != nil {
			t.Fatal(err)
		}
		if n <= dkim.MaxSignedHeaders && out.Result != Pass {
			t.Errorf("h= of %d names: %+v", n, out)
		}
		want := fmt.Sprintf("h= lists %d fields; at most %d accepted", n, dkim.MaxSignedHeaders)
		if n > dkim.MaxSignedHeaders && (out.Result != Fail || !strings.Contains(out.Reason, want)) {
			t.Errorf("h= of %d names: %+v", n, out)
		}
	}
}

// TestBudgetSharedWithDKIM: a budget spent (by DKIM, or by this chain's
// first check) fails the chain as not evaluated; without one, the default
// applies.
func TestBudgetSharedWithDKIM(t *testing.T) {
	v, good, _ := hardenWorld(t, "v=DKIM1; p=")
	one, _ := hop(t, v, good, plainMessage, "spf=pass smtp.mailfrom=origin.test")
	two, _ := hop(t, v, good, one, "arc=pass")
	ctx := dkim.WithBudget(context.Background(), time.Nanosecond)
	out, err := v.Validate(ctx, strings.NewReader(two))
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != Fail || !strings.Contains(out.Reason, "verification budget (1ns) is spent") {
		t.Errorf("budget of 1ns: %+v", out)
	}
	if out, _ := v.Validate(context.Background(), strings.NewReader(two)); out.Result != Pass || out.OldestPass != 1 {
		t.Errorf("default budget: %+v", out)
	}
}

// TestFiftySetsOfLargeFields measures the costliest chain the limits let
// through: 50 sets (§4.2.1), each AAR 15 kB (the file path's header limit
// is 1 MB), every seal over all the sets before it. It is what
// verify_budget's default was chosen against.
func TestFiftySetsOfLargeFields(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 50 ARC sets")
	}
	v, good, _ := hardenWorld(t, "v=DKIM1; p=")
	big := "spf=pass smtp.mailfrom=origin.test; " + strings.Repeat("dkim=pass header.d=x.test; ", 15_000/27)
	msg := plainMessage
	for range MaxInstances {
		set, err := good.Seal(msg, Pass, big)
		if err != nil {
			t.Fatal(err)
		}
		msg = set.Header() + msg
	}
	start := time.Now()
	out, err := v.Validate(context.Background(), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("50 sets of %d kB: %s in %s", len(msg)>>10, out.Result, time.Since(start))
	if out.Result != Pass || out.OldestPass != 1 {
		t.Errorf("%+v", out.Reason)
	}
}
