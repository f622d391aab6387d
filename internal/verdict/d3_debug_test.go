package verdict

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/debuglog"
	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/phish"
)

// TestDebugPeerDetail: a message checked with a detail logger in its
// context (a debug peer's) logs each stage: the DNS answers the checks
// used (the SPF record, the DKIM key, the DMARC record, the PTR), the
// DKIM body hash signed and computed, the From as the rules parsed it
// with its display name normalized, the links, the verdict. The same
// message without one logs nothing.
func TestDebugPeerDetail(t *testing.T) {
	c, signer := world(t)
	res := debuglog.Wrap(c.Resolver)
	c.Resolver, c.SPF.Resolver, c.DKIM.Resolver, c.DMARC.Resolver, c.ARC.Resolver = res, res, res, res, res
	p, err := phish.New(phish.DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Analyzers = []analysis.Analyzer{p}
	const m = "From: \"Ａｌｉｃｅ\u200b Smith\" <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: lunch\r\nMessage-ID: <2@example.test>\r\n" +
		"Content-Type: text/html\r\n\r\n<p>See <a href=\"https://menu.example.test/today\">the menu</a>.</p>\r\n"
	sig, err := signer.Sign(strings.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}

	// The pipeline has no logger of its own: without a detail logger in
	// the context nothing of this is formatted (the milter's and the
	// policy server's tests check that other clients get none).
	r, _, err := c.CheckMessage(context.Background(), env, strings.NewReader(sig+m))
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != Accept || r.DMARC.Result != "pass" {
		t.Fatalf("without the detail log: %+v", r)
	}

	var buf bytes.Buffer
	dl := debuglog.NewPeers(slog.New(slog.NewTextHandler(&buf, nil)), []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}).Logger(env.ClientIP)
	r2, _, err := c.CheckMessage(debuglog.With(context.Background(), dl), env, strings.NewReader(sig+m))
	if err != nil {
		t.Fatal(err)
	}
	if r2.Action != r.Action || r2.Verdict != r.Verdict {
		t.Errorf("the detail log changed the verdict: %s/%s, was %s/%s", r2.Action, r2.Verdict, r.Action, r.Verdict)
	}
	got := buf.String()
	// The signature's bh= as signed: the log must show it beside the
	// one computed, and here they agree.
	bh := ""
	for part := range strings.SplitSeq(strings.Join(strings.Fields(sig), ""), ";") {
		if v, ok := strings.CutPrefix(part, "bh="); ok {
			bh = v
		}
	}
	if _, err := base64.StdEncoding.DecodeString(bh); err != nil || bh == "" {
		t.Fatalf("no bh= in %q", sig)
	}
	for _, want := range []string{
		`msg="debug: envelope"`, "mail_from=alice@example.test",
		`msg="debug: dns" debug_peer=true client=192.0.2.10 name=example.test type=TXT rcode=NOERROR`, `v=spf1 ip4:192.0.2.10 -all`,
		"name=sel._domainkey.example.test type=TXT", "name=_dmarc.example.test type=TXT", `v=DMARC1; p=reject`, "name=10.2.0.192.in-addr.arpa. type=PTR",
		`msg="debug: spf"`, "result=pass", "mechanism=ip4:192.0.2.10",
		`msg="debug: dkim"`, `bh_signed="` + bh + `"`, `bh_computed="` + bh + `"`, "header_hash_computed=", "canonicalization=relaxed/relaxed",
		`msg="debug: dmarc"`, "spf_aligned=true dkim_aligned=true",
		`msg="debug: analysis"`, "analyzer=phish", `from_name_normalized="alice smith"`, "from_address=alice@example.test",
		"https://menu.example.test/today text=the menu",
		`msg="debug: verdict"`, "action=accept",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("detail log lacks %s", want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if !strings.Contains(line, " debug_peer=true client=192.0.2.10") {
			t.Errorf("a line without debug_peer=true and the client: %s", line)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", got)
	}

	// A body changed after signing: the two hashes differ in the log,
	// which is what an admin looks for.
	buf.Reset()
	tampered := strings.Replace(sig+m, "the menu", "the MENU", 1)
	if _, _, err := c.CheckMessage(debuglog.With(context.Background(), dl), env, strings.NewReader(tampered)); err != nil {
		t.Fatal(err)
	}
	got = buf.String()
	if !strings.Contains(got, `bh_signed="`+bh+`"`) || strings.Contains(got, `bh_computed="`+bh+`"`) || !strings.Contains(got, `reason="body hash did not verify"`) {
		t.Errorf("tampered body: want bh_signed %s and another bh_computed:\n%s", bh, got)
	}
}

// TestDebugPeerRSAHeaderHash: for an RSA signature the log shows the
// header hash the signature signed beside the one computed: equal when
// it verifies, different when a signed field changed in transit.
func TestDebugPeerRSAHeaderHash(t *testing.T) {
	key, err := dkim.GenerateKey("rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.PublicKeyRecord(key)
	s := labtest.Serve(t, labtest.Zone(t, "test"), labtest.Zone(t, "rsa.test", `@ IN TXT "v=spf1 -all"`, dkim.ZoneRecord("r1", "rsa.test", rec)))
	res := debuglog.Wrap(dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{}))
	c := newChecker(res)
	const m = "From: <a@rsa.test>\r\nTo: b@rcpt.test\r\nSubject: original\r\n\r\nbody\r\n"
	sig, err := (&dkim.Signer{Domain: "rsa.test", Selector: "r1", Key: key}).Sign(strings.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.99"), Helo: "x.rsa.test", MailFrom: "a@rsa.test", Rcpts: []string{"b@rcpt.test"}}
	hashes := func(msg string) (signed, computed, result string) {
		t.Helper()
		var buf bytes.Buffer
		l := slog.New(slog.NewTextHandler(&buf, nil))
		if _, _, err := c.CheckMessage(debuglog.With(context.Background(), l), env, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(buf.String(), "\n") {
			if !strings.Contains(line, `msg="debug: dkim"`) {
				continue
			}
			for _, f := range []struct {
				key string
				dst *string
			}{{"header_hash_signed=", &signed}, {"header_hash_computed=", &computed}, {"result=", &result}} {
				if _, v, ok := strings.Cut(line, " "+f.key); ok {
					*f.dst, _, _ = strings.Cut(v, " ")
				}
			}
		}
		return signed, computed, result
	}
	signed, computed, result := hashes(sig + m)
	if result != "pass" || signed == "" || signed != computed {
		t.Errorf("verifying: result %s, signed %s, computed %s", result, signed, computed)
	}
	signed2, computed2, result2 := hashes(sig + strings.Replace(m, "original", "changed!", 1))
	if result2 != "fail" || signed2 != signed || computed2 == computed || computed2 == "" {
		t.Errorf("changed Subject: result %s, signed %s (was %s), computed %s (was %s)", result2, signed2, signed, computed2, computed)
	}
}

// BenchmarkMessageDebugPeers is BenchmarkMessage three ways: the
// resolver as it was; wrapped for debug peers, the client not one of
// them (what every other client pays: a context lookup per DNS query);
// and the client a debug peer, its detail lines formatted (to a
// discarding handler).
func BenchmarkMessageDebugPeers(b *testing.B) {
	for _, bc := range []struct {
		name          string
		wrap, logging bool
	}{{"plain", false, false}, {"wrapped_other_client", true, false}, {"debug_peer", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			c, signer := world(b)
			if bc.wrap {
				res := debuglog.Wrap(c.Resolver)
				c.Resolver, c.SPF.Resolver, c.DKIM.Resolver, c.DMARC.Resolver, c.ARC.Resolver = res, res, res, res, res
			}
			ctx := context.Background()
			if bc.logging {
				dl := debuglog.NewPeers(slog.New(slog.NewTextHandler(io.Discard, nil)), []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}).Logger(netip.MustParseAddr("192.0.2.10"))
				ctx = debuglog.With(ctx, dl)
			}
			benchMessageCtx(b, ctx, c, signer)
		})
	}
}

// benchMessageCtx is benchMessage with the message's context given.
func benchMessageCtx(b *testing.B, ctx context.Context, c *Checker, signer *dkim.Signer) {
	body := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again and again.\r\n", 28)
	m := "From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: lunch\r\nMessage-ID: <1@example.test>\r\n\r\n" + body
	sig, err := signer.Sign(strings.NewReader(m))
	if err != nil {
		b.Fatal(err)
	}
	fields, err := dkim.ReadHeader(bufio.NewReader(strings.NewReader(sig + m)))
	if err != nil {
		b.Fatal(err)
	}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}
	bodyBytes := []byte(body)
	b.ReportAllocs()
	for b.Loop() {
		msg := c.Start(ctx, env)
		for _, f := range fields {
			msg.Header(f)
		}
		msg.EndOfHeaders()
		msg.Write(bodyBytes)
		if r := msg.Finish(); r.Action != Accept {
			b.Fatal(r.Action, r.Reasons)
		}
	}
}
