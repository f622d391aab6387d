package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
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
