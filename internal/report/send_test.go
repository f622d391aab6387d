package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/feedback"
	"mailwall/internal/labtest"
	"mailwall/internal/store"
)

func sender(st *store.Store, sink *labtest.Sink, now time.Time) *Sender {
	return &Sender{Store: st, Relay: sink.Addr(), Hostname: "mx.receiver.test", From: "dmarc-noreply@receiver.test", Receiver: "mx.receiver.test",
		Now: func() time.Time { return now }}
}

func generate(t *testing.T, st *store.Store, vs []store.Verdict) []*store.ReportOut {
	t.Helper()
	ctx := context.Background()
	if err := st.InsertVerdicts(ctx, vs); err != nil {
		t.Fatal(err)
	}
	g := &Generator{Store: st, Receiver: "mx.receiver.test", Email: "postmaster@receiver.test", Now: func() time.Time { return day.Add(25 * time.Hour) }}
	made, err := g.Generate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return made
}

func TestSendOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		vs, _ := aDay()
		made := generate(t, st, vs)
		sink := labtest.NewSink(t)
		s := sender(st, sink, day.Add(25*time.Hour))
		sum, err := s.Send(ctx, false)
		if err != nil || sum.Sent != 2 {
			t.Fatalf("send: %+v %v", sum, err)
		}
		msgs := sink.Messages()
		if len(msgs) != 2 {
			t.Fatalf("%d messages at the sink", len(msgs))
		}
		byRcpt := map[string]labtest.SinkMessage{}
		for _, m := range msgs {
			byRcpt[m.To[0]] = m
		}
		m, ok := byRcpt["dmarc@bank.test"]
		if !ok || m.From != "dmarc-noreply@receiver.test" {
			t.Fatalf("messages: %+v", byRcpt)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		var bank *store.ReportOut
		for _, r := range made {
			if r.PolicyDomain == "bank.test" {
				bank = r
			}
		}
		subject := strings.Join(strings.Fields(msg.Header.Get("Subject")), " ")
		if subject != "Report Domain: bank.test Submitter: mx.receiver.test Report-ID: <"+bank.ReportID+">" {
			t.Errorf("Subject %q", subject)
		}
		if msg.Header.Get("Message-ID") != "<"+bank.ReportID+">" {
			t.Errorf("Message-ID %q", msg.Header.Get("Message-ID"))
		}
		atts, err := feedback.Attachments(bytes.NewReader(m.Data))
		if err != nil || len(atts) != 1 || atts[0].Filename != bank.Filename || !bytes.Equal(atts[0].Data, bank.GZ) {
			t.Fatalf("attachment: %v %+v", err, atts)
		}
		// The report round-trips: what was sent parses back to what was made.
		f, err := feedback.Parse(atts[0].Data)
		if err != nil || f.Messages() != bank.Messages {
			t.Errorf("sent report: %v, %d messages", err, f.Messages())
		}
		// Sent once: another run sends nothing.
		sum, err = s.Send(ctx, true)
		if err != nil || sum.Sent != 0 || len(sink.Messages()) != 2 {
			t.Errorf("second run: %+v %v, %d at the sink", sum, err, len(sink.Messages()))
		}
		r, _ := st.Report(ctx, bank.ID, "")
		if d := r.Deliveries[0]; d.State != store.Sent || d.Attempts != 1 || d.SentAt.IsZero() || d.MessageID != "<"+bank.ReportID+">" {
			t.Errorf("delivery %+v", d)
		}
	})
}

func TestSendRetryThenFail(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		generate(t, st, []store.Verdict{verdictFor(day.Add(time.Hour), "192.0.2.1", "a.test", "a.test", "mailto:r@a.test", -1, nil)})
		sink := labtest.NewSink(t)
		sink.Refuse(func(string) error { return &smtp.SMTPError{Code: 451, Message: "try later"} })
		now := day.Add(25 * time.Hour)
		s := sender(st, sink, now)
		sum, err := s.Send(ctx, false)
		if err != nil || sum.Retry != 1 {
			t.Fatalf("first: %+v %v", sum, err)
		}
		// Within the back-off nothing is tried, unless asked.
		if sum, _ := s.Send(ctx, false); sum.Retry+sum.Sent != 0 {
			t.Errorf("tried within the back-off: %+v", sum)
		}
		s.Now = func() time.Time { return now.Add(16 * time.Minute) }
		if sum, _ := s.Send(ctx, false); sum.Retry != 1 {
			t.Errorf("after the back-off: %+v", sum)
		}
		sink.Refuse(func(string) error { return &smtp.SMTPError{Code: 550, Message: "no such user"} })
		if sum, _ := s.Send(ctx, true); sum.Failed != 1 {
			t.Errorf("5xx: %+v", sum)
		}
		rs, _ := st.Reports(ctx, store.ReportFilter{})
		if d := rs[0].Deliveries[0]; d.State != store.Failed || d.Attempts != 3 || !strings.Contains(d.LastError, "550") {
			t.Errorf("delivery %+v", d)
		}
		if len(sink.Messages()) != 0 {
			t.Errorf("refused messages counted at the sink")
		}
	})
}

func TestSendSizeLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		generate(t, st, []store.Verdict{verdictFor(day.Add(time.Hour), "192.0.2.1", "a.test", "a.test", "mailto:r@a.test!1k,mailto:big@a.test!1m", -1, nil)})
		sink := labtest.NewSink(t)
		sum, err := sender(st, sink, day.Add(25*time.Hour)).Send(context.Background(), false)
		if err != nil || sum.Dropped != 1 || sum.Sent != 1 {
			t.Fatalf("%+v %v", sum, err)
		}
		if m := sink.Messages(); len(m) != 1 || m[0].To[0] != "big@a.test" {
			t.Errorf("sink: %+v", m)
		}
	})
}

// TestSendExternalDestinations: an address outside the domain's
// organization gets reports only with its consent (RFC 9990 §4), and its
// consent record may redirect them on the same host.
func TestSendExternalDestinations(t *testing.T) {
	dns := labtest.Serve(t, labtest.Zone(t, "test"), labtest.Zone(t, "example"),
		labtest.Zone(t, "a.test", `@ IN A 192.0.2.1`),
		labtest.Zone(t, "reports.example", `a.test._report._dmarc IN TXT "v=DMARC1; rua=mailto:inbox@reports.example"`),
		labtest.Zone(t, "nosy.example", `@ IN A 192.0.2.2`))
	eval := &dmarc.Evaluator{Resolver: &dnsx.Client{Servers: []string{dns.Addr()}, Timeout: time.Second}}
	eachStore(t, func(t *testing.T, st *store.Store) {
		generate(t, st, []store.Verdict{verdictFor(day.Add(time.Hour), "192.0.2.1", "a.test", "a.test",
			"mailto:own@a.test,mailto:agg@reports.example,mailto:spy@nosy.example", -1, nil)})
		sink := labtest.NewSink(t)
		s := sender(st, sink, day.Add(25*time.Hour))
		s.DMARC = eval
		sum, err := s.Send(context.Background(), false)
		if err != nil || sum.Sent != 2 || sum.Dropped != 1 {
			t.Fatalf("%+v %v", sum, err)
		}
		got := map[string]bool{}
		for _, m := range sink.Messages() {
			got[m.To[0]] = true
		}
		if !got["own@a.test"] || !got["inbox@reports.example"] || len(got) != 2 {
			t.Errorf("delivered to %v", got)
		}
	})
}

// TestSendDNSFailureWaits: a consent lookup that times out is no answer:
// the delivery waits, it is not dropped.
func TestSendDNSFailureWaits(t *testing.T) {
	st, err := store.Open(context.Background(), "sqlite", t.TempDir()+"/m.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	generate(t, st, []store.Verdict{verdictFor(day.Add(time.Hour), "192.0.2.1", "a.test", "a.test", "mailto:agg@reports.example", -1, nil)})
	sink := labtest.NewSink(t)
	s := sender(st, sink, day.Add(25*time.Hour))
	s.DMARC = &dmarc.Evaluator{Resolver: &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 50 * time.Millisecond, Attempts: 1}}
	sum, err := s.Send(context.Background(), false)
	if err != nil || sum.Retry != 1 || sum.Dropped != 0 {
		t.Fatalf("%+v %v", sum, err)
	}
	rs, _ := st.Reports(context.Background(), store.ReportFilter{})
	if d := rs[0].Deliveries[0]; d.State != store.Pending || d.Attempts != 0 {
		t.Errorf("delivery %+v", d)
	}
}

func TestSendLock(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		unlock, ok, err := st.TryLock(ctx, SendLock)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		sink := labtest.NewSink(t)
		if _, err := sender(st, sink, day).Send(ctx, true); !errors.Is(err, ErrLocked) {
			t.Errorf("send while another holds the lock: %v", err)
		}
		unlock()
		if _, err := sender(st, sink, day).Send(ctx, true); err != nil {
			t.Errorf("after unlock: %v", err)
		}
	})
}

// TestNewDomainLimit: reports to policy domains never reported to before
// are made at most NewPerHour an hour and NewPerDay a day; the rest wait
// with their rows, and a domain reported to before is never held back.
// Before issue 23, mail from 20 fresh domains made 20 reports at once.
func TestNewDomainLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		var vs []store.Verdict
		for i := range 20 {
			d := fmt.Sprintf("fresh%d.test", i)
			vs = append(vs, verdictFor(day.Add(time.Hour), "192.0.2.1", d, d, "mailto:dmarc@"+d, -1, nil))
		}
		// known.test had a report the day before.
		vs = append(vs, verdictFor(day.Add(-23*time.Hour), "192.0.2.1", "known.test", "known.test", "mailto:dmarc@known.test", -1, nil))
		if err := st.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		now := day.Add(25 * time.Hour)
		g := &Generator{Store: st, Receiver: "mx.receiver.test", NewPerHour: 3, NewPerDay: 5, Now: func() time.Time { return now }}
		// The day before: known.test alone is due (its rows are older).
		old := &Generator{Store: st, Receiver: "mx.receiver.test", NewPerHour: -1, NewPerDay: -1, Now: func() time.Time { return day.Add(time.Minute * 6) }}
		if made, err := old.Generate(ctx); err != nil || len(made) != 1 || made[0].PolicyDomain != "known.test" {
			t.Fatalf("the day before: %v %v", made, err)
		}
		vs = []store.Verdict{verdictFor(day.Add(2*time.Hour), "192.0.2.1", "known.test", "known.test", "mailto:dmarc@known.test", -1, nil)}
		if err := st.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		count := func() (fresh int, known bool) {
			rs, err := st.Reports(ctx, store.ReportFilter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if strings.HasPrefix(r.PolicyDomain, "fresh") {
					fresh++
				}
				known = known || r.PolicyDomain == "known.test" && r.Begin.Equal(day)
			}
			return fresh, known
		}
		for _, step := range []struct {
			after time.Duration
			fresh int
		}{{0, 3}, {time.Minute, 3}, {time.Hour, 5}, {5 * time.Hour, 5}, {25 * time.Hour, 8}} {
			now = day.Add(25*time.Hour + step.after)
			if _, err := g.Generate(ctx); err != nil {
				t.Fatal(err)
			}
			fresh, known := count()
			if fresh != step.fresh || !known {
				t.Errorf("after %s: %d reports to fresh domains, want %d; known.test's made: %v", step.after, fresh, step.fresh, known)
			}
		}
	})
}
