package dkim

// Issue 23's bounds on the work one message can cause: the key's size
// and exponent, h= length, field selection in linear time, signatures
// per message, the budget, and rsa-sha1 as a policy result.

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"mailwall/internal/labtest"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
)

// forgedSignatures puts n DKIM-Signature fields on msg, for d=domain and
// s=selector, with a correct body hash (so a verifier goes on to the key)
// and a b= of sigBytes random octets, the size of the key's modulus, below
// it: what makes a verifier do the key's arithmetic.
func forgedSignatures(n int, domain, selector string, sigBytes int, msg string) string {
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	bh := NewBodyHash(RSASHA256, Relaxed, -1)
	bh.Write([]byte(body))
	bhv := base64.StdEncoding.EncodeToString(bh.Sum())
	var b strings.Builder
	for range n {
		sig := make([]byte, sigBytes)
		rand.Read(sig)
		sig[0] = 0x01
		field := FoldTags("DKIM-Signature", []string{"v=1", "a=rsa-sha256", "c=relaxed/relaxed", "d=" + domain, "s=" + selector,
			"h=from:to:subject", "bh=" + bhv, "b="})
		b.WriteString(FillSignature(field, sig))
	}
	return b.String() + head + "\r\n\r\n" + body
}

// TestCostlyKeysRefused: keys over 4096 bits or with an exponent other
// than 65537 are a permerror with the reason, before any arithmetic: ten
// signatures against a 262,144-bit key with e=2^31-1 cost well under 50 ms
// (before issue 23, about 3 s each). Keys under 1024 bits are "policy".
func TestCostlyKeysRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		bits, e   int
		status    Status
		reason    string
		sigBytes  int
		signature int
	}{
		{"262144 bits, e=2^31-1", 262144, 1<<31 - 1, PermError, "RSA key of 262144 bits; at most 4096 accepted (RFC 8301)", 262144 / 8, 10},
		{"8192 bits", 8192, 65537, PermError, "RSA key of 8192 bits; at most 4096 accepted (RFC 8301)", 1024, 1},
		{"e=3", 2048, 3, PermError, "RSA key exponent 3; only 65537 accepted", 256, 1},
		{"e=2^31-1", 4096, 1<<31 - 1, PermError, "RSA key exponent 2147483647; only 65537 accepted", 512, 1},
		{"512 bits", 512, 65537, Policy, "512-bit RSA key is too short (RFC 8301)", 64, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := labtest.CostlyRSAKeyRecord(t, tc.bits, tc.e)
			v := &Verifier{Resolver: zoneResolver(t, "costly.test", ZoneRecord("k", "costly.test", rec))}
			msg := forgedSignatures(tc.signature, "costly.test", "k", tc.sigBytes, plainMessage)
			start := time.Now()
			res := verifyString(t, v, msg)
			took := time.Since(start)
			if len(res) != tc.signature {
				t.Fatalf("%d results for %d signatures", len(res), tc.signature)
			}
			for _, r := range res {
				if r.Status != tc.status || r.Reason != tc.reason {
					t.Errorf("got %s (%s), want %s (%s)", r.Status, r.Reason, tc.status, tc.reason)
				}
			}
			// The DNS answers and the body hashes are most of it.
			if took > 500*time.Millisecond {
				t.Errorf("verification took %s", took)
			}
			t.Logf("%d signatures: %s", tc.signature, took)
		})
	}
}

// TestVerifyHashRefusesCostlyKeys: the primitive ARC uses refuses such a
// key too, whoever got it past LookupKey.
func TestVerifyHashRefusesCostlyKeys(t *testing.T) {
	k, err := ParseKey(labtest.CostlyRSAKeyRecord(t, 16384, 65537))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = VerifyHash(k, RSASHA256, make([]byte, 32), make([]byte, 2048))
	if err == nil || !strings.Contains(err.Error(), "RSA key of 16384 bits") || time.Since(start) > 10*time.Millisecond {
		t.Errorf("VerifyHash: %v after %s", err, time.Since(start))
	}
}

// rsaSHA1Signature signs msg with rsa-sha1 (our Signer makes only sha256).
func rsaSHA1Signature(t *testing.T, key *rsa.PrivateKey, msg string) string {
	t.Helper()
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	bh := NewBodyHash(RSASHA1, Relaxed, -1)
	bh.Write([]byte(body))
	field := FoldTags("DKIM-Signature", []string{"v=1", "a=rsa-sha1", "c=relaxed/relaxed", "d=example.test", "s=rsa",
		"h=from:to:subject", "bh=" + base64.StdEncoding.EncodeToString(bh.Sum()), "b="})
	fields := parseFields(t, head+"\r\n\r\n")
	hashed := HeaderHash(fields, Field{Name: "DKIM-Signature", Raw: field + "\r\n"}, RSASHA1, Relaxed, []string{"from", "to", "subject"})
	if len(hashed) != sha1.Size {
		t.Fatalf("hash of %d octets", len(hashed))
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, hashed)
	if err != nil {
		t.Fatal(err)
	}
	return FillSignature(field, sig) + msg
}

func parseFields(t testing.TB, head string) []Field {
	t.Helper()
	fields, err := ReadHeader(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		t.Fatal(err)
	}
	return fields
}

// TestRSASHA1IsPolicy: RFC 8301 §3.1, rsa-sha1 is not to be taken as
// valid: dkim=policy with the reason; AcceptRSASHA1 verifies it, weak.
func TestRSASHA1IsPolicy(t *testing.T) {
	keys, res := testKeys(t)
	msg := rsaSHA1Signature(t, keys["rsa"].(*rsa.PrivateKey), plainMessage)
	r := verifyString(t, &Verifier{Resolver: res}, msg)
	if len(r) != 1 || r[0].Status != Policy || r[0].Reason != "rsa-sha1 is not accepted (RFC 8301)" || r[0].Domain != "example.test" {
		t.Errorf("default: %+v", r)
	}
	r = verifyString(t, &Verifier{Resolver: res, AcceptRSASHA1: true}, msg)
	if len(r) != 1 || r[0].Status != Pass || !r[0].Weak || !strings.Contains(r[0].Reason, "rsa-sha1 is weak") {
		t.Errorf("accepted: %+v", r)
	}
	if r := verifyString(t, &Verifier{Resolver: res, AcceptRSASHA1: true}, strings.Replace(msg, "Joe.", "Jim.", 1)); r[0].Status != Fail {
		t.Errorf("accepted, body changed: %+v", r)
	}
}

// TestSignaturesPerMessageBounded: past MaxSignatures, one result stands
// for the rest, so thousands of junk signatures make a dozen results.
func TestSignaturesPerMessageBounded(t *testing.T) {
	keys, res := testKeys(t)
	signed := sign(t, &Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"]}, plainMessage)
	junk := strings.Repeat("DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=x; h=from; bh=; b=\r\n", 900)
	r := verifyString(t, &Verifier{Resolver: res}, signed)
	if len(r) != 1 || r[0].Status != Pass {
		t.Fatalf("one signature: %+v", r)
	}
	r = verifyString(t, &Verifier{Resolver: res}, junk+signed)
	if len(r) != DefaultMaxSignatures+1 {
		t.Fatalf("%d results for 901 signatures", len(r))
	}
	last := r[len(r)-1]
	if last.Status != Policy || last.Reason != "891 more signatures not checked: at most 10 per message" {
		t.Errorf("last result: %+v", last)
	}
	r = verifyString(t, &Verifier{Resolver: res, MaxSignatures: 3}, junk[:3*len(junk)/900]+signed)
	if len(r) != 4 || r[3].Reason != "1 more signatures not checked: at most 3 per message" {
		t.Errorf("MaxSignatures 3, 4 signatures: %+v", r)
	}
}

// TestLongHeaderListRefused: h= past MaxSignedHeaders is a permerror, found
// before any work; 25,000 names over 200,000 fields (54 s of CPU before
// issue 23) is refused in milliseconds.
func TestLongHeaderListRefused(t *testing.T) {
	keys, res := testKeys(t)
	v := &Verifier{Resolver: res}
	for _, n := range []int{MaxSignedHeaders, MaxSignedHeaders + 1} {
		s := &Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"], Headers: []string{"From", "X-Pad"},
			Oversign: slicesRepeat("X-Pad", n-1)}
		r := verifyString(t, v, sign(t, s, plainMessage))
		want := Pass
		if n > MaxSignedHeaders {
			want = PermError
		}
		if len(r) != 1 || r[0].Status != want {
			t.Errorf("h= of %d names: %+v", n, r)
		}
		if want == PermError && r[0].Reason != fmt.Sprintf("h= lists %d fields; at most %d accepted", n, MaxSignedHeaders) {
			t.Errorf("reason: %q", r[0].Reason)
		}
	}

	fields := make([]Field, 0, 200_001)
	fields = append(fields, NewField("From", " a@example.test"))
	for i := range 200_000 {
		fields = append(fields, NewField(fmt.Sprintf("X-%d", i%5000), " x"))
	}
	names := append([]string{"from"}, slicesRepeat("x-1", 24_999)...)
	sig := " v=1; a=rsa-sha256; d=example.test; s=rsa; h=" + strings.Join(names, ":") + "; bh=AAAA; b=AAAA"
	fields = append([]Field{NewField("DKIM-Signature", sig)}, fields...)
	start := time.Now()
	vn := v.Start(fields)
	vn.Write([]byte("body\r\n"))
	r := vn.Finish(context.Background())
	if len(r) != 1 || r[0].Status != PermError || !strings.Contains(r[0].Reason, "h= lists 25000 fields") {
		t.Errorf("25,000 names: %+v", r)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("25,000 names over 200,000 fields took %s", took)
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// headerHashReference is the selection before HeaderIndex, a scan of the
// fields per name (RFC 6376 §5.4.2), kept to check the index against.
func headerHashReference(fields []Field, sigField Field, alg, canon string, headers []string) []byte {
	h := newHash(alg)
	used := make(map[int]bool, len(headers))
	for _, name := range headers {
		for i := len(fields) - 1; i >= 0; i-- {
			if used[i] || !strings.EqualFold(fields[i].Name, name) {
				continue
			}
			used[i] = true
			h.Write([]byte(canonHeader(fields[i], canon)))
			break
		}
	}
	s := canonHeader(Field{Name: sigField.Name, Raw: withoutB(sigField.Raw)}, canon)
	h.Write([]byte(strings.TrimSuffix(s, "\r\n")))
	return h.Sum(nil)
}

// TestHeaderIndexMatchesScan: the index selects what the scan selected,
// over random headers and h= lists with repeated names, names in other
// cases, names with no field, and one index shared by several lists; the
// same for the small headers Hash scans itself.
func TestHeaderIndexMatchesScan(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(23, 6376))
	pool := []string{"From", "from", "FROM", "To", "Subject", "subject", "Received", "X-A", "x-a", "Date", "Missing"}
	for round := range 300 {
		var fields []Field
		// Up to smallHeader fields are scanned, more indexed: both.
		for i := range rng.IntN(3 * smallHeader) {
			fields = append(fields, NewField(pool[rng.IntN(len(pool)-1)], fmt.Sprintf(" v%d  \r\n\t folded", i)))
		}
		sig := NewField("DKIM-Signature", " v=1; b=abc; bh=x")
		ix := NewHeaderIndex(fields)
		for range 3 {
			var names []string
			for range rng.IntN(120) {
				names = append(names, pool[rng.IntN(len(pool))])
			}
			for _, canon := range []string{Simple, Relaxed} {
				got := ix.Hash(sig, RSASHA256, canon, names)
				want := headerHashReference(fields, sig, RSASHA256, canon, names)
				if string(got) != string(want) {
					t.Fatalf("round %d, %s, h=%v over %v", round, canon, names, fields)
				}
				if string(HeaderHash(fields, sig, RSASHA256, canon, names)) != string(want) {
					t.Fatalf("round %d: HeaderHash differs", round)
				}
			}
		}
	}
}

// TestHeaderSelectionLinear: the selection is linear, not names x fields:
// 25,000 names over 200,000 fields without the h= cap (HeaderHash itself
// has none) takes milliseconds; the scan took about a minute.
func TestHeaderSelectionLinear(t *testing.T) {
	fields := headerFields(200_000, 5000)
	names := headerNames(25_000, 5000)
	start := time.Now()
	HeaderHash(fields, NewField("DKIM-Signature", " b=x"), RSASHA256, Relaxed, names)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
}

func headerFields(n, distinct int) []Field {
	fields := make([]Field, n)
	for i := range fields {
		fields[i] = NewField(fmt.Sprintf("X-Name-%d", i%distinct), " value")
	}
	return fields
}

func headerNames(n, distinct int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("x-name-%d", (i*7)%distinct)
	}
	return names
}

// BenchmarkHeaderHash: n names over n fields; ns/op grows with n, not n².
func BenchmarkHeaderHash(b *testing.B) {
	for _, n := range []int{500, 5000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			fields, names := headerFields(n, n/10), headerNames(n, n/10)
			sig := NewField("DKIM-Signature", " b=x")
			for b.Loop() {
				HeaderHash(fields, sig, RSASHA256, Relaxed, names)
			}
		})
	}
}

// TestBudget: with the budget spent, the signatures left are "policy",
// not evaluated; the budget excludes nothing else.
func TestBudget(t *testing.T) {
	keys, res := testKeys(t)
	s := &Signer{Domain: "example.test", Selector: "rsa", Key: keys["rsa"]}
	msg := sign(t, s, sign(t, s, sign(t, s, plainMessage)))
	v := &Verifier{Resolver: res}
	for _, r := range verifyString(t, v, msg) {
		if r.Status != Pass {
			t.Fatalf("within the budget: %+v", r)
		}
	}
	ctx := WithBudget(context.Background(), time.Nanosecond)
	r, err := v.Verify(ctx, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	// The index and the first check spend the nanosecond.
	if len(r) != 3 || r[2].Status != Policy || !strings.Contains(r[2].Reason, "verification budget (1ns) is spent") || r[2].Domain != "example.test" {
		t.Errorf("budget of 1ns: %+v", r)
	}
	v.Budget = time.Nanosecond
	if r := verifyString(t, v, msg); r[2].Status != Policy {
		t.Errorf("Verifier.Budget 1ns: %+v", r)
	}
}

// TestBodyHashesMatchSeparate: the shared streams give each signature the
// hash its own body hasher gave, for both canonicalizations, both hashes,
// and l= values before, at and past the body's end.
func TestBodyHashesMatchSeparate(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(23, 8617))
	pieces := []string{"text", " ", "  ", "\t", "\r\n", "\n", "\r", "line of words\r\n", "\r\n\r\n"}
	for round := range 200 {
		var body strings.Builder
		for range rng.IntN(60) {
			body.WriteString(pieces[rng.IntN(len(pieces))])
		}
		var bs BodyHashes
		type want struct {
			id     BodyHashID
			sum    []byte
			length int64
		}
		var wants []want
		for range 1 + rng.IntN(8) {
			alg := []string{RSASHA256, Ed25519SHA256, RSASHA1}[rng.IntN(3)]
			canon := []string{Simple, Relaxed}[rng.IntN(2)]
			limit := int64(rng.IntN(body.Len()+10)) - 3
			if limit < -1 {
				limit = -1
			}
			one := newBodyHasher(newHash(alg), canon, limit)
			writeInPieces(rng, one, body.String())
			wants = append(wants, want{bs.Add(alg, canon, limit), one.Sum(), one.written})
		}
		writeInPieces(rng, &bs, body.String())
		for i, w := range wants {
			sum, n := bs.Sum(w.id)
			if string(sum) != string(w.sum) || n != w.length {
				t.Fatalf("round %d, signature %d (limit %d): length %d, want %d; sums differ: %v", round, i, w.id.limit, n, w.length, string(sum) != string(w.sum))
			}
		}
		if len(bs.streams) > 4 {
			t.Fatalf("%d streams", len(bs.streams))
		}
	}
}

func writeInPieces(rng *mrand.Rand, w interface{ Write([]byte) (int, error) }, s string) {
	for len(s) > 0 {
		n := 1 + rng.IntN(len(s))
		w.Write([]byte(s[:n]))
		s = s[n:]
	}
}

// TestBodyHashedOncePerStream: ten signatures with ten different l= over
// one canonicalization hash the body once, as one signature does.
func TestBodyHashedOncePerStream(t *testing.T) {
	keys, res := testKeys(t)
	body := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 4<<20/64)
	msg := "From: a@example.test\r\nSubject: big\r\n\r\n" + body
	var signed strings.Builder
	for i := range 10 {
		s := &Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"]}
		field := sign(t, s, msg)
		// An l= per signature (it breaks b=, not the body hash).
		signed.WriteString(strings.Replace(field[:strings.Index(field, "From: a@")], "bh=", fmt.Sprintf("l=%d; bh=", len(body)-i), 1))
	}
	fields := parseFields(t, signed.String()+"From: a@example.test\r\nSubject: big\r\n\r\n")
	vn := (&Verifier{Resolver: res}).Start(fields)
	vn.Write([]byte(body))
	if len(vn.sigs) != 10 || len(vn.bodies.streams) != 1 {
		t.Fatalf("%d signatures, %d body streams", len(vn.sigs), len(vn.bodies.streams))
	}
	for _, r := range vn.Finish(context.Background()) {
		// The body hash (of the whole body) does not match a prefix's.
		if r.Status != Fail || r.BodyBytes != int64(len(body)) {
			t.Errorf("%+v", r)
		}
	}
}
