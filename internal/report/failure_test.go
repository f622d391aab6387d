package report

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// failed is a spoof of bank.test: SPF fail, a bank.test signature that
// does not verify, a foreign one that does.
func failed(t *testing.T, record string) *FailedMessage {
	t.Helper()
	rec, err := dmarc.ParseRecord(record)
	if err != nil {
		t.Fatal(err)
	}
	return &FailedMessage{
		Arrival: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), SourceIP: netip.MustParseAddr("192.0.2.66"), QueueID: "4AbC123",
		MailFrom: "alice.smith@bank.test", Rcpts: []string{"bob.jones@rcpt.test"}, Delivery: "reject",
		DMARC: dmarc.Result{Result: dmarc.Fail, HeaderFrom: "bank.test", PolicyDomain: "bank.test", OrgDomain: "bank.test", Record: rec},
		SPF:   "fail", SPFDomain: "bank.test",
		DKIM: []dkim.Result{
			{Status: dkim.Fail, Reason: "body hash did not verify", Domain: "mail.bank.test", Selector: "s1", Identifier: "alice.smith@mail.bank.test"},
			{Status: dkim.Pass, Domain: "esp.example", Selector: "k1"},
		},
		AuthResults: "mx.rcpt.test; spf=fail smtp.mailfrom=alice.smith@bank.test; dkim=fail header.d=mail.bank.test; dmarc=fail header.from=bank.test",
		Header: []byte("Received: from x (x [192.0.2.66])\r\n\tby mx.rcpt.test for <bob.jones@rcpt.test>; Sun, 22 Nov 2026 10:00:00 +0000\r\n" +
			"From: \"Alice\" <alice.smith@bank.test>\r\nTo: bob.jones@rcpt.test,\r\n \"Carol\" <\"carol q\"@rcpt.test>\r\nSubject: Your account\r\n" +
			"Message-ID: <abc.123@bank.test>\r\n\r\n"),
	}
}

func TestFailureKind(t *testing.T) {
	for _, c := range []struct {
		record     string
		dkimOK     bool
		spfOK      bool
		dkimStatus dkim.Status
		spf        string
		want       string
	}{
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test", false, false, dkim.Fail, "fail", "dmarc"},
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test; fo=0", true, false, dkim.Pass, "fail", ""},
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test; fo=1", true, false, dkim.Pass, "fail", "dmarc"},
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test; fo=1", true, true, dkim.Pass, "pass", ""},
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test; fo=d", true, true, dkim.Fail, "pass", "bodyhash"},
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test; fo=s", true, false, dkim.Pass, "fail", "spf"},
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test; fo=s", true, false, dkim.Pass, "softfail", ""},
		{"v=DMARC1; p=reject; ruf=mailto:f@bank.test; fo=d:s:0", false, false, dkim.Fail, "fail", "dmarc"},
		{"v=DMARC1; p=reject; fo=1", false, false, dkim.Fail, "fail", ""},                          // no ruf
		{"v=DMARC1; p=reject; psd=y; ruf=mailto:f@bank.test", false, false, dkim.Fail, "fail", ""}, // RFC 9991 §2
	} {
		m := failed(t, c.record)
		m.DMARC.DKIMAligned, m.DMARC.SPFAligned, m.SPF = c.dkimOK, c.spfOK, c.spf
		m.DKIM[0].Status = c.dkimStatus
		if c.dkimOK && c.spfOK {
			m.DMARC.Result = dmarc.Pass
		}
		if got := FailureKind(m); got != c.want {
			t.Errorf("%s dkim=%v spf=%v %s %s: %q, want %q", c.record, c.dkimOK, c.spfOK, c.dkimStatus, c.spf, got, c.want)
		}
	}
}

func TestFailureReport(t *testing.T) {
	dns := labtest.Serve(t, labtest.Zone(t, "test"), labtest.Zone(t, "example"),
		labtest.Zone(t, "bank.test", `@ IN TXT "v=spf1 ip4:192.0.2.1 -all"`),
		labtest.Zone(t, "reports.example", `bank.test._report._dmarc IN TXT "v=DMARC1"`),
		labtest.Zone(t, "nosy.example", `@ IN A 192.0.2.2`))
	sink := labtest.NewSink(t)
	clock := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	r := &FailureReporter{
		DMARC: &dmarc.Evaluator{Resolver: &dnsx.Client{Servers: []string{dns.Addr()}, Timeout: time.Second}},
		Relay: sink.Addr(), Hostname: "mx.rcpt.test", From: "dmarc-noreply@rcpt.test", Receiver: "rcpt.test", UserAgent: "mailwall/test",
		PerDomain: 2, Now: func() time.Time { return clock },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx)
	m := failed(t, "v=DMARC1; p=reject; ruf=mailto:own@bank.test,mailto:agg@reports.example,mailto:spy@nosy.example")
	if got := r.Report(m); got != "queued" {
		t.Fatalf("report: %s", got)
	}
	var msgs []labtest.SinkMessage
	for range 100 {
		if msgs = sink.Messages(); len(msgs) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	to := map[string]bool{}
	for _, s := range msgs {
		to[s.To[0]] = true
	}
	// The external destination without consent gets nothing.
	if len(msgs) != 2 || !to["own@bank.test"] || !to["agg@reports.example"] {
		t.Fatalf("delivered to %v", to)
	}
	raw := string(msgs[0].Data)
	if !strings.Contains(raw, "smtp.mailfrom=") {
		t.Errorf("redaction took the property name:\n%s", raw)
	}
	for _, secret := range []string{"alice.smith", "bob.jones", "carol q", "Hello"} {
		if strings.Contains(raw, secret) {
			t.Errorf("report shows %q:\n%s", secret, raw)
		}
	}
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Auto-Submitted") != "auto-generated" || msg.Header.Get("From") != "dmarc-noreply@rcpt.test" {
		t.Errorf("header: %v", msg.Header)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "feedback-report" {
		t.Fatalf("content type %q %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []string
	var bodies [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Type"))
		bodies = append(bodies, b)
	}
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "message/feedback-report") || !strings.HasPrefix(parts[2], "text/rfc822-headers") {
		t.Fatalf("parts %q", parts)
	}
	// The fields end where the part does: add the blank line.
	fb, err := textproto.NewReader(bufioReader(append(bodies[1], "\r\n"...))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("feedback part: %v\n%s", err, bodies[1])
	}
	for k, want := range map[string]string{
		"Feedback-Type": "auth-failure", "Version": "1", "Auth-Failure": "dmarc", "Identity-Alignment": "dkim, spf",
		"Delivery-Result": "reject", "DKIM-Domain": "mail.bank.test", "DKIM-Selector": "s1", "Source-IP": "192.0.2.66",
		"Reported-Domain": "bank.test", "Original-Envelope-Id": "4AbC123", "SPF-DNS": "txt : bank.test : v=spf1 ip4:192.0.2.1 -all",
		"User-Agent": "mailwall/test",
	} {
		if got := fb.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	mailFrom := fb.Get("Original-Mail-From")
	if !strings.HasSuffix(mailFrom, "@bank.test>") || mailFrom == "<alice.smith@bank.test>" || !strings.HasSuffix(fb.Get("DKIM-Identity"), "@mail.bank.test") {
		t.Errorf("redacted identities: %q %q", mailFrom, fb.Get("DKIM-Identity"))
	}
	// The same local part gives the same token everywhere in the report.
	token := strings.TrimPrefix(strings.TrimSuffix(mailFrom, "@bank.test>"), "<")
	headers := string(bodies[2])
	if !strings.Contains(headers, "<"+token+"@bank.test>") || !strings.Contains(headers, "Message-ID: <abc.123@bank.test>") ||
		!strings.Contains(headers, "Subject: Your account") || !strings.Contains(headers, "\r\n\tby mx.rcpt.test for <") {
		t.Errorf("redacted header block:\n%s", headers)
	}

	// Rate limit: two per domain and hour.
	if got := r.Report(m); got != "queued" {
		t.Errorf("second report: %s", got)
	}
	if got := r.Report(m); got != "rate_limited" {
		t.Errorf("third report in the hour: %s", got)
	}
	other := failed(t, "v=DMARC1; p=reject; ruf=mailto:own@shop.test")
	other.DMARC.PolicyDomain = "shop.test"
	if got := r.Report(other); got != "queued" {
		t.Errorf("another domain: %s", got)
	}
	clock = clock.Add(time.Hour)
	if got := r.Report(m); got != "queued" {
		t.Errorf("next hour: %s", got)
	}
	if got := r.Report(failed(t, "v=DMARC1; p=reject; rua=mailto:a@bank.test")); got != "not_requested" {
		t.Errorf("without ruf: %s", got)
	}
	// No report on a report: a loop otherwise.
	loop := failed(t, "v=DMARC1; p=reject; ruf=mailto:own@bank.test")
	loop.Header = append([]byte("Auto-Submitted: auto-generated\r\n"), loop.Header...)
	if got := r.Report(loop); got != "not_requested" {
		t.Errorf("auto-submitted message: %s", got)
	}
}

func TestFailureReportRetries(t *testing.T) {
	sink := labtest.NewSink(t)
	var tries atomic.Int32
	sink.Refuse(func(string) error { tries.Add(1); return &smtp.SMTPError{Code: 451, Message: "try later"} })
	r := &FailureReporter{Relay: sink.Addr(), Hostname: "mx.rcpt.test", From: "dmarc-noreply@rcpt.test", Receiver: "rcpt.test", RetryAfter: 20 * time.Millisecond}
	var outcomes []string
	done := make(chan bool, 1)
	r.Outcome = func(o string) {
		outcomes = append(outcomes, o)
		done <- true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx)
	r.Report(failed(t, "v=DMARC1; p=reject; ruf=mailto:own@bank.test"))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no outcome")
	}
	if len(outcomes) != 1 || outcomes[0] != "failure_failed" || len(sink.Messages()) != 0 || tries.Load() != failureAttempts {
		t.Errorf("outcomes %v after %d tries", outcomes, tries.Load())
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
