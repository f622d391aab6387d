package dkim

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// BenchmarkVerify1MB: one ed25519 signature over a 1 MB body, key cached.
func BenchmarkVerify1MB(b *testing.B) {
	keys, res := testKeys(b)
	body := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 1<<20/64)
	msg := "From: a@example.test\r\nSubject: big\r\n\r\n" + body
	field, err := (&Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"]}).Sign(strings.NewReader(msg))
	if err != nil {
		b.Fatal(err)
	}
	signedBytes := []byte(field + msg)
	v := &Verifier{Resolver: res}
	b.SetBytes(int64(len(signedBytes)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := v.Verify(context.Background(), bytes.NewReader(signedBytes))
		if err != nil || r[0].Status != Pass {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkSelfCanonical: the relaxed fast path over 1 MB of plain text.
func BenchmarkSelfCanonical(b *testing.B) {
	body := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 1<<20/64))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if n := selfCanonical(body, true); n != len(body) {
			b.Fatal(n)
		}
	}
}

// BenchmarkVerifyTenSignatures10MB: ten Ed25519 signatures over a 10 MB
// body. They share one body hash pass (BodyHashes); before issue 23 each
// made its own: 95 ms a message, now under 10.
func BenchmarkVerifyTenSignatures10MB(b *testing.B) {
	keys, res := testKeys(b)
	body := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 10<<20/64)
	msg := "From: a@example.test\r\nSubject: big\r\n\r\n" + body
	signed := msg
	for range 10 {
		f, err := (&Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"]}).Sign(strings.NewReader(msg))
		if err != nil {
			b.Fatal(err)
		}
		signed = f + signed
	}
	v := &Verifier{Resolver: res}
	data := []byte(signed)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := v.Verify(context.Background(), bytes.NewReader(data))
		if err != nil || len(r) != 10 || r[9].Status != Pass {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkParseSignature: a folded RSA-SHA256 signature as a milter
// passes it (b= of a 2048-bit key over several lines).
func BenchmarkParseSignature(b *testing.B) {
	sig := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 10)[:344]
	var folded strings.Builder
	for i := 0; i < len(sig); i += 70 {
		folded.WriteString("\r\n\t ")
		folded.WriteString(sig[i:min(i+70, len(sig))])
	}
	value := "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;\r\n\ts=sel2048; t=1733400000;" +
		"\r\n\th=from:to:subject:date:message-id:mime-version:content-type;\r\n\tbh=" +
		"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=" + folded.String()
	if _, err := ParseSignature(value); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSignature(value); err != nil {
			b.Fatal(err)
		}
	}
}
