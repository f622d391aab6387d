package verdict

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/arc"
	"mailwall/internal/dkim"
)

// TestJunkSignaturesBounded: signatures past max_signatures make one
// result, which DMARC (and so the aggregate report's row) leaves out: it
// names no domain.
func TestJunkSignaturesBounded(t *testing.T) {
	c, _ := world(t)
	junk := strings.Repeat("DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=x; h=from; bh=; b=\r\n", 40)
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}
	r := check(t, c, env, junk+msg)
	if len(r.DKIM) != dkim.DefaultMaxSignatures+1 || !strings.Contains(r.DKIM[len(r.DKIM)-1].Reason, "30 more signatures not checked") {
		t.Fatalf("%d results: %+v", len(r.DKIM), r.DKIM[len(r.DKIM)-1])
	}
	if len(r.DMARC.Row.DKIM) != dkim.DefaultMaxSignatures {
		t.Errorf("DMARC row has %d signatures", len(r.DMARC.Row.DKIM))
	}
	for _, d := range r.DMARC.Row.DKIM {
		if d.Domain == "" {
			t.Errorf("DMARC row signature without a domain: %+v", d)
		}
	}
}

// TestVerifyBudgetShared: DKIM and ARC draw on one budget per message
// (Checker.DKIM.Budget): once DKIM has spent it, the ARC chain is not
// evaluated, and fails; each message gets a budget of its own.
func TestVerifyBudgetShared(t *testing.T) {
	res, author, list, _ := arcWorld(t)
	m := viaList(t, author, list)
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.30"), Helo: "mail.lists.test", MailFrom: "list-bounces@lists.test"}
	c := New(res, "mx.rcpt.test")
	for range 2 {
		if r := check(t, c, env, m); r.ARC.Result != arc.Pass {
			t.Fatalf("default budget: arc %s (%s)", r.ARC.Result, r.ARC.Reason)
		}
	}
	c.DKIM.Budget = time.Nanosecond
	r := check(t, c, env, m)
	if r.ARC.Result != arc.Fail || !strings.Contains(r.ARC.Reason, "verification budget (1ns) is spent") {
		t.Errorf("budget of 1ns: arc %s (%s)", r.ARC.Result, r.ARC.Reason)
	}
	if r.Action == TempFail {
		t.Errorf("a spent budget tempfails: %v", r.Reasons)
	}
}
