package report

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dmarc"
	"mailwall/internal/feedback"
	"mailwall/internal/pgtest"
	"mailwall/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// eachStore runs test on a new SQLite store and a new PostgreSQL one.
func eachStore(t *testing.T, test func(t *testing.T, st *store.Store)) {
	open := map[string]func(t *testing.T) (string, string){
		"sqlite":   func(t *testing.T) (string, string) { return "sqlite", filepath.Join(t.TempDir(), "mailwall.db") },
		"postgres": func(t *testing.T) (string, string) { return "postgres", pgtest.DSN(t) },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			driver, dsn := open[name](t)
			st, err := store.Open(context.Background(), driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			test(t, st)
		})
	}
}

var day = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

// verdictFor is one message's verdict with its DMARC row.
func verdictFor(at time.Time, ip, from, policyDomain, rua string, ri int, mutate func(*dmarc.Row)) store.Verdict {
	row := dmarc.Row{
		SourceIP: netip.MustParseAddr(ip), HeaderFrom: from, EnvelopeFrom: from, EnvelopeTo: "mx.receiver.test", PolicyDomain: policyDomain,
		Published:   dmarc.PublishedPolicy{Domain: policyDomain, P: "reject", SP: "quarantine", ADKIM: "r", ASPF: "s", Pct: -1, DiscoveryMethod: "treewalk", FailureReportingFO: "1"},
		Disposition: dmarc.ReportPass, DKIMAligned: "pass", SPFAligned: "pass",
		DKIM:      []dmarc.DKIMResult{{Domain: from, Selector: "s1", Result: "pass"}},
		SPFDomain: from, SPFScope: "mfrom", SPFResult: "pass",
	}
	if mutate != nil {
		mutate(&row)
	}
	uris, _ := dmarc.ParseURIs(rua)
	return store.Verdict{At: at, Node: "mx1", ClientIP: ip, FromDomain: from, Action: "accept", DMARC: "pass",
		DMARCRow: &store.DMARCRow{Row: row, RUA: uris, RI: ri}}
}

// aDay is a day of mail for three policy domains: passes from two
// sources, failures, a forwarded message with a broken signature, a
// bounce (null reverse-path), an IPv6 source, a message with 120
// signatures, sampled_out and trusted_forwarder overrides. It returns
// the verdicts and the messages per policy domain.
func aDay() ([]store.Verdict, map[string]int64) {
	var vs []store.Verdict
	add := func(n int, v func(i int) store.Verdict) {
		for i := range n {
			vs = append(vs, v(i))
		}
	}
	rua := "mailto:dmarc@bank.test"
	add(40, func(i int) store.Verdict {
		return verdictFor(day.Add(time.Duration(i)*30*time.Minute), "192.0.2.10", "bank.test", "bank.test", rua, -1, nil)
	})
	add(7, func(i int) store.Verdict {
		return verdictFor(day.Add(time.Duration(i)*time.Hour), "2001:db8::25", "news.bank.test", "bank.test", rua, -1, nil)
	})
	add(12, func(i int) store.Verdict {
		return verdictFor(day.Add(time.Duration(i)*time.Hour+time.Minute), "203.0.113.66", "bank.test", "bank.test", rua, -1, func(r *dmarc.Row) {
			r.Disposition, r.DKIMAligned, r.SPFAligned = dmarc.PolicyReject, "fail", "fail"
			r.DKIM = nil
			r.EnvelopeFrom, r.SPFDomain, r.SPFResult = "bank-secure.example", "bank-secure.example", "pass"
		})
	})
	add(3, func(i int) store.Verdict {
		return verdictFor(day.Add(time.Duration(i)*time.Hour+2*time.Minute), "198.51.100.7", "bank.test", "bank.test", rua, -1, func(r *dmarc.Row) {
			r.Disposition, r.DKIMAligned, r.SPFAligned = dmarc.PolicyNone, "fail", "fail"
			r.DKIM = []dmarc.DKIMResult{{Domain: "bank.test", Selector: "s1", Result: "fail"}, {Domain: "lists.example", Selector: "l", Result: "pass"}}
			r.EnvelopeFrom, r.SPFDomain, r.SPFResult = "lists.example", "lists.example", "pass"
			r.Reasons = []string{"trusted_forwarder"}
		})
	})
	add(2, func(i int) store.Verdict {
		return verdictFor(day.Add(time.Duration(i)*time.Hour+3*time.Minute), "192.0.2.10", "bank.test", "bank.test", rua, -1, func(r *dmarc.Row) {
			r.EnvelopeFrom, r.SPFDomain, r.SPFScope = "", "mx.bank.test", "helo" // a bounce
		})
	})
	add(1, func(int) store.Verdict {
		return verdictFor(day.Add(20*time.Hour), "192.0.2.11", "bank.test", "bank.test", rua, -1, func(r *dmarc.Row) {
			r.DKIM = nil
			for i := range 120 {
				r.DKIM = append(r.DKIM, dmarc.DKIMResult{Domain: fmt.Sprintf("d%d.example", i), Selector: "s", Result: "fail"})
			}
			r.DKIM = append(r.DKIM, dmarc.DKIMResult{Domain: "bank.test", Selector: "s1", Result: "pass"})
		})
	})
	// RFC 7489 record with pct and hourly ri, a !size limit.
	add(5, func(i int) store.Verdict {
		return verdictFor(day.Add(time.Duration(i)*10*time.Minute), "192.0.2.99", "old.test", "old.test", "mailto:agg@old.test!50k", 3600, func(r *dmarc.Row) {
			r.Published.Pct = 50
			r.Disposition, r.DKIMAligned, r.SPFAligned = dmarc.PolicyQuarantine, "fail", "fail"
			r.Reasons = []string{"sampled_out"}
		})
	})
	// No rua: rows kept, no report.
	add(4, func(i int) store.Verdict {
		return verdictFor(day.Add(time.Duration(i)*time.Hour), "192.0.2.50", "quiet.test", "quiet.test", "", -1, nil)
	})
	return vs, map[string]int64{"bank.test": 65, "old.test": 5, "quiet.test": 4}
}

func TestInterval(t *testing.T) {
	for _, c := range []struct {
		ri   int
		want time.Duration
	}{{-1, 24 * time.Hour}, {0, 24 * time.Hour}, {86400, 24 * time.Hour}, {604800, 24 * time.Hour}, {3600, time.Hour}, {60, time.Hour},
		{7200, 2 * time.Hour}, {5 * 3600, 4 * time.Hour}, {43200, 12 * time.Hour}, {80000, 12 * time.Hour}} {
		if got := Interval(c.ri); got != c.want {
			t.Errorf("Interval(%d) = %v, want %v", c.ri, got, c.want)
		}
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// validate checks an XML report against RFC 9990's schema with xmllint
// (Debian's libxml2-utils).
func validate(t *testing.T, xmlDoc []byte) {
	t.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("MAILWALL_E2E") != "" {
			t.Fatal("xmllint not installed (apt-get install libxml2-utils)")
		}
		t.Skip("xmllint not installed (apt-get install libxml2-utils)")
	}
	f := filepath.Join(t.TempDir(), "report.xml")
	os.WriteFile(f, xmlDoc, 0o644)
	out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/dmarc-aggregate-report.xsd", f).CombinedOutput()
	if err != nil {
		t.Fatalf("report does not validate against RFC 9990's schema: %v\n%s\n%s", err, out, xmlDoc)
	}
}

func TestGenerateDay(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		vs, perDomain := aDay()
		if err := st.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		g := &Generator{Store: st, Receiver: "mx.receiver.test", Email: "postmaster@receiver.test", Version: "test",
			Now: func() time.Time { return day.Add(24*time.Hour + 10*time.Minute) }}
		made, err := g.Generate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// bank.test: one daily report; old.test: ri=3600, an hour of
		// reports for its first hour (10-minute spacing); quiet.test: none.
		byDomain := map[string][]*store.ReportOut{}
		for _, r := range made {
			byDomain[r.PolicyDomain] = append(byDomain[r.PolicyDomain], r)
		}
		if len(byDomain["bank.test"]) != 1 || len(byDomain["old.test"]) != 1 || len(byDomain["quiet.test"]) != 0 {
			t.Fatalf("reports by domain: %v", byDomain)
		}
		for dom, rs := range byDomain {
			var msgs int64
			for _, r := range rs {
				msgs += r.Messages
				doc := gunzip(t, r.GZ)
				validate(t, doc)
				f, err := feedback.Parse(r.GZ)
				if err != nil {
					t.Fatalf("%s: own report does not parse: %v", dom, err)
				}
				if f.Metadata.ReportID != r.ReportID || f.PolicyPublished.Domain != dom || f.Messages() != r.Messages || len(f.Records) != r.Records {
					t.Errorf("%s: parsed %+v vs stored %+v", dom, f.Metadata, r)
				}
				want := fmt.Sprintf("mx.receiver.test!%s!%d!%d.xml.gz", dom, r.Begin.Unix(), r.End.Unix())
				if r.Filename != want {
					t.Errorf("filename %s, want %s", r.Filename, want)
				}
			}
			if msgs != perDomain[dom] {
				t.Errorf("%s: %d messages reported, %d received", dom, msgs, perDomain[dom])
			}
		}
		bank := byDomain["bank.test"][0]
		if !bank.Begin.Equal(day) || bank.End.Unix() != day.Unix()+86399 {
			t.Errorf("bank.test period %v - %v", bank.Begin, bank.End)
		}
		f, _ := feedback.Parse(bank.GZ)
		pp := f.PolicyPublished
		if pp.P != "reject" || pp.SP != "quarantine" || pp.ADKIM != "r" || pp.ASPF != "s" || pp.DiscoveryMethod != "treewalk" || pp.Testing != "n" || pp.FO != "1" {
			t.Errorf("policy_published %+v", pp)
		}
		// Grouping: one record per (source, identifiers, results) tuple.
		type key struct{ ip, from, ef, disp string }
		counts := map[key]int64{}
		for _, r := range f.Records {
			ef := ""
			if r.Identifiers.EnvelopeFrom != nil {
				ef = *r.Identifiers.EnvelopeFrom
			} else {
				t.Errorf("record without envelope_from: %+v", r)
			}
			counts[key{r.Row.SourceIP, r.Identifiers.HeaderFrom, ef, r.Row.PolicyEvaluated.Disposition}] += r.Row.Count
			if len(r.AuthResults.DKIM) > 100 {
				t.Errorf("%d signatures in a record", len(r.AuthResults.DKIM))
			}
			if len(r.AuthResults.DKIM) == 100 && (r.AuthResults.DKIM[0].Domain != "bank.test" || r.AuthResults.DKIM[0].Result != "pass") {
				t.Errorf("the aligned passing signature is not first: %+v", r.AuthResults.DKIM[0])
			}
		}
		for k, want := range map[key]int64{
			{"192.0.2.10", "bank.test", "bank.test", "pass"}:               40,
			{"2001:db8::25", "news.bank.test", "news.bank.test", "pass"}:   7,
			{"203.0.113.66", "bank.test", "bank-secure.example", "reject"}: 12,
			{"198.51.100.7", "bank.test", "lists.example", "none"}:         3,
			{"192.0.2.10", "bank.test", "", "pass"}:                        2,
			{"192.0.2.11", "bank.test", "bank.test", "pass"}:               1,
		} {
			if counts[k] != want {
				t.Errorf("%+v: count %d, want %d", k, counts[k], want)
			}
		}
		if len(f.Records) != 6 {
			t.Errorf("%d records, want 6", len(f.Records))
		}
		for _, r := range f.Records {
			if r.Row.SourceIP == "198.51.100.7" && (len(r.Row.PolicyEvaluated.Reasons) != 1 || r.Row.PolicyEvaluated.Reasons[0].Type != "trusted_forwarder") {
				t.Errorf("override reason: %+v", r.Row.PolicyEvaluated)
			}
			if r.Row.SourceIP == "192.0.2.10" && *r.Identifiers.EnvelopeFrom == "" && r.AuthResults.SPF.Scope != "" {
				t.Errorf("a HELO-scope SPF result written with a scope: %+v", r.AuthResults.SPF)
			}
		}
		old, _ := feedback.Parse(byDomain["old.test"][0].GZ)
		if r := old.Records[0].Row.PolicyEvaluated.Reasons; len(r) != 1 || r[0].Type != "other" || !strings.Contains(r[0].Comment, "sampled_out") {
			t.Errorf("sampled_out reason: %+v", r)
		}
		if d := byDomain["old.test"][0]; d.End.Sub(d.Begin) != time.Hour-time.Second {
			t.Errorf("ri=3600 period %v - %v", d.Begin, d.End)
		}

		// Nothing is made twice: a second run, or a second node, finds
		// every period done.
		again, err := g.Generate(ctx)
		if err != nil || len(again) != 0 {
			t.Errorf("second run made %d reports (%v)", len(again), err)
		}
		list, _ := st.Reports(ctx, store.ReportFilter{})
		if len(list) != 2 {
			t.Errorf("%d reports stored, want 2", len(list))
		}
		for _, r := range list {
			if len(r.Deliveries) != 1 || r.Deliveries[0].State != store.Pending {
				t.Errorf("%s deliveries %+v", r.PolicyDomain, r.Deliveries)
			}
		}
		if pending, _ := st.UnreportedDomains(ctx); len(pending) != 0 {
			t.Errorf("rows left unreported: %+v", pending)
		}
	})
}

// TestOpenPeriodWaits: the current day's rows wait for the day to end
// (and the grace after it).
func TestOpenPeriodWaits(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		st.InsertVerdicts(ctx, []store.Verdict{verdictFor(day.Add(time.Hour), "192.0.2.1", "a.test", "a.test", "mailto:r@a.test", -1, nil)})
		for _, c := range []struct {
			now  time.Time
			want int
		}{{day.Add(23 * time.Hour), 0}, {day.Add(24*time.Hour + time.Minute), 0}, {day.Add(24*time.Hour + 6*time.Minute), 1}} {
			g := &Generator{Store: st, Receiver: "mx.test", Email: "p@mx.test", Now: func() time.Time { return c.now }}
			made, err := g.Generate(ctx)
			if err != nil || len(made) != c.want {
				t.Errorf("at %v: %d reports (%v), want %d", c.now, len(made), err, c.want)
			}
		}
	})
}
