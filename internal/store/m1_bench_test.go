package store

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"mailwall/internal/cputime"
	"mailwall/internal/dmarc"
)

// m1BenchVerdict is a verdict as bench/milter's small message gets it
// with every check on (read back from a run's store): the row's
// values, stages, hit and headers.
func m1BenchVerdict(i int, kept []byte) Verdict {
	dom := "example.test"
	row := &DMARCRow{Row: dmarc.Row{SourceIP: netip.MustParseAddr("127.0.0.1"), HeaderFrom: dom, EnvelopeFrom: dom, EnvelopeTo: "rcpt.test", PolicyDomain: dom,
		Published:   dmarc.PublishedPolicy{Domain: dom, P: "reject", ADKIM: "r", ASPF: "r", PSD: "u", Pct: -1, DiscoveryMethod: "psl"},
		Disposition: "pass", DKIMAligned: "pass", SPFAligned: "pass", DKIM: []dmarc.DKIMResult{{Domain: dom, Selector: "sel", Result: "pass"}},
		SPFDomain: dom, SPFScope: "mfrom", SPFResult: "pass"}, RI: -1}
	return Verdict{
		DMARCRow: row,
		At:       time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond), Node: "lab.example.test", Source: "milter",
		QueueID: "4B00002542", ClientIP: "127.0.0.1", ClientName: "mail." + dom, Helo: "mail." + dom, MailFrom: "sender@" + dom, FromDomain: dom,
		Rcpts: []string{"rcpt@rcpt.test"}, Action: "accept", Verdict: "suspicious", IPRev: "pass", SPF: "pass", DKIM: "pass:" + dom,
		DMARC: "pass", ARC: "none", Score: -15, Rules: []string{"reputation_good=-15"}, Reasons: []string{"score -15: reputation_good=-15"},
		HeaderFrom: "sender@" + dom, MessageID: "bench@" + dom, Subject: "benchmark", Size: 2823, Features: kept,
		Details: Details{
			Stages: []StageResult{{"helo", "pass", ""}, {"iprev", "pass", "name mail." + dom}, {"spf", "pass", "domain " + dom + "; matched ip4:127.0.0.1"},
				{"dkim", "pass", "d=" + dom + " s=sel"}, {"arc", "none", ""}, {"dmarc", "pass", "policy domain " + dom + ", p=reject"},
				{"phish", "score 0", ""}, {"dnsbl", "score 0", ""}, {"classifier", "score 0", ""}, {"reputation", "score -15", ""}},
			Hits: []Hit{{"reputation_good", -15, "from_domain=" + dom + ": 0.0 spam, 6999.0 ham (half-life 30d)"}},
			Headers: []Header{
				{"Authentication-Results", "lab." + dom + "; spf=pass smtp.mailfrom=sender@" + dom + "; dmarc=pass (p=reject dis=none) header.from=" + dom +
					"; iprev=pass policy.iprev=127.0.0.1 (mail." + dom + "); dkim=pass header.d=" + dom + " header.s=sel header.a=rsa-sha256 header.b=qcMGbimo; arc=none"},
				{"X-Mailwall-Verdict", "suspicious (action=accept; stage=none)"},
				{"X-Mailwall-Score", "-15 (reputation_good=-15)"},
			},
		},
	}
}

// BenchmarkM1VerdictArgs is the milter's and the recorder's work on
// bench/milter's verdicts before SQLite's: bounded (as Record) and the
// statements' values (verdictArgs, the details encoded, and the DMARC
// rows' appendDMARCRowArgs), for one verdict and for the recorder's
// batch of 64 (rowsPerInsert); details-B
// is the details' length, cpu-ns/verdict the process's CPU a verdict
// (what other processes take of the machine left out).
func BenchmarkM1VerdictArgs(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			in := make([]Verdict, n)
			for i := range in {
				in[i] = m1BenchVerdict(i, make([]byte, 412))
			}
			vs := make([]Verdict, n)
			size, ops := 0, 0
			c0 := cputime.Process()
			for b.Loop() {
				for i := range in {
					vs[i] = bounded(&in[i])
				}
				args := verdictArgs(vs, true)
				size = len(args[verdictColumns-2].(string))
				var (
					dmarcArgs []any
					policies  dmarcPolicies
				)
				for i := range vs {
					vs[i].ID = int64(1000 + i)
					dmarcArgs = appendDMARCRowArgs(dmarcArgs, &vs[i], &policies)
				}
				ops += n
			}
			b.ReportMetric(float64((cputime.Process()-c0).Nanoseconds())/float64(ops), "cpu-ns/verdict")
			b.ReportMetric(float64(size), "details-B")
		})
	}
}
