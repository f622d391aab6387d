package report

import (
	"context"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/store"
)

// smuggled is issue 23's rua=/ruf= URI: written, its host is evil.test
// (which consents to reports for anyone); decoded, it is
// "victim@victim.test> ORCPT=rfc822;x@evil.test", a RCPT TO for
// victim.test with an ESMTP parameter.
const smuggled = "mailto:victim%40victim.test%3E%20ORCPT%3Drfc822%3Bx@evil.test"

func smuggleDNS(t *testing.T) *dmarc.Evaluator {
	dns := labtest.Serve(t, labtest.Zone(t, "test"),
		labtest.Zone(t, "a.test", `@ IN A 192.0.2.1`),
		labtest.Zone(t, "bank.test", `@ IN A 192.0.2.1`),
		labtest.Zone(t, "evil.test", `*._report._dmarc IN TXT "v=DMARC1"`),
		labtest.Zone(t, "victim.test", `@ IN A 192.0.2.9`))
	return &dmarc.Evaluator{Resolver: &dnsx.Client{Servers: []string{dns.Addr()}, Timeout: time.Second}}
}

// onlyRcpts fails the test unless the relay was asked for exactly want
// (RCPT TO lines), nothing for victim.test and no parameters.
func onlyRcpts(t *testing.T, sink *labtest.LineSink, want ...string) {
	t.Helper()
	got := sink.Rcpts()
	for _, l := range got {
		if strings.Contains(strings.ToLower(l), "victim") || strings.Contains(strings.ToUpper(l), "ORCPT") {
			t.Errorf("the relay was asked for %q", l)
		}
	}
	var w []string
	for _, a := range want {
		w = append(w, "RCPT TO:<"+a+">")
	}
	if strings.Join(got, "|") != strings.Join(w, "|") {
		t.Errorf("RCPT TO lines %q, want %q", got, w)
	}
}

// TestSendSmuggledAddress: a delivery to the smuggled URI (stored by a
// version that let it through) sends nothing to victim.test, with or
// without the destination check; the other destination gets its report.
func TestSendSmuggledAddress(t *testing.T) {
	eval := smuggleDNS(t)
	for _, check := range []bool{true, false} {
		st, err := store.Open(context.Background(), "sqlite", t.TempDir()+"/m.db")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx := context.Background()
		r := &store.ReportOut{PolicyDomain: "a.test", Begin: day, End: day.Add(24*time.Hour - time.Second), ReportID: "r1@mx.receiver.test",
			Filename: "x.xml.gz", Created: day.Add(25 * time.Hour), GZ: []byte{0x1f, 0x8b}}
		if _, err := st.SaveReport(ctx, r, []dmarc.URI{{URI: smuggled}, {URI: "mailto:dmarc@evil.test"}}); err != nil {
			t.Fatal(err)
		}
		sink := labtest.NewLineSink(t)
		s := &Sender{Store: st, Relay: sink.Addr(), Hostname: "mx.receiver.test", From: "dmarc-noreply@receiver.test", Receiver: "mx.receiver.test",
			Now: func() time.Time { return day.Add(25 * time.Hour) }}
		if check {
			s.DMARC = eval
		}
		sum, err := s.Send(ctx, false)
		if err != nil || sum.Sent != 1 || sum.Dropped != 1 {
			t.Errorf("check %v: %+v %v", check, sum, err)
		}
		onlyRcpts(t, sink, "dmarc@evil.test")
	}
}

// TestFailureReportSmuggledAddress: the same for failure reports.
func TestFailureReportSmuggledAddress(t *testing.T) {
	eval := smuggleDNS(t)
	for _, check := range []bool{true, false} {
		sink := labtest.NewLineSink(t)
		r := &FailureReporter{Relay: sink.Addr(), Hostname: "mx.rcpt.test", From: "dmarc-noreply@rcpt.test", Receiver: "rcpt.test", UserAgent: "mailwall/test"}
		if check {
			r.DMARC = eval
		}
		ctx, cancel := context.WithCancel(context.Background())
		r.Start(ctx)
		m := failed(t, "v=DMARC1; p=reject; ruf=mailto:own@bank.test")
		m.DMARC.Record.RUF = []dmarc.URI{{URI: smuggled}, {URI: "mailto:own@bank.test"}}
		if got := r.Report(m); got != "queued" {
			t.Fatalf("report: %s", got)
		}
		for i := 0; i < 100 && !strings.Contains(strings.Join(sink.Rcpts(), ""), "own@bank.test"); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		cancel()
		onlyRcpts(t, sink, "own@bank.test")
	}
}

// TestRelayRefusesNonMailbox: the last guard, at RCPT TO.
func TestRelayRefusesNonMailbox(t *testing.T) {
	sink := labtest.NewLineSink(t)
	for _, to := range []string{"victim@victim.test> ORCPT=rfc822;x@evil.test", "a@b.test> NOTIFY=NEVER", "a@b.test\r\nRSET", ""} {
		if err := relayMail(context.Background(), sink.Addr(), "mx.test", "r@mx.test", to, []byte("Subject: x\r\n\r\nx\r\n"), time.Second); err == nil {
			t.Errorf("%q: sent", to)
		}
	}
	onlyRcpts(t, sink)
}
