package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dmarc"
)

// classOf is the test's own reading of a stage result, to check the SQL
// against.
func classOf(stage string, v Verdict) string {
	r := map[string]string{"iprev": v.IPRev, "spf": v.SPF, "dmarc": v.DMARC, "arc": v.ARC}[stage]
	if stage == "dkim" {
		status := map[string]bool{}
		for _, sig := range strings.Fields(v.DKIM) {
			st, _, _ := strings.Cut(sig, ":")
			status[st] = true
		}
		switch {
		case status["pass"]:
			return ClassPass
		case status["fail"] || status["permerror"]:
			return ClassFail
		case len(status) == 0 || status["none"]:
			return ClassNone
		}
		return ClassOther
	}
	switch r {
	case "pass":
		return ClassPass
	case "fail", "softfail", "permerror":
		return ClassFail
	case "", "none":
		return ClassNone
	}
	return ClassOther
}

func TestStageRatesAndTopSenders(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		since := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		rng := rand.New(rand.NewPCG(1, 2))
		pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
		var vs []Verdict
		// 24 hours and a bit either side, which must not be counted.
		for i := range 300 {
			at := since.Add(-time.Hour + time.Duration(i)*26*time.Hour/300)
			from := pick("bank.test", "shop.test", "news.test", "")
			v := testVerdict(at, "x.test", pick("192.0.2.1", "192.0.2.2", "2001:db8::7"), pick("accept", "reject", "quarantine", "tag"))
			v.FromDomain, v.DMARCRow = from, nil
			v.IPRev, v.SPF = pick("pass", "fail", "temperror", ""), pick("pass", "softfail", "neutral", "none", "permerror")
			v.DMARC, v.ARC = pick("pass", "fail", "none", "temperror"), pick("pass", "fail", "none", "", "temperror")
			v.DKIM = pick("", "pass:a.test", "fail:a.test pass:b.test", "fail:a.test", "permerror:a.test temperror:b.test", "temperror:a.test", "neutral:a.test", "none:")
			vs = append(vs, v)
		}
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		until := since.Add(24 * time.Hour)
		got, err := s.StageRates(ctx, since, until, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(Stages) {
			t.Fatalf("%d series, want %d", len(got), len(Stages))
		}
		for _, series := range got {
			want := make([]ClassCounts, 24)
			var total ClassCounts
			for _, v := range vs {
				if v.At.Before(since) || !v.At.Before(until) {
					continue
				}
				h := int(v.At.Sub(since) / time.Hour)
				want[h].Add(classOf(series.Stage, v), 1)
				total.Add(classOf(series.Stage, v), 1)
			}
			if fmt.Sprint(series.Buckets) != fmt.Sprint(want) || series.Total != total {
				t.Errorf("%s:\n got %v %v\nwant %v %v", series.Stage, series.Buckets, series.Total, want, total)
			}
			if total.Pass == 0 || total.Fail == 0 || total.None == 0 || total.Other == 0 {
				t.Errorf("%s: the test data should fill every class: %+v", series.Stage, total)
			}
		}

		top, err := s.TopSenders(ctx, "domain", since, 2)
		if err != nil || len(top) != 2 {
			t.Fatalf("top domains: %+v %v", top, err)
		}
		counts := map[string]*Sender{}
		for _, v := range vs {
			if v.At.Before(since) || v.FromDomain == "" {
				continue
			}
			c := counts[v.FromDomain]
			if c == nil {
				c = &Sender{Key: v.FromDomain}
				counts[v.FromDomain] = c
			}
			c.Messages++
			if v.DMARC == "pass" {
				c.DMARCPass++
			}
			if v.Action == "reject" || v.Action == "quarantine" {
				c.Refused++
			}
		}
		for i, x := range top {
			if *counts[x.Key] != x {
				t.Errorf("top domain %d: %+v, want %+v", i, x, *counts[x.Key])
			}
			if i > 0 && x.Messages > top[i-1].Messages {
				t.Errorf("not in order: %+v", top)
			}
		}
		ips, err := s.TopSenders(ctx, "ip", since, 10)
		if err != nil || len(ips) != 3 {
			t.Errorf("top IPs: %+v %v", ips, err)
		}
		actions, err := s.ActionCounts(ctx, since)
		want := map[string]int64{}
		for _, v := range vs {
			if !v.At.Before(since) {
				want[v.Action]++
			}
		}
		if err != nil || fmt.Sprint(actions) != fmt.Sprint(want) {
			t.Errorf("action counts %v (%v), want %v", actions, err, want)
		}
		one, err := s.Verdict(ctx, 2)
		if err != nil || one == nil || one.ID != 2 {
			t.Errorf("verdict 2: %+v %v", one, err)
		}
		if none, err := s.Verdict(ctx, 100000); none != nil || err != nil {
			t.Errorf("missing verdict: %+v %v", none, err)
		}
	})
}

func TestSettings(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, ok, err := s.Setting(ctx, "web.password_hash"); ok || err != nil {
			t.Fatalf("fresh store has a setting: %v %v", ok, err)
		}
		kept, created, err := s.InitSetting(ctx, "web.password_hash", "first")
		if kept != "first" || !created || err != nil {
			t.Fatalf("init: %q %v %v", kept, created, err)
		}
		kept, created, err = s.InitSetting(ctx, "web.password_hash", "second")
		if kept != "first" || created || err != nil {
			t.Errorf("second init replaced the first: %q %v %v", kept, created, err)
		}
		if err := s.SetSetting(ctx, "web.password_hash", "reset"); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := s.Setting(ctx, "web.password_hash"); v != "reset" || !ok || err != nil {
			t.Errorf("after set: %q %v %v", v, ok, err)
		}
		if _, ok, _ := s.Setting(ctx, "schema"); ok {
			t.Error("settings reach the schema version")
		}
	})
}

// TestTopReasonsRulesAndDeliveries: the overview's tables, on both
// drivers: not-accepted verdicts grouped by deciding stage and action,
// scoring rules counted by name with their refusals, and report
// deliveries by state with the failed ones listed; all within the range.
func TestTopReasonsRulesAndDeliveries(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		since := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		until := since.Add(24 * time.Hour)
		var vs []Verdict
		add := func(n int, at time.Time, stage, action string, rules ...string) {
			for range n {
				v := testVerdict(at, "bank.test", "192.0.2.1", action)
				v.Stage, v.Rules, v.DMARCRow = stage, rules, nil
				v.Reasons = []string{stage + ": " + action + " because", "second line"}
				vs = append(vs, v)
			}
		}
		add(5, since.Add(time.Hour), "dmarc", "reject", "brand_from_domain=45", "fresh_domain=10")
		add(3, since.Add(2*time.Hour), "score", "quarantine", "brand_from_domain=40")
		add(2, since.Add(3*time.Hour), "spf", "tempfail")
		add(4, since.Add(4*time.Hour), "", "accept", "fresh_domain=10") // accepted: no reason, but its rules count
		add(7, since.Add(-time.Hour), "dmarc", "tag", "outside=1")      // before the range
		add(7, until, "dmarc", "tag", "outside=1")                      // at its end: outside
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		reasons, err := s.TopReasons(ctx, since, until, 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []Reason{{"dmarc", "reject", 5, "dmarc: reject because"}, {"score", "quarantine", 3, "score: quarantine because"}, {"spf", "tempfail", 2, "spf: tempfail because"}}
		if fmt.Sprint(reasons) != fmt.Sprint(want) {
			t.Errorf("top reasons\n got %v\nwant %v", reasons, want)
		}
		if r, _ := s.TopReasons(ctx, since, until, 1); len(r) != 1 {
			t.Errorf("limit 1: %v", r)
		}
		rules, truncated, err := s.TopRules(ctx, since, until, 10)
		if err != nil || truncated {
			t.Fatal(err, truncated)
		}
		wantRules := []RuleCount{{"fresh_domain", 9, 5, 90}, {"brand_from_domain", 8, 8, 345}}
		if fmt.Sprint(rules) != fmt.Sprint(wantRules) {
			t.Errorf("top rules\n got %v\nwant %v", rules, wantRules)
		}

		// Deliveries: one failed, one sent, one pending, of a report made
		// in the range; one failed of an older report, not counted.
		for i, created := range []time.Time{since.Add(time.Hour), since.Add(-48 * time.Hour)} {
			r := &ReportOut{PolicyDomain: fmt.Sprintf("d%d.test", i), Begin: created.Add(-24 * time.Hour), End: created, ReportID: fmt.Sprint("r", i),
				Filename: "f.xml.gz", Created: created, GZ: []byte{1}}
			if _, err := s.SaveReport(ctx, r, []dmarc.URI{{URI: "mailto:a@x.test"}, {URI: "mailto:b@x.test"}, {URI: "mailto:c@x.test"}}); err != nil {
				t.Fatal(err)
			}
		}
		due, err := s.DueDeliveries(ctx, time.Time{})
		if err != nil || len(due) != 6 {
			t.Fatalf("deliveries %v %v", due, err)
		}
		for i, d := range due {
			switch i % 3 {
			case 0:
				d.State, d.LastError = Failed, "550 5.1.1 no such user"
			case 1:
				d.State, d.SentAt = Sent, since
			default:
				continue
			}
			if err := s.FinishDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		counts, failed, err := s.DeliveryStates(ctx, since, 5)
		if err != nil {
			t.Fatal(err)
		}
		if counts[Failed] != 1 || counts[Sent] != 1 || counts[Pending] != 1 || len(counts) != 3 {
			t.Errorf("states %v, want one each of failed, sent, pending", counts)
		}
		if len(failed) != 1 || failed[0].PolicyDomain != "d0.test" || failed[0].LastError != "550 5.1.1 no such user" || failed[0].URI != "mailto:a@x.test" {
			t.Errorf("failed %+v", failed)
		}
	})
}

// TestActionRates: verdicts counted by action in their buckets, other
// actions in the last column, nothing outside the range.
func TestActionRates(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		since := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		var vs []Verdict
		for _, x := range []struct {
			at     time.Duration
			action string
		}{{-time.Minute, "reject"}, {0, "accept"}, {30 * time.Minute, "accept"}, {time.Hour, "reject"}, {90 * time.Minute, "internal"},
			{5*time.Hour + 59*time.Minute, "tempfail"}, {6 * time.Hour, "accept"}} {
			v := testVerdict(since.Add(x.at), "bank.test", "192.0.2.1", x.action)
			v.DMARCRow = nil
			vs = append(vs, v)
		}
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		got, err := s.ActionRates(ctx, since, since.Add(6*time.Hour), time.Hour, []string{"accept", "reject", "tempfail"})
		if err != nil {
			t.Fatal(err)
		}
		want := [][]int64{{2, 0, 0, 0}, {0, 1, 0, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 1, 0}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("rates\n got %v\nwant %v", got, want)
		}
	})
}
