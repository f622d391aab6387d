package main

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"mailwall/internal/metrics"
	"mailwall/internal/milter"
	"mailwall/internal/policyd"
	"mailwall/internal/spf"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// TestMilterRecordsHeloRefusal: the milter's HELO refusal becomes a
// verdict row (source helo) with the client's name from the connect
// stage and the reply sent, and is counted; with store.subject: hash the
// recorder keeps only the Subject's hash.
func TestMilterRecordsHeloRefusal(t *testing.T) {
	st := openSQLiteStore(t)
	log := slog.New(slog.DiscardHandler)
	rec := st.NewRecorder(log, 16, nil)
	rec.HashSubjects(true)
	met := metrics.New()
	f := &milterFilter{pipe: verdict.New(nil, "mx.rcpt.test"), log: log, node: "mx1", rec: rec, metrics: met}
	var m milter.Macros
	f.Connect(milter.Conn{Hostname: "MX.Sender.Example", Family: "4", Addr: netip.MustParseAddr("192.0.2.9")}, &m)
	resp := f.Helo("-bad-", &m)
	if !resp.Final() {
		t.Fatalf("invalid HELO not refused: %v", resp)
	}
	rec.Record(store.Verdict{At: time.Now(), Source: "milter", ClientIP: "192.0.2.10", Action: "accept", Subject: "Secret plans"})
	rec.Close()
	vs, err := st.Verdicts(context.Background(), store.VerdictFilter{Source: "helo"})
	if err != nil || len(vs) != 1 {
		t.Fatalf("HELO refusals stored: %d %v", len(vs), err)
	}
	v := vs[0]
	if v.ClientIP != "192.0.2.9" || v.ClientName != "mx.sender.example" || v.Helo != "-bad-" || v.Action != "reject" || v.Node != "mx1" ||
		"reply "+v.Reply != resp.String() || len(v.Details.Stages) != 1 {
		t.Errorf("stored %+v, replied %v", v, resp)
	}
	hashed, _ := st.Verdicts(context.Background(), store.VerdictFilter{Subject: "Secret  plans"})
	if len(hashed) != 1 || hashed[0].Subject != store.SubjectHash("Secret plans") {
		t.Errorf("store.subject: hash: %+v", hashed)
	}
	fams, err := met.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := false
	for _, fam := range fams {
		if fam.GetName() != "mailwall_decisions_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counted = counted || labels["source"] == "helo" && labels["action"] == "reject" && m.GetCounter().GetValue() == 1
		}
	}
	if !counted {
		t.Error(`mailwall_decisions_total{source="helo",action="reject"} is not 1`)
	}
}

func TestPolicyVerdict(t *testing.T) {
	d := policyd.Decision{At: time.Unix(1_800_000_000, 0), ClientIP: "192.0.2.3", ClientName: "unknown", Helo: "h.example", Sender: "a@bank.test",
		Recipient: "r@rcpt.test", ProtocolState: "RCPT", Action: "reject", Stage: "spf", Answer: "550 5.7.23 Message rejected",
		Reply: "550 5.7.23 <r@rcpt.test>: Recipient address rejected: Message rejected",
		SPF:   spf.Outcome{Result: spf.Fail, Identity: spf.MailFrom, Domain: "bank.test", Mechanism: "-all", Explanation: "not authorized"}}
	v := policyVerdict(d, "mx1")
	if v.Source != "policy" || v.SPF != "fail" || v.Reply != d.Reply || len(v.Rcpts) != 1 || v.MailFrom != "a@bank.test" ||
		v.Reasons[0] != "spf: fail for mailfrom bank.test (matched -all): not authorized" || v.Details.Facts[0] != (store.Fact{Name: "protocol_state", Value: "RCPT"}) {
		t.Errorf("policy verdict: %+v", v)
	}
	d.Stage, d.SPF = "greylist", spf.Outcome{}
	if v := policyVerdict(d, "mx1"); v.SPF != "" || v.Reasons[0] != "greylist: 550 5.7.23 Message rejected" {
		t.Errorf("greylist verdict: %+v", v)
	}
}
