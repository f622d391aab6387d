package verdict

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/arc"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/spf"
	"mailwall/internal/store"
)

// TestStageResultsAsBefore: the stages, the DKIM summary, the rules and
// the client's address Record writes in one text are those it made before,
// each string on its own (m3OldStageResults, "status:domain" joined, analysis.Rules, Addr.String),
// for every mix of empty, plain and "; "-edged values of the fields a
// reason is made of (the trims at either end), and many signatures and
// analyzers (more texts than recordText keeps places for).
func TestStageResultsAsBefore(t *testing.T) {
	vals := []string{"", "x y", "; ", "; a", "b; ", ";"}
	pick := func(i, k int) string { // the k-th digit of i in base len(vals)
		for range k {
			i /= len(vals)
		}
		return vals[i%len(vals)]
	}
	n := 0
	for i := 0; i < 6*6*6*6*6*6; i += 7 {
		for _, nDKIM := range []int{0, 1, 3, 30} {
			r := &Result{Helo: pick(i, 5), Internal: i%2 == 0, S25R: pick(i, 4),
				IPRev: conncheck.IPRev{Result: "pass", Reason: pick(i, 0), Name: pick(i, 1)},
				SPF: spf.Outcome{Result: []spf.Result{spf.Fail, spf.Pass, ""}[i%3], Problem: pick(i, 2), Domain: pick(i, 3), Mechanism: pick(i, 4),
					Explanation: pick(i, 5), DNSSEC: pick(i, 1)},
				ARC:      arc.Outcome{Result: "none", Reason: pick(i, 3)},
				DMARC:    dmarc.Result{Result: pick(i, 0), Reason: pick(i, 2), PolicyDomain: pick(i, 3), Policy: dmarc.PolicyReject, PolicyDNSSEC: pick(i, 4)},
				Override: pick(i, 5)}
			for j := range nDKIM {
				r.DKIM = append(r.DKIM, dkim.Result{Status: dkim.Status([]string{"pass", "fail", ""}[j%3]), Domain: "d" + strconv.Itoa(j) + ".example",
					Selector: pick(i+j, 1), KeyDNSSEC: pick(i+j, 2), Reason: pick(i+j, 3)})
			}
			for j := range nDKIM / 2 {
				r.Analyses = append(r.Analyses, Analysis{Name: "a" + strconv.Itoa(j), Result: analysis.Result{
					Hits: []analysis.Hit{{Rule: "r", Weight: j - 1}}, Problems: strings.Fields(strings.Repeat("p ", j%4))}})
			}
			for _, a := range r.Analyses[:len(r.Analyses)*(i%2)] {
				r.Hits = append(r.Hits, a.Hits...)
			}
			var wantRules []string
			if len(r.Analyses) > 0 {
				wantRules = analysis.Rules(r.Hits)
			}
			if got := r.Rules(); !reflect.DeepEqual(got, wantRules) {
				t.Fatalf("%d: Rules %q, want %q", i, got, wantRules)
			}
			env := Envelope{ClientIP: []netip.Addr{{}, netip.MustParseAddr("::ffff:192.0.2.6"), netip.MustParseAddr("2001:db8::1")}[i%3]}
			v := r.Record(env, "mx1", time.Unix(0, 0))
			if want := m3OldStageResults(r); !reflect.DeepEqual(v.Details.Stages, want) {
				t.Fatalf("%d: stages\n%q\nwant\n%q", i, v.Details.Stages, want)
			}
			var sum []string
			for _, d := range r.DKIM {
				sum = append(sum, string(d.Status)+":"+d.Domain)
			}
			if want := strings.Join(sum, " "); v.DKIM != want || DKIMSummary(r.DKIM) != want {
				t.Fatalf("%d: dkim %q, want %q", i, v.DKIM, want)
			}
			if want := map[bool]string{true: env.ClientIP.Unmap().String()}[env.ClientIP.IsValid()]; v.ClientIP != want {
				t.Fatalf("%d: client %q, want %q", i, v.ClientIP, want)
			}
			if got := r.stageResults(); !reflect.DeepEqual(got, v.Details.Stages) {
				t.Fatalf("%d: stageResults %q, Record's %q", i, got, v.Details.Stages)
			}
			n++
		}
	}
	t.Logf("%d results", n)
}

// m3OldStageResults is stageResults before its texts shared one string (2026-12-06): the reference of TestStageResultsAsBefore. stageResults are each check's result and why, in pipeline order;
// checks that did not run are left out.
func m3OldStageResults(r *Result) []store.StageResult {
	// internal, helo, iprev, s25r, spf, dkim, arc, dmarc, analyses: one
	// allocation, where growing took five.
	out := make([]store.StageResult, 0, 8+max(1, len(r.DKIM))+len(r.Analyses))
	add := func(stage, result, reason string) {
		if result != "" {
			out = append(out, store.StageResult{Stage: stage, Result: result, Reason: reason})
		}
	}
	if r.Internal {
		add("internal", "signed, not checked", "internal host or authenticated sender")
	}
	add("helo", r.Helo, "")
	ipr := r.IPRev.Reason
	if r.IPRev.Name != "" {
		ipr = strings.TrimPrefix(ipr+"; name "+r.IPRev.Name, "; ")
	}
	add("iprev", r.IPRev.Result, ipr)
	if r.S25R != "" {
		add("s25r", "dynamic-looking", r.S25R)
	}
	spfWhy := r.SPF.Problem
	switch {
	case spfWhy == "" && r.SPF.Mechanism != "" && r.SPF.Domain != "":
		spfWhy = strings.TrimSuffix("domain "+r.SPF.Domain+"; matched "+r.SPF.Mechanism, "; ") // one string, not two
	case spfWhy == "" && r.SPF.Mechanism != "":
		spfWhy = "matched " + r.SPF.Mechanism
	case r.SPF.Domain != "":
		spfWhy = strings.TrimSuffix("domain "+r.SPF.Domain+"; "+spfWhy, "; ")
	}
	if r.SPF.Result == spf.Fail && r.SPF.Explanation != "" {
		spfWhy += "; " + r.SPF.Explanation
	}
	if r.SPF.DNSSEC != "" {
		spfWhy = strings.TrimPrefix(spfWhy+"; dnssec "+r.SPF.DNSSEC, "; ") // issue 27
	}
	add("spf", string(r.SPF.Result), spfWhy)
	if len(r.DKIM) == 0 && r.DMARC.Result != "" {
		add("dkim", "none", "no signature")
	}
	for _, d := range r.DKIM {
		why := "d=" + d.Domain + " s=" + d.Selector
		if d.KeyDNSSEC != "" {
			why += " key dnssec " + d.KeyDNSSEC
		}
		if d.Reason != "" {
			why += ": " + d.Reason
		}
		add("dkim", string(d.Status), why)
	}
	add("arc", string(r.ARC.Result), r.ARC.Reason)
	dm := r.DMARC.Reason
	if r.DMARC.PolicyDomain != "" {
		dm = strings.TrimSuffix("policy domain "+r.DMARC.PolicyDomain+", p="+string(r.DMARC.Policy)+"; "+dm, "; ")
	}
	if r.DMARC.PolicyDNSSEC != "" {
		dm = strings.TrimPrefix(dm+"; policy dnssec "+r.DMARC.PolicyDNSSEC, "; ")
	}
	if r.Override != "" {
		dm += "; set aside: " + r.Override
	}
	add("dmarc", r.DMARC.Result, dm)
	for _, a := range r.Analyses {
		score := "score 0" // most analyzers' on most mail: no string made
		if s := analysis.Score(a.Hits); s != 0 {
			score = "score " + strconv.Itoa(s)
		}
		add(a.Name, score, strings.Join(a.Problems, "; "))
	}
	if len(out) == 0 {
		return nil // as before: no stage, no list
	}
	return out
}

// TestMessageFactsID: MessageFactsID is MessageFacts and FieldValue's
// Message-ID.
func TestMessageFactsID(t *testing.T) {
	for _, fields := range [][]dkim.Field{
		nil,
		{{Name: "From", Raw: "From: A <a@Example.test>\r\n"}, {Name: "Message-ID", Raw: "Message-ID: <m1@x.test>\r\n"},
			{Name: "Subject", Raw: "Subject: =?UTF-8?Q?caf=C3=A9?=\r\n"}},
		{{Name: "message-id", Raw: "message-id:\t< m2@x.test >\r\n"}},
	} {
		from, idField, id, subject := MessageFactsID(fields)
		f2, id2, s2 := MessageFacts(fields)
		if from != f2 || id != id2 || subject != s2 || idField != FieldValue(fields, "Message-ID") {
			t.Errorf("%v: %q %q %q %q", fields, from, idField, id, subject)
		}
	}
}
