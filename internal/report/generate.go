// Package report makes, sends and reads DMARC aggregate reports (RFC 9990).
//
// Outgoing reports are built from the DMARC rows the store keeps, one
// report per DMARC Policy Domain and reporting period, stored with their
// exact bytes before the first attempt, and sent once to each destination.
// Incoming reports (in mail or a Maildir) are parsed into the store; a
// malformed one is kept, flagged.
package report

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"mailwall/internal/dmarc"
	"mailwall/internal/feedback"
	"mailwall/internal/store"
)

// Generator makes the aggregate reports that are due from the DMARC rows
// in the store.
type Generator struct {
	Store *store.Store
	// Receiver is this host's (or organization's) domain name: it names
	// the report file and appears in the Subject and the Report-ID.
	Receiver string
	OrgName  string // <org_name>; Receiver when empty
	Email    string // <email>: a contact address
	Contact  string // <extra_contact_info>, optional
	Version  string // for <generator>
	// Grace is how long after a period ends its report waits for verdicts
	// still being written (default 5 minutes).
	Grace time.Duration
	// NewPerHour and NewPerDay bound the reports made for policy
	// domains never reported to before (none in the store): mail from a
	// flood of fresh domains, each with an rua= of its own, must not
	// make us send a flood of reports (issue 23). The rest wait, their
	// rows kept, for a later run. 0: 100 an hour, 1,000 a day; negative:
	// no limit.
	NewPerHour, NewPerDay int
	Now                   func() time.Time
	Log                   *slog.Logger

	mu    sync.Mutex
	newAt []time.Time     // when each report to a new domain was made, the last day's
	known map[string]bool // domains with a report in the store
}

// newDomainLimits are NewPerHour and NewPerDay with their defaults.
func (g *Generator) newDomainLimits() (hour, day int) {
	hour, day = g.NewPerHour, g.NewPerDay
	if hour == 0 {
		hour = 100
	}
	if day == 0 {
		day = 1000
	}
	return hour, day
}

// newDomainAllowed reports whether a report may be made now for domain:
// always for one reported to before, else while the windows allow.
func (g *Generator) newDomainAllowed(ctx context.Context, domain string, now time.Time) (isNew, ok bool, err error) {
	hour, day := g.newDomainLimits()
	if hour < 0 && day < 0 {
		return false, true, nil
	}
	g.mu.Lock()
	known := g.known[domain]
	g.mu.Unlock()
	if !known {
		prev, err := g.Store.Reports(ctx, store.ReportFilter{Domain: domain, Limit: 1})
		if err != nil {
			return false, false, err
		}
		if len(prev) > 0 {
			g.remember(domain)
			known = true
		}
	}
	if known {
		return false, true, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	kept := g.newAt[:0]
	lastHour := 0
	for _, t := range g.newAt {
		if now.Sub(t) < 24*time.Hour {
			kept = append(kept, t)
			if now.Sub(t) < time.Hour {
				lastHour++
			}
		}
	}
	g.newAt = kept
	if hour >= 0 && lastHour >= hour || day >= 0 && len(g.newAt) >= day {
		return true, false, nil
	}
	return true, true, nil
}

// madeNew counts a report made for a new domain.
func (g *Generator) madeNew(domain string, now time.Time) {
	g.mu.Lock()
	g.newAt = append(g.newAt, now)
	g.mu.Unlock()
	g.remember(domain)
}

func (g *Generator) remember(domain string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.known == nil || len(g.known) >= 100000 {
		g.known = map[string]bool{} // bounded: forgetting costs one query
	}
	g.known[domain] = true
}

// Interval is the reporting period for a record's ri= (RFC 7489 §6.3;
// RFC 9989 dropped the tag): clamped to one to 24 hours and rounded down
// to a divisor of a day, so that periods start at 0000 UTC and never
// overlap. No ri= means daily.
func Interval(ri int) time.Duration {
	if ri <= 0 || ri >= 86400 {
		return 24 * time.Hour
	}
	for _, h := range []int{12, 8, 6, 4, 3, 2, 1} {
		if ri >= h*3600 {
			return time.Duration(h) * time.Hour
		}
	}
	return time.Hour
}

// Generate makes every report whose period has ended, stores it with its
// deliveries and returns the new ones. Domains whose record asks for no
// reports have their rows set aside.
func (g *Generator) Generate(ctx context.Context) ([]*store.ReportOut, error) {
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	grace := g.Grace
	if grace == 0 {
		grace = 5 * time.Minute
	}
	domains, err := g.Store.UnreportedDomains(ctx)
	if err != nil {
		return nil, err
	}
	var made []*store.ReportOut
	deferred := 0
	for _, d := range domains {
		isNew := false
		iv := Interval(d.RI)
		secs := int64(iv / time.Second)
		begin := time.Unix(d.Oldest.Unix()/secs*secs, 0).UTC()
		for end := begin.Add(iv); !end.After(now.Add(-grace)); begin, end = end, end.Add(iv) {
			p, err := g.Store.PeriodRows(ctx, d.Domain, begin, end)
			if err != nil {
				return made, err
			}
			if p == nil {
				continue
			}
			if len(p.RUA) == 0 {
				if err := g.Store.SetAside(ctx, d.Domain, begin, end); err != nil {
					return made, err
				}
				continue
			}
			if !isNew {
				var ok bool
				if isNew, ok, err = g.newDomainAllowed(ctx, d.Domain, now); err != nil {
					return made, err
				} else if !ok {
					deferred++
					break // its rows wait for a later run
				}
			}
			r, err := g.build(d.Domain, begin, end, p, now)
			if err != nil {
				return made, err
			}
			created, err := g.Store.SaveReport(ctx, r, p.RUA)
			if err != nil {
				return made, err
			}
			if created {
				if isNew {
					g.madeNew(d.Domain, now)
					isNew = false // counted once; its next periods are a known domain's
				}
				made = append(made, r)
				if g.Log != nil {
					g.Log.Info("dmarc report made", "domain", d.Domain, "report_id", r.ReportID, "records", r.Records, "messages", r.Messages, "destinations", len(p.RUA))
				}
			}
		}
	}
	if deferred > 0 && g.Log != nil {
		hour, day := g.newDomainLimits()
		g.Log.Warn("dmarc reports to domains not reported to before: limit reached, the rest wait", "deferred_domains", deferred, "per_hour", hour, "per_day", day)
	}
	return made, nil
}

// build renders the report for one domain and period.
func (g *Generator) build(domain string, begin, end time.Time, p *store.Period, now time.Time) (*store.ReportOut, error) {
	f := g.Feedback(domain, begin, end, p)
	body, err := feedback.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("report: %s: %w", domain, err)
	}
	// The report's end is the last second in it: periods do not overlap.
	last := end.Add(-time.Second)
	name := fmt.Sprintf("%s!%s!%d!%d.xml.gz", g.Receiver, domain, begin.Unix(), last.Unix())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Name = strings.TrimSuffix(name, ".gz")
	zw.ModTime = now
	zw.Write(body)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("report: %s: %w", domain, err)
	}
	return &store.ReportOut{
		PolicyDomain: domain, Begin: begin, End: last, ReportID: f.Metadata.ReportID, Filename: name, Created: now,
		Records: len(f.Records), Messages: f.Messages(), XMLSize: int64(len(body)), GZ: gz.Bytes(),
	}, nil
}

// Feedback is the report for one domain and period.
func (g *Generator) Feedback(domain string, begin, end time.Time, p *store.Period) feedback.Feedback {
	org := g.OrgName
	if org == "" {
		org = g.Receiver
	}
	gen := "mailwall"
	if g.Version != "" {
		gen += " " + g.Version
	}
	f := feedback.Feedback{
		Version: "1.0",
		Metadata: feedback.Metadata{
			OrgName: org, Email: g.Email, ExtraContactInfo: g.Contact,
			// Unique per domain and period, and the same on a re-send.
			ReportID:  fmt.Sprintf("%d.%s@%s", begin.Unix(), domain, g.Receiver),
			DateRange: feedback.DateRange{Begin: begin.Unix(), End: end.Unix() - 1},
			Generator: gen,
		},
		PolicyPublished: published(domain, p.Published),
	}
	for _, gr := range p.Groups {
		f.Records = append(f.Records, record(gr.Row, gr.Count))
	}
	return f
}

func published(domain string, pp dmarc.PublishedPolicy) feedback.PolicyPublished {
	out := feedback.PolicyPublished{
		Domain: domain, DiscoveryMethod: pp.DiscoveryMethod, P: string(pp.P), SP: string(pp.SP), NP: string(pp.NP),
		FO: pp.FailureReportingFO, ADKIM: pp.ADKIM, ASPF: pp.ASPF, Testing: "n",
	}
	if pp.Domain != "" {
		out.Domain = pp.Domain
	}
	if out.P == "" {
		out.P = "none"
	}
	if pp.Testing {
		out.Testing = "y"
	}
	return out
}

// maxSignatures bounds the DKIM results per record (RFC 9990 §3.1.3).
const maxSignatures = 100

func record(row dmarc.Row, count int64) feedback.Record {
	ef := row.EnvelopeFrom
	r := feedback.Record{
		Row: feedback.Row{SourceIP: row.SourceIP.String(), Count: count, PolicyEvaluated: feedback.PolicyEvaluated{
			Disposition: string(row.Disposition), DKIM: row.DKIMAligned, SPF: row.SPFAligned,
		}},
		Identifiers: feedback.Identifiers{HeaderFrom: row.HeaderFrom, EnvelopeFrom: &ef, EnvelopeTo: row.EnvelopeTo},
	}
	if r.Row.PolicyEvaluated.Disposition == "" {
		r.Row.PolicyEvaluated.Disposition = "none"
	}
	for _, reason := range row.Reasons {
		r.Row.PolicyEvaluated.Reasons = append(r.Row.PolicyEvaluated.Reasons, overrideReason(reason))
	}
	sigs := append([]dmarc.DKIMResult(nil), row.DKIM...)
	sort.SliceStable(sigs, func(i, j int) bool { return signatureRank(sigs[i], row) < signatureRank(sigs[j], row) })
	if len(sigs) > maxSignatures {
		sigs = sigs[:maxSignatures]
	}
	for _, s := range sigs {
		r.AuthResults.DKIM = append(r.AuthResults.DKIM, feedback.DKIMResult{Domain: s.Domain, Selector: s.Selector, Result: dkimResult(s.Result)})
	}
	if row.SPFDomain != "" || row.SPFResult != "" {
		spf := &feedback.SPFResult{Domain: row.SPFDomain, Result: row.SPFResult}
		if row.SPFScope == "mfrom" {
			spf.Scope = "mfrom"
		}
		if spf.Result == "" {
			spf.Result = "none"
		}
		r.AuthResults.SPF = spf
	}
	return r
}

// signatureRank orders signatures as RFC 9990 §3.1.3 prefers them:
// passing and strictly aligned, passing and relaxed aligned, passing,
// then the others.
func signatureRank(s dmarc.DKIMResult, row dmarc.Row) int {
	d, from, org := strings.ToLower(s.Domain), strings.ToLower(row.HeaderFrom), strings.ToLower(row.PolicyDomain)
	switch {
	case s.Result != "pass":
		return 3
	case d == from:
		return 0
	case d == org || strings.HasSuffix(d, "."+org) || strings.HasSuffix(from, "."+d):
		return 1
	}
	return 2
}

// dkimResult maps our statuses onto RFC 8601 §2.7.1's (the schema's
// enumeration).
func dkimResult(s string) string {
	switch s {
	case "none", "pass", "fail", "policy", "neutral", "temperror", "permerror":
		return s
	}
	return "permerror"
}

// overrideReason maps a dmarc.Row reason onto RFC 9990's override types;
// RFC 7489's sampled_out (pct=) has no type of its own any more.
func overrideReason(r string) feedback.Reason {
	switch r {
	case "local_policy", "mailing_list", "other", "policy_test_mode", "trusted_forwarder":
		return feedback.Reason{Type: r}
	case "sampled_out":
		return feedback.Reason{Type: "other", Comment: "sampled_out: outside the record's pct= sample (RFC 7489)"}
	}
	return feedback.Reason{Type: "other", Comment: r}
}
