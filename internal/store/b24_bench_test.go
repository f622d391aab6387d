package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/benchmsg"
	"mailwall/internal/classify"
	"mailwall/internal/cputime"
	"mailwall/internal/dmarc"
)

// b24Body is the text of an ordinary message (a club's newsletter): its
// features are what a verdict keeps for a later click.
const b24Body = `Dear members,

Thank you all for coming to the autumn meeting last Saturday. We had more
than forty people in the hall, the largest turnout since the club moved to
the community centre, and the discussion about next year's programme went
on well past the planned end. Here is a short summary for those who could
not attend, together with a few dates for your calendar.

Programme for next year: the committee proposed four day trips (the coast
path in April, the old railway line in June, the hill villages in
September and the river walk in October) and two longer weekends. Most of
you preferred to keep the weekends in the spring and autumn, when the
hostels are cheaper and the paths less crowded. We will put the final
programme on the website before the end of the month.

Membership fees stay the same for another year. You can pay by bank
transfer as before, or in cash at any meeting; please write your
membership number on the transfer so that our treasurer can match it.
Members who joined after the first of September do not need to pay again
until next autumn.

Volunteers: we are still looking for two people to help with the
newsletter and one to look after the equipment store (maps, first aid
kits and the club's radios). If you can spare an hour or two a month,
please reply to this message or talk to any committee member.

Photos from the summer trips are in the shared album; the link is on the
members' page of the website. If you would rather a photo of you were not
shown there, let us know and we will take it down.

The next meeting is on the second Tuesday of next month at seven in the
evening, in the small room upstairs. Tea and biscuits as usual.

With best wishes from the committee,
Margaret Hollis, secretary
`

// b24Verdict is a verdict as the milter records one for an ordinary
// message with every check on: each stage's result and reason, a few
// hits with explanations, the headers added, the classifier's kept
// features (kept) and the DMARC row; i varies the envelope as mail from
// many clients does.
func b24Verdict(i int, at time.Time, kept []byte) Verdict {
	dom := fmt.Sprintf("sender%d.example", i%500)
	ip := netip.AddrFrom4([4]byte{192, 0, 2 + byte(i/250%50), byte(1 + i%250)})
	v := Verdict{
		At: at, Node: "mx1.example.test", Source: "milter", QueueID: fmt.Sprintf("4Q%08X", 0x1000000+i),
		ClientIP: ip.String(), ClientName: "mail." + dom, Helo: "mail." + dom,
		MailFrom: fmt.Sprintf("bounce+%d@%s", i, dom), FromDomain: dom, Rcpts: []string{fmt.Sprintf("user%d@rcpt.test", i%40)},
		Action: "accept", Stage: "content", Verdict: "pass", IPRev: "pass", SPF: "pass", DKIM: "pass:" + dom, DMARC: "pass", ARC: "none",
		Score: 3, Rules: []string{"link_host_new=3", "classify_ham=-2", "reputation_known=-1"},
		Reasons:    []string{"phish: link to a host first seen today"},
		HeaderFrom: "news@" + dom, MessageID: fmt.Sprintf("%d.%x@%s", i, i*7919, dom), Subject: "Autumn meeting: summary and dates", Size: 3120,
		Features: kept,
	}
	v.Details = Details{
		Stages: []StageResult{
			{Stage: "helo", Result: "pass"},
			{Stage: "iprev", Result: "pass", Reason: "name mail." + dom},
			{Stage: "spf", Result: "pass", Reason: "domain " + dom + "; matched ip4:192.0.2.0/24"},
			{Stage: "dkim", Result: "pass", Reason: "d=" + dom + " s=s2026"},
			{Stage: "arc", Result: "none"},
			{Stage: "dmarc", Result: "pass", Reason: "policy domain " + dom + ", p=reject; dkim aligned"},
			{Stage: "phish", Result: "score 3", Reason: "link to a host first seen today"},
			{Stage: "dnsbl", Result: "score 0"},
			{Stage: "classify", Result: "score -2", Reason: "ham, p(junk) 0.04"},
			{Stage: "reputation", Result: "score -1", Reason: "from_domain " + dom + ": 212 ham, 0 spam"},
		},
		Hits: []Hit{
			{Rule: "link_host_new", Weight: 3, Detail: "www.club-" + dom + " first seen today"},
			{Rule: "classify_ham", Weight: -2, Detail: "p(junk) 0.04 under 0.20"},
			{Rule: "reputation_known", Weight: -1, Detail: "from_domain " + dom + " has 212 ham"},
		},
		Headers: []Header{
			{Name: "Authentication-Results", Value: "mx1.example.test; iprev=pass policy.iprev=" + ip.String() + " (mail." + dom + "); spf=pass smtp.mailfrom=" +
				fmt.Sprintf("bounce+%d@%s", i, dom) + "; dkim=pass header.d=" + dom + " header.s=s2026 header.a=rsa-sha256 header.b=AbCdEfGh; arc=none; dmarc=pass (p=reject dis=none) header.from=" + dom},
			{Name: "X-Mailwall-Verdict", Value: "pass (action=accept; stage=content)"},
			{Name: "X-Mailwall-Score", Value: "3 (link_host_new=3 classify_ham=-2 reputation_known=-1)"},
		},
	}
	v.DMARCRow = &DMARCRow{
		Row: dmarc.Row{SourceIP: ip, HeaderFrom: dom, EnvelopeFrom: dom, EnvelopeTo: "rcpt.test", PolicyDomain: dom,
			Published:   dmarc.PublishedPolicy{Domain: dom, P: "reject", SP: "reject", ADKIM: "r", ASPF: "r", Pct: -1, DiscoveryMethod: "treewalk"},
			Disposition: "none", DKIMAligned: "pass", SPFAligned: "pass",
			DKIM: []dmarc.DKIMResult{{Domain: dom, Selector: "s2026", Result: "pass"}}, SPFDomain: dom, SPFScope: "mfrom", SPFResult: "pass"},
		RUA: []dmarc.URI{{URI: "mailto:dmarc@" + dom, MaxSize: 10 << 20}}, RI: 86400,
	}
	return v
}

// b24Kept is what the classifier keeps of a message with body (CRLF
// line ends) and Subject subject.
func b24Kept(tb testing.TB, subject, body string) []byte {
	raw := "From: Club <news@sender.example>\r\nTo: user@rcpt.test\r\nSubject: " + subject + "\r\n" +
		"Message-ID: <1@sender.example>\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + body
	fields, b := classify.ParseMessage([]byte(raw))
	msg := &classify.Message{Fields: fields, Body: b, Recipients: []string{"user@rcpt.test"}}
	kept := classify.Kept(classify.MessageKey(msg, nil), classify.NewExtractor().Extract(msg))
	if kept == nil {
		tb.Fatal("no kept features")
	}
	return kept
}

// b24BenchShape makes a b24Verdict bench/milter's small message's: one
// client, sender, From domain and Message-ID.
func b24BenchShape(v *Verdict) {
	dom := "example.test"
	v.ClientIP, v.ClientName, v.Helo, v.MailFrom, v.FromDomain = "127.0.0.1", "localhost", "mail.example.test", "sender@"+dom, dom
	v.HeaderFrom, v.MessageID, v.Subject, v.Size = "sender@"+dom, "bench@example.test", "benchmark", 2400
	v.DMARCRow.Row.PolicyDomain, v.DMARCRow.Row.HeaderFrom = dom, dom
	v.DMARCRow.Row.Published.Domain, v.DMARCRow.RUA[0].URI = dom, "mailto:dmarc@"+dom
}

// BenchmarkB24RecordVerdicts writes realistic verdicts in the
// recorder's transactions of 40 (mail one message at a time: 20 ms of
// gathering at 2,000 a second) and 64 (SQLite's most), after SeenDomain
// counted each message, into a table of 20,000 verdicts: ns/op is the
// wall time per verdict and cpu-ns/verdict the process's CPU (on
// PostgreSQL the server's is not counted). "ordinary" verdicts are
// b24Verdict's for mail from many clients and senders, with an ordinary
// message's kept features; "bench" ones are bench/milter's small
// message's (one client, sender and Message-ID, its few features).
// Run with a fixed -benchtime (e.g. 6400x) to compare builds on tables
// of one size.
func BenchmarkB24RecordVerdicts(b *testing.B) {
	ordinary := b24Kept(b, "Autumn meeting: summary and dates", strings.ReplaceAll(b24Body, "\n", "\r\n"))
	small := b24Kept(b, "benchmark", benchmsg.Body(2<<10, true))
	for _, driver := range []string{"sqlite", "postgres"} {
		for _, shape := range []string{"ordinary", "bench"} {
			for _, size := range []int{40, rowsPerInsert} {
				b.Run(fmt.Sprintf("%s/%s/%d", driver, shape, size), func(b *testing.B) {
					ctx := context.Background()
					s := openBench(b, driver)
					defer s.Close()
					t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
					batch := make([]Verdict, size)
					kept := ordinary
					if shape == "bench" {
						kept = small
					}
					fill := func(n int) {
						for j := range batch {
							v := b24Verdict(n+j, t0.Add(time.Duration(n+j)*10*time.Millisecond), kept)
							if shape == "bench" {
								b24BenchShape(&v)
							}
							batch[j] = v
							if _, _, err := s.SeenDomain(ctx, v.FromDomain, v.At); err != nil {
								b.Fatal(err)
							}
						}
					}
					const prefill = 20000
					for n := 0; n < prefill; n += size {
						fill(n)
						if err := s.InsertVerdicts(ctx, batch); err != nil {
							b.Fatal(err)
						}
					}
					b.ResetTimer()
					var (
						cpu     time.Duration
						written int
					)
					for n := 0; n < b.N; n += size {
						b.StopTimer()
						fill(prefill + n)
						b.StartTimer()
						c0 := cputime.Process()
						if err := s.InsertVerdicts(ctx, batch); err != nil {
							b.Fatal(err)
						}
						cpu += cputime.Process() - c0
						written += size
					}
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(written), "cpu-ns/verdict")
					b.ReportMetric(float64(len(kept)), "kept-B")
				})
			}
		}
	}
}
