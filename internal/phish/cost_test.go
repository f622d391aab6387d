package phish

import (
	"context"
	"strings"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/benchmsg"
)

// costHeader is the header of bench/milter's messages, with a
// DKIM-Signature of the length a real one has.
const costHeader = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=bench;\r\n" +
	" h=from:to:subject:date:message-id:mime-version:content-type;\r\n" +
	" bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
	" b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBpdHMgbGVuZ3RoIGZvciB0aGUgYmVuY2htYXJr\r\n" +
	"  dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBpdHMgbGVuZ3RoIGZvciB0aGUgYmVuY2htYXJr\r\n" +
	"  dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwganVzdCBpdHMgbGVuZ3RoIGZvciB0aGUgYmVuY2htYXJr\r\n" +
	benchmsg.Header

// costBody is bench/milter's body of about size octets with its link
// in the first line.
func costBody(size int) string { return benchmsg.Body(size, true) }

// BenchmarkAnalyzeSmallLink is what the milter's phishing analyzer costs
// on bench/milter's small message (2 KB of text with one link),
// authenticated as the bench authenticates it: the decoding the
// pipeline shares (analysis.Message.Content) and the rules.
func BenchmarkAnalyzeSmallLink(b *testing.B) {
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		b.Fatal(err)
	}
	fields, body := msg(b, costHeader+costBody(2<<10))
	b.ReportAllocs()
	for b.Loop() {
		m := &analysis.Message{Fields: fields, Body: body, Rcpts: []string{"rcpt@rcpt.test"}, SPF: "pass", SPFDomain: "example.test",
			DKIMPass: []string{"example.test"}, DMARC: "pass", DMARCPolicy: "reject", HeaderFrom: "example.test", Decode: Extract}
		if r := c.Analyze(context.Background(), m); len(r.Hits) != 0 {
			b.Fatal(r.Hits)
		}
	}
}

// BenchmarkExtract1MB decodes bench/milter's 1 MB message: plain text
// with one link in its first line.
func BenchmarkExtract1MB(b *testing.B) {
	fields, body := msg(b, costHeader+costBody(1<<20))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if c := Extract(fields, body); len(c.Links) != 1 {
			b.Fatal(c.Links)
		}
	}
}

// BenchmarkExtract1MBHTML decodes 1 MB of HTML newsletter: paragraphs
// with a link each.
func BenchmarkExtract1MBHTML(b *testing.B) {
	head := strings.Replace(costHeader, "Content-Type: text/plain", "Content-Type: text/html; charset=utf-8", 1)
	var body strings.Builder
	body.WriteString("<html><body>\r\n")
	for body.Len() < 1<<20 {
		body.WriteString(`<p style="margin:0">The quick brown fox jumps over the lazy dog, <a href="https://www.example.test/item?id=4711">again and again</a>.</p>` + "\r\n")
	}
	body.WriteString("</body></html>\r\n")
	fields, raw := msg(b, head+body.String())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if c := Extract(fields, raw); len(c.Links) == 0 {
			b.Fatal("no links")
		}
	}
}

// BenchmarkExtract64KB decodes a message of maxText octets, like
// BenchmarkExtract1MB's in all else: the bounds make the two cost
// about the same.
func BenchmarkExtract64KB(b *testing.B) {
	fields, body := msg(b, costHeader+costBody(maxText))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if c := Extract(fields, body); len(c.Links) != 1 {
			b.Fatal(c.Links)
		}
	}
}
