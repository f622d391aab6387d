package arc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

const plainMessage = "From: Alice <alice@origin.test>\r\nTo: list@lists.test\r\nSubject: hello\r\n" +
	"Date: Mon, 23 Nov 2026 10:00:00 +0900\r\nMessage-ID: <1@origin.test>\r\n\r\nHello,\r\n  list.\r\n"

// hop seals msg as sealer would after validating it.
func hop(t *testing.T, v *Verifier, s *Sealer, msg, results string) (string, Set) {
	t.Helper()
	out, err := v.Validate(context.Background(), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	set, err := s.Seal(msg, out.Result, results)
	if err != nil {
		t.Fatal(err)
	}
	return set.Header() + msg, set
}

func TestSealChain(t *testing.T) {
	rsaKey, err := dkim.GenerateKey("rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	edKey, _ := dkim.GenerateKey("ed25519", 0)
	rsaRec, _ := dkim.PublicKeyRecord(rsaKey)
	edRec, _ := dkim.PublicKeyRecord(edKey)
	srv := labtest.Serve(t,
		labtest.Zone(t, "lists.test", `arc._domainkey IN TXT "`+rsaRec+`"`),
		labtest.Zone(t, "fwd.test", `ed._domainkey IN TXT "`+edRec+`"`))
	v := &Verifier{Resolver: &dnsx.Client{Servers: []string{srv.Addr()}, Timeout: 2 * time.Second}}
	list := &Sealer{Domain: "lists.test", Selector: "arc", Key: rsaKey, AuthServID: "mx.lists.test"}
	fwd := &Sealer{Domain: "fwd.test", Selector: "ed", Key: edKey, AuthServID: "mx.fwd.test"}

	one, set1 := hop(t, v, list, plainMessage, "spf=pass smtp.mailfrom=origin.test; dkim=none; dmarc=pass header.from=origin.test")
	if set1.Instance != 1 || set1.CV != None {
		t.Fatalf("first set: i=%d cv=%s", set1.Instance, set1.CV)
	}
	// A second hop (a forwarding service) adds i=2 with cv=pass.
	two, set2 := hop(t, v, fwd, one, "arc=pass; spf=fail smtp.mailfrom=lists.test")
	if set2.Instance != 2 || set2.CV != Pass {
		t.Fatalf("second set: i=%d cv=%s", set2.Instance, set2.CV)
	}
	out, err := v.Validate(context.Background(), strings.NewReader(two))
	if err != nil || out.Result != Pass || out.OldestPass != 1 {
		t.Fatalf("two hops: %+v %v", out, err)
	}
	if strings.Join(out.Sealers, ",") != "lists.test,fwd.test" || !strings.Contains(out.Results[0], "dmarc=pass header.from=origin.test") {
		t.Errorf("sealers %v results %q", out.Sealers, out.Results)
	}
	for _, line := range strings.Split(set1.Header()+set2.Header(), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d columns: %q", len(line), line)
		}
	}

	// A body changed after the last seal breaks the newest AMS: fail.
	tampered := strings.Replace(two, "Hello,", "Hello!", 1)
	if out, _ := v.Validate(context.Background(), strings.NewReader(tampered)); out.Result != Fail {
		t.Errorf("tampered body: %s", out.Result)
	}
	// A hop that validates, then changes the body (a list footer) and
	// seals: the chain passes, and the oldest pass moves up to that hop.
	out, _ = v.Validate(context.Background(), strings.NewReader(one))
	footer := strings.Replace(one, "list.\r\n", "list.\r\n-- \r\nfooter\r\n", 1)
	set, err := fwd.Seal(footer, out.Result, "arc=pass")
	if err != nil {
		t.Fatal(err)
	}
	out, _ = v.Validate(context.Background(), strings.NewReader(set.Header()+footer))
	if out.Result != Pass || out.OldestPass != 2 {
		t.Errorf("footer added by the second hop: %s oldest-pass %d, want pass 2", out.Result, out.OldestPass)
	}
	// A body changed in transit, before a hop validates, breaks the
	// chain: that hop seals cv=fail (§5.1.2) and it stays failed (§5.2
	// step 2).
	moved, _ := hop(t, v, fwd, footer, "arc=fail")
	out, _ = v.Validate(context.Background(), strings.NewReader(moved))
	if out.Result != Fail {
		t.Errorf("chain broken before the second hop: %s", out.Result)
	}
	// Nobody may seal on top of cv=fail (§5.1).
	if _, err := list.Seal(moved, out.Result, ""); !errors.Is(err, ErrNoSeal) {
		t.Errorf("sealing over cv=fail: %v", err)
	}
}

func TestSealNeedsFrom(t *testing.T) {
	key, _ := dkim.GenerateKey("ed25519", 0)
	s := &Sealer{Domain: "lists.test", Selector: "arc", Key: key, AuthServID: "mx.lists.test"}
	if _, err := s.Seal("To: a@b.test\r\n\r\nx\r\n", None, ""); err == nil {
		t.Error("sealed a message without From")
	}
	if _, err := (&Sealer{Key: key}).Seal(plainMessage, None, ""); err == nil {
		t.Error("sealed without a domain")
	}
}

func TestResultsFor(t *testing.T) {
	fields := []dkim.Field{
		dkim.NewField("Authentication-Results", "mx.example.org; spf=pass smtp.mailfrom=a.test (comment; with semicolon)"),
		dkim.NewField("Authentication-Results", "other.example; dkim=fail"),
		dkim.NewField("Authentication-Results", "MX.example.org 1; none"),
		dkim.NewField("Authentication-Results", "mx.example.org (x;y); dkim=pass\n  header.d=a.test"),
	}
	got := ResultsFor(fields, "mx.example.org")
	want := "spf=pass smtp.mailfrom=a.test (comment; with semicolon); dkim=pass header.d=a.test"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// A chain the caller did not validate (cv "") is sealed as failed, never
// with an empty or passing cv=.
func TestSealUnvalidatedChain(t *testing.T) {
	key, _ := dkim.GenerateKey("ed25519", 0)
	first := &Sealer{Domain: "lists.test", Selector: "arc", Key: key, AuthServID: "mx.lists.test"}
	set, err := first.Seal(plainMessage, None, "")
	if err != nil {
		t.Fatal(err)
	}
	second := &Sealer{Domain: "fwd.test", Selector: "arc", Key: key, AuthServID: "mx.fwd.test"}
	next, err := second.Seal(set.Header()+plainMessage, "", "")
	if err != nil || next.CV != Fail || !strings.Contains(next.Seal, "cv=fail") {
		t.Errorf("cv %q, %v", next.CV, err)
	}
}
