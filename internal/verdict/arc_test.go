package verdict

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/arc"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// arcWorld serves example.test (p=reject, SPF for 192.0.2.10 only) and the
// ARC keys of a list (lists.test) and of this MX (rcpt.test).
func arcWorld(t *testing.T) (res dnsx.Resolver, author *dkim.Signer, list, mx *arc.Sealer) {
	t.Helper()
	keys := map[string]*dkim.Signer{}
	var zones []string
	for _, d := range []string{"example.test", "lists.test", "rcpt.test"} {
		k, err := dkim.GenerateKey("ed25519", 0)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := dkim.PublicKeyRecord(k)
		keys[d] = &dkim.Signer{Domain: d, Selector: "s1", Key: k}
		zones = append(zones, dkim.ZoneRecord("s1", d, rec))
	}
	s := labtest.Serve(t,
		labtest.Zone(t, "test"),
		labtest.Zone(t, "example.test", `@ IN TXT "v=spf1 ip4:192.0.2.10 -all"`, `_dmarc IN TXT "v=DMARC1; p=reject"`, zones[0]),
		labtest.Zone(t, "lists.test", `@ IN TXT "v=spf1 ip4:192.0.2.30 -all"`, `_dmarc IN TXT "v=DMARC1; p=none"`, zones[1]),
		labtest.Zone(t, "rcpt.test", zones[2]),
	)
	res = dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})
	seal := func(d, id string) *arc.Sealer {
		return &arc.Sealer{Domain: d, Selector: "s1", Key: keys[d].Key, AuthServID: id}
	}
	return res, keys["example.test"], seal("lists.test", "mx.lists.test"), seal("rcpt.test", "mx.rcpt.test")
}

// viaList is what a list makes of Alice's signed message: a tagged
// Subject (her signature breaks), its own results, an ARC set.
func viaList(t *testing.T, author *dkim.Signer, list *arc.Sealer) string {
	t.Helper()
	sig, err := author.Sign(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	changed := "Authentication-Results: mx.lists.test; spf=pass smtp.mailfrom=example.test; dkim=pass header.d=example.test; dmarc=pass header.from=example.test\r\n" +
		strings.Replace(sig+msg, "Subject: lunch", "Subject: [list] lunch", 1)
	set, err := list.Seal(changed, arc.None, "spf=pass smtp.mailfrom=example.test; dkim=pass header.d=example.test; dmarc=pass header.from=example.test")
	if err != nil {
		t.Fatal(err)
	}
	return set.Header() + changed
}

func TestTrustedSealerSetsDMARCFailAside(t *testing.T) {
	res, author, list, _ := arcWorld(t)
	m := viaList(t, author, list)
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.30"), Helo: "mail.lists.test", MailFrom: "list-bounces@lists.test"}

	c := New(res, "mx.rcpt.test")
	r := check(t, c, env, m)
	if r.Action != Reject || r.DMARC.Result != dmarc.Fail || r.ARC.Result != arc.Pass || r.Override != "" {
		t.Fatalf("untrusted list: action %s dmarc %s arc %s override %q", r.Action, r.DMARC.Result, r.ARC.Result, r.Override)
	}
	if ar := header(r, "Authentication-Results"); !strings.Contains(ar, "arc=pass header.oldest-pass=1 smtp.remote-ip=192.0.2.30") {
		t.Errorf("Authentication-Results:\n%s", ar)
	}

	c.TrustedSealers = []string{"lists.test"}
	r = check(t, c, env, m)
	if r.Action != Accept || r.Override != "trusted_forwarder lists.test" || r.DMARC.Row.Disposition != dmarc.PolicyNone {
		t.Fatalf("trusted list: action %s override %q disposition %s reasons %v", r.Action, r.Override, r.DMARC.Row.Disposition, r.Reasons)
	}
	if ar := header(r, "Authentication-Results"); !strings.Contains(ar, `reason="overridden: trusted_forwarder lists.test"`) {
		t.Errorf("Authentication-Results:\n%s", ar)
	}

	// A trusted sealer's word counts only in a chain that validates.
	broken := strings.Replace(m, "Hi Bob.", "Hi Bob!", 1)
	if r := check(t, c, env, broken); r.Action != Reject || r.ARC.Result != arc.Fail {
		t.Errorf("broken chain: action %s arc %s", r.Action, r.ARC.Result)
	}
}

func TestDeliveredMailIsSealed(t *testing.T) {
	res, author, list, mx := arcWorld(t)
	c := New(res, "mx.rcpt.test")
	c.Sealer = mx
	c.Policy.SubjectTag = "[SUSPICIOUS]"
	c.Policy.DMARCReject = Tag // so the Subject is tagged, and sealed as tagged
	m := viaList(t, author, list)
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.30"), Helo: "mail.lists.test", MailFrom: "list-bounces@lists.test"}
	r, fields, err := c.CheckMessage(context.Background(), env, strings.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != Tag {
		t.Fatalf("action %s, reasons %v", r.Action, r.Reasons)
	}
	// The aggregate report must say what was done, and why it differs
	// from p=reject (RFC 9990: local_policy).
	if row := r.DMARC.Row; row.Disposition != dmarc.PolicyNone || len(row.Reasons) != 1 || row.Reasons[0] != "local_policy" {
		t.Errorf("report row: disposition %s reasons %v", row.Disposition, row.Reasons)
	}
	if v := r.Record(env, "mx", time.Now()); v.DMARCRow == nil || v.DMARCRow.Row.Disposition != dmarc.PolicyNone || v.FromDomain != "example.test" || v.DMARC != "fail" {
		t.Errorf("stored verdict: %+v", v)
	}
	// Build the message as the milter leaves it: our fields on top, the
	// Subject tagged.
	var out strings.Builder
	for _, h := range r.Headers {
		out.WriteString(h.Name + ":" + h.Value + "\r\n")
	}
	if subj := c.SubjectTagged(r, fields); subj != "" {
		m = strings.Replace(m, "Subject: [list] lunch", "Subject:"+subj, 1)
	}
	out.WriteString(m)
	if !strings.Contains(out.String(), "ARC-Authentication-Results: i=2; mx.rcpt.test;") {
		t.Fatalf("no AAR of ours:\n%s", out.String())
	}
	got, err := (&arc.Verifier{Resolver: res}).Validate(context.Background(), strings.NewReader(out.String()))
	if err != nil || got.Result != arc.Pass || got.Instances != 2 || got.Sealers[1] != "rcpt.test" {
		t.Errorf("our seal: %+v %v\n%s", got, err, out.String())
	}

	// Rejected mail is not delivered, so not sealed.
	c.Policy.DMARCReject = Reject
	if r := check(t, c, env, m); r.Action != Reject || header(r, "ARC-Seal") != "" {
		t.Errorf("rejected mail sealed: %s", r.Action)
	}
}

func TestNoARCResultWithoutValidation(t *testing.T) {
	res, author, list, _ := arcWorld(t)
	c := New(res, "mx.rcpt.test")
	c.ARC = nil
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.30"), Helo: "mail.lists.test", MailFrom: "list-bounces@lists.test"}
	r := check(t, c, env, viaList(t, author, list))
	if ar := header(r, "Authentication-Results"); strings.Contains(ar, "\tarc=") || r.ARC.Result != "" {
		t.Errorf("arc reported without validation: %q\n%q", r.ARC.Result, ar)
	}
}
