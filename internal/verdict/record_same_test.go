package verdict

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/benchmsg"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/spf"
)

// TestRecordAsBefore: Record's row, whole, for results of every kind
// of stage (passes, failures, problems, DNSSEC, an override, internal
// mail, nothing at all) is the one it made before its lists were sized
// at once and its header values cut at the ends first (2026-12): the
// JSON here is the old code's.
func TestRecordAsBefore(t *testing.T) {
	want := []string{
		`{"id":0,"at":"2027-01-15T08:00:00Z","node":"mx1","source":"milter","queue_id":"4QABCDEF12","client_ip":"192.0.2.6","client_name":"mail.sender.example","helo":"mail.sender.example","mail_from":"bounce+5@sender.example","from_domain":"sender.example","rcpts":["user@rcpt.test"],"action":"accept","stage":"content","verdict":"pass","iprev":"pass","spf":"pass","dkim":"pass:sender.example","dmarc":"pass","arc":"","score":1,"rules":["link_host_new=3","classify_ham=-2"],"reasons":null,"header_from":"","message_id":"","subject":"","size":0,"reply":"","details":{"stages":[{"stage":"helo","result":"pass"},{"stage":"iprev","result":"pass","reason":"name mail.sender.example"},{"stage":"spf","result":"pass","reason":"domain sender.example; matched ip4:192.0.2.0/24"},{"stage":"dkim","result":"pass","reason":"d=sender.example s=s2026"},{"stage":"dmarc","result":"pass","reason":"policy domain sender.example, p=reject"},{"stage":"phish","result":"score 3"},{"stage":"dnsbl","result":"score 0"},{"stage":"classify","result":"score -2"}],"hits":[{"rule":"link_host_new","weight":3,"detail":"www.club-sender.example first seen today"},{"rule":"classify_ham","weight":-2,"detail":"p(junk) 0.04 under 0.20"}],"headers":[{"name":"Authentication-Results","value":"mx1.example.test; iprev=pass policy.iprev=192.0.2.6 (mail.sender.example); spf=pass smtp.mailfrom=bounce+5@sender.example; dkim=pass header.d=sender.example header.s=s2026 header.a=rsa-sha256 header.b=AbCdEfGh; arc=none; dmarc=pass (p=reject dis=none) header.from=sender.example"},{"name":"X-Mailwall-Verdict","value":"pass (action=accept; stage=content)"},{"name":"X-Mailwall-Score","value":"1 (link_host_new=3 classify_ham=-2)"}]},"feedback":""}`,
		`{"id":0,"at":"2027-01-15T08:00:00Z","node":"mx1","source":"milter","queue_id":"4QABCDEF12","client_ip":"192.0.2.6","client_name":"mail.sender.example","helo":"mail.sender.example","mail_from":"bounce+5@sender.example","from_domain":"","rcpts":["user@rcpt.test"],"action":"reject","stage":"dmarc","verdict":"fail","iprev":"fail","spf":"fail","dkim":"fail:bank.test","dmarc":"fail","arc":"","score":45,"rules":["brand_from_domain=45"],"reasons":["dmarc: fail"],"header_from":"","message_id":"","subject":"","size":0,"reply":"550 5.7.1 Message rejected: dmarc: fail","details":{"stages":[{"stage":"helo","result":"pass"},{"stage":"iprev","result":"fail","reason":"no PTR record"},{"stage":"spf","result":"fail","reason":"domain bank.test; matched -all; not authorized"},{"stage":"dkim","result":"fail","reason":"d=bank.test s=s1: body hash mismatch"},{"stage":"dmarc","result":"fail","reason":"policy domain bank.test, p=reject; no aligned identifier"},{"stage":"phish","result":"score 45"}],"hits":[{"rule":"brand_from_domain","weight":45,"detail":"bank.test looks like bank.example"}],"headers":[{"name":"Authentication-Results","value":"mx.test; spf=fail"}]},"feedback":""}`,
		`{"id":0,"at":"2027-01-15T08:00:00Z","node":"mx1","source":"milter","queue_id":"","client_ip":"","client_name":"","helo":"","mail_from":"","from_domain":"","rcpts":null,"action":"accept","stage":"internal","verdict":"internal","iprev":"","spf":"","dkim":"","dmarc":"","arc":"","score":0,"rules":null,"reasons":null,"header_from":"","message_id":"","subject":"","size":0,"reply":"","details":{"stages":[{"stage":"internal","result":"signed, not checked","reason":"internal host or authenticated sender"}]},"feedback":""}`,
		`{"id":0,"at":"2027-01-15T08:00:00Z","node":"mx1","source":"milter","queue_id":"4QABCDEF12","client_ip":"192.0.2.6","client_name":"mail.sender.example","helo":"mail.sender.example","mail_from":"bounce+5@sender.example","from_domain":"","rcpts":["user@rcpt.test"],"action":"tempfail","stage":"","verdict":"","iprev":"","spf":"temperror","dkim":"","dmarc":"none","arc":"","score":0,"rules":[],"reasons":null,"header_from":"","message_id":"","subject":"","size":0,"reply":"451 4.7.1 Temporary failure, try again later","details":{"stages":[{"stage":"s25r","result":"dynamic-looking","reason":"dynamic"},{"stage":"spf","result":"temperror","reason":"domain x.example; dns timeout; dnssec secure"},{"stage":"dkim","result":"none","reason":"no signature"},{"stage":"dmarc","result":"none","reason":"policy dnssec insecure; set aside: trusted_forwarder arc.example"},{"stage":"classifier","result":"score 0","reason":"model missing; part undecodable"}]},"feedback":""}`,
		`{"id":0,"at":"2027-01-15T08:00:00Z","node":"mx1","source":"milter","queue_id":"4QABCDEF12","client_ip":"192.0.2.6","client_name":"mail.sender.example","helo":"mail.sender.example","mail_from":"bounce+5@sender.example","from_domain":"","rcpts":["user@rcpt.test"],"action":"accept","stage":"","verdict":"","iprev":"pass","spf":"pass","dkim":"pass:a.example fail:b.example","dmarc":"","arc":"","score":0,"rules":null,"reasons":null,"header_from":"","message_id":"","subject":"","size":0,"reply":"","details":{"stages":[{"stage":"iprev","result":"pass","reason":"forward-confirmed; name mx.x.example"},{"stage":"spf","result":"pass","reason":"matched a"},{"stage":"dkim","result":"pass","reason":"d=a.example s=s key dnssec secure"},{"stage":"dkim","result":"fail","reason":"d=b.example s=t"}]},"feedback":""}`,
		`{"id":0,"at":"2027-01-15T08:00:00Z","node":"mx1","source":"milter","queue_id":"4QABCDEF12","client_ip":"192.0.2.6","client_name":"mail.sender.example","helo":"mail.sender.example","mail_from":"bounce+5@sender.example","from_domain":"","rcpts":["user@rcpt.test"],"action":"accept","stage":"","verdict":"","iprev":"","spf":"","dkim":"","dmarc":"","arc":"","score":0,"rules":null,"reasons":null,"header_from":"","message_id":"","subject":"","size":0,"reply":"","details":{},"feedback":""}`,
	}
	for i, c := range k2RecordCases() {
		v := c.r.Record(c.env, "mx1", time.Unix(1_800_000_000, 0).UTC())
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want[i] {
			t.Errorf("case %d:\n%s\nwant\n%s", i, b, want[i])
		}
	}
}

// TestOneLineNoCopy: a value that is one line but for the space after
// the colon (or a line end) is OneLine's without a copy.
func TestOneLineNoCopy(t *testing.T) {
	for _, s := range []string{" pass (action=accept; stage=content)", " <m1@sender.example>\r\n", "\tplain"} {
		if n := testing.AllocsPerRun(10, func() { OneLine(s) }); n != 0 {
			t.Errorf("OneLine(%q): %v allocations", s, n)
		}
		if got, want := OneLine(s), strings.Join(strings.Fields(s), " "); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", s, got, want)
		}
	}
}

type k2RecordCase struct {
	r   *Result
	env Envelope
}

func k2RecordCases() []k2RecordCase {
	env := Envelope{ClientIP: netip.MustParseAddr("::ffff:192.0.2.6"), ClientName: "mail.sender.example", Helo: "mail.sender.example",
		MailFrom: "bounce+5@sender.example", Rcpts: []string{"user@rcpt.test"}, QueueID: "4QABCDEF12"}
	w1 := &Result{Action: Reject, Stage: "dmarc", Verdict: "fail", Reasons: []string{"dmarc: fail"},
		Helo: "pass", IPRev: conncheck.IPRev{Result: "fail", Reason: "no PTR record"},
		SPF:      spf.Outcome{Result: spf.Fail, Domain: "bank.test", Mechanism: "-all", Explanation: "not authorized"},
		DKIM:     []dkim.Result{{Status: dkim.Status("fail"), Domain: "bank.test", Selector: "s1", Reason: "body hash mismatch"}},
		DMARC:    dmarc.Result{Result: "fail", Reason: "no aligned identifier", PolicyDomain: "bank.test", Policy: dmarc.PolicyReject},
		Analyses: []Analysis{{Name: "phish", Result: analysis.Result{Hits: []analysis.Hit{{Rule: "brand_from_domain", Weight: 45, Detail: "bank.test looks like bank.example"}}}}},
		Hits:     []analysis.Hit{{Rule: "brand_from_domain", Weight: 45, Detail: "bank.test looks like bank.example"}},
		Headers:  []HeaderField{{"Authentication-Results", " mx.test;\r\n\tspf=fail"}}}
	return []k2RecordCase{
		{b24Result(), env},
		{w1, env},
		{&Result{Action: Accept, Internal: true, Signed: true}, Envelope{}},
		{&Result{Action: TempFail, S25R: "dynamic", SPF: spf.Outcome{Result: spf.TempError, Problem: "dns timeout", Domain: "x.example", DNSSEC: "secure"},
			DMARC: dmarc.Result{Result: "none", PolicyDNSSEC: "insecure"}, Override: "trusted_forwarder arc.example",
			Analyses: []Analysis{{Name: "classifier", Result: analysis.Result{Problems: []string{"model missing", "part undecodable"}}}}}, env},
		{&Result{Action: Accept, SPF: spf.Outcome{Result: spf.Pass, Mechanism: "a"}, IPRev: conncheck.IPRev{Result: "pass", Reason: "forward-confirmed", Name: "mx.x.example"},
			DKIM: []dkim.Result{{Status: dkim.Pass, Domain: "a.example", Selector: "s", KeyDNSSEC: "secure"}, {Status: dkim.Fail, Domain: "b.example", Selector: "t"}}}, env},
		{&Result{Action: Accept}, env},
	}
}

// BenchmarkMessageFacts: the store's From, Message-ID and Subject of
// bench/milter's message, signed (a DKIM-Signature first), as the
// milter takes them after the reply.
func BenchmarkMessageFacts(b *testing.B) {
	fields, err := dkim.ReadHeader(bufio.NewReader(strings.NewReader("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.test;\r\n" +
		" s=sel; t=1; h=from:to:subject:date:message-id; bh=x; b=y\r\n" + benchmsg.Header)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if from, _, _ := MessageFacts(fields); from != "sender@example.test" {
			b.Fatal(from)
		}
	}
}

// TestOneLineEvery: OneLine is strings.Join(strings.Fields(s), " ") for
// every string of up to five pieces of text, white space of each kind,
// a control character and Unicode's spaces and letters.
func TestOneLineEvery(t *testing.T) {
	pieces := []string{"a", "bc", " ", "  ", "\t", "\r\n", "\n", "\v\f", "\x01", "\u00a0", "é"}
	var walk func(s string, n int)
	walk = func(s string, n int) {
		if got, want := OneLine(s), strings.Join(strings.Fields(s), " "); got != want {
			t.Fatalf("OneLine(%q) = %q, want %q", s, got, want)
		}
		if n == 0 {
			return
		}
		for _, p := range pieces {
			walk(s+p, n-1)
		}
	}
	walk("", 5)
}

// BenchmarkOneLine: the headers b24Result adds, made one line each, as
// Record does.
func BenchmarkOneLine(b *testing.B) {
	hs := b24Result().Headers
	b.ReportAllocs()
	for b.Loop() {
		for _, h := range hs {
			OneLine(h.Value)
		}
	}
}
