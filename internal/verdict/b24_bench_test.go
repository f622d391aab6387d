package verdict

import (
	"net/netip"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/spf"
)

// b24Result is a result as the milter has one for an ordinary message
// with every check on: each stage passed, three analyzers' hits, the
// headers added, a DMARC row.
func b24Result() *Result {
	ip := netip.MustParseAddr("192.0.2.6")
	row := dmarc.Row{SourceIP: ip, HeaderFrom: "sender.example", EnvelopeFrom: "sender.example", EnvelopeTo: "rcpt.test", PolicyDomain: "sender.example",
		Disposition: "none", DKIMAligned: "pass", SPFAligned: "pass", DKIM: []dmarc.DKIMResult{{Domain: "sender.example", Selector: "s2026", Result: "pass"}},
		SPFDomain: "sender.example", SPFScope: "mfrom", SPFResult: "pass"}
	r := &Result{
		Action: Accept, Stage: "content", Verdict: "pass", Helo: "pass",
		IPRev: conncheck.IPRev{Result: "pass", Name: "mail.sender.example"},
		SPF:   spf.Outcome{Result: spf.Pass, Domain: "sender.example", Mechanism: "ip4:192.0.2.0/24"},
		DKIM:  []dkim.Result{{Status: dkim.Pass, Domain: "sender.example", Selector: "s2026", Algorithm: "rsa-sha256"}},
		DMARC: dmarc.Result{Result: "pass", HeaderFrom: "sender.example", PolicyDomain: "sender.example", Policy: "reject",
			Record: &dmarc.Record{RUA: []dmarc.URI{{URI: "mailto:dmarc@sender.example"}}, RI: 86400}, Row: row},
		Analyses: []Analysis{
			{Name: "phish", Result: analysis.Result{Hits: []analysis.Hit{{Rule: "link_host_new", Weight: 3, Detail: "www.club-sender.example first seen today"}}}},
			{Name: "dnsbl"},
			{Name: "classify", Result: analysis.Result{Hits: []analysis.Hit{{Rule: "classify_ham", Weight: -2, Detail: "p(junk) 0.04 under 0.20"}}}},
		},
		Headers: []HeaderField{
			{"Authentication-Results", " mx1.example.test;\r\n\tiprev=pass policy.iprev=192.0.2.6 (mail.sender.example);\r\n\tspf=pass smtp.mailfrom=bounce+5@sender.example;\r\n\tdkim=pass header.d=sender.example header.s=s2026 header.a=rsa-sha256 header.b=AbCdEfGh;\r\n\tarc=none;\r\n\tdmarc=pass (p=reject dis=none) header.from=sender.example"},
			{"X-Mailwall-Verdict", " pass (action=accept; stage=content)"},
			{"X-Mailwall-Score", " 1 (link_host_new=3 classify_ham=-2)"},
		},
	}
	for _, a := range r.Analyses {
		r.Hits = append(r.Hits, a.Hits...)
	}
	return r
}

// BenchmarkB24Record: the milter's share of recording a verdict, the
// row Record builds of a result (b24Result).
func BenchmarkB24Record(b *testing.B) {
	r := b24Result()
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.6"), ClientName: "mail.sender.example", Helo: "mail.sender.example",
		MailFrom: "bounce+5@sender.example", Rcpts: []string{"user@rcpt.test"}, QueueID: "4QABCDEF12"}
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		v := r.Record(env, "mx1.example.test", at)
		if len(v.Details.Stages) == 0 {
			b.Fatal("no stages")
		}
	}
}
