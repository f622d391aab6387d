package dmarc

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// labZones serves the DMARC test world on loopback:
//
//	example.test     p=reject, with signing.example.test's own record,
//	                 sub.example.test existing without one
//	np.test          p=quarantine; sp=none; np=reject
//	bank.example     a PSD (psd=y) with giant.bank.example under it
//	legacy.test      an RFC 7489 record with pct=0
//	testing.test     t=y
//	strict.test      adkim=s; aspf=s
//	norua.test       an invalid p= and no rua=
//	badp.test        an invalid p= with a rua=
//	reports.example  consents to reports for example.test, overrides for np.test
//
// The top-level zones test and example are served too (empty), so a tree
// walk that reaches _dmarc.test gets NXDOMAIN, as from the real DNS, and
// not the REFUSED a lab server gives for names outside its zones.
func labZones(t testing.TB) dnsx.Resolver {
	s := labtest.Serve(t,
		labtest.Zone(t, "test"), labtest.Zone(t, "example"),
		labtest.Zone(t, "example.test",
			`_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test,mailto:agg@reports.example,mailto:x@elsewhere.example"`,
			`_dmarc.signing IN TXT "v=DMARC1; p=none"`,
			`sub IN A 192.0.2.1`, `mail IN A 192.0.2.1`, `signing IN A 192.0.2.1`,
			`k IN A 192.0.2.1`, `a.b.c.d.e.f.g.h.i.j.k IN A 192.0.2.1`,
			`_dmarc.twice IN TXT "v=DMARC1; p=none"`, `_dmarc.twice IN TXT "v=DMARC1; p=reject"`, `twice IN A 192.0.2.1`),
		labtest.Zone(t, "np.test", `_dmarc IN TXT "v=DMARC1; p=quarantine; sp=none; np=reject; rua=mailto:r@reports.example"`, `real IN A 192.0.2.1`),
		labtest.Zone(t, "bank.example", `_dmarc IN TXT "v=DMARC1; p=reject; psd=y"`,
			`_dmarc.giant IN TXT "v=DMARC1; p=quarantine"`, `giant IN A 192.0.2.1`, `mail.giant IN A 192.0.2.1`, `nobody IN A 192.0.2.1`),
		labtest.Zone(t, "legacy.test", `_dmarc IN TXT "v=DMARC1; p=reject; pct=0; rf=afrf; ri=3600"`),
		labtest.Zone(t, "testing.test", `_dmarc IN TXT "v=DMARC1; p=reject; t=y"`),
		labtest.Zone(t, "strict.test", `_dmarc IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"`, `mail IN A 192.0.2.1`),
		labtest.Zone(t, "norua.test", `_dmarc IN TXT "v=DMARC1; p=bogus"`),
		labtest.Zone(t, "badp.test", `_dmarc IN TXT "v=DMARC1; p=bogus; rua=mailto:d@badp.test"`),
		labtest.Zone(t, "reports.example",
			`example.test._report._dmarc IN TXT "v=DMARC1"`,
			`np.test._report._dmarc IN TXT "v=DMARC1; rua=mailto:np-reports@reports.example; ruf=mailto:np-failures@reports.example"`,
			`badp.test._report._dmarc IN TXT "v=DMARC1; rua=mailto:elsewhere@other.example"`),
	)
	return dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})
}

func TestEvaluate(t *testing.T) {
	e := &Evaluator{Resolver: labZones(t)}
	dk := func(d string) []DKIMResult { return []DKIMResult{{Domain: d, Selector: "s", Result: "pass"}} }
	for _, tc := range []struct {
		name                 string
		in                   Input
		result, policyDomain string
		org                  string
		policy, disposition  Policy
		dkim, spf            bool
	}{
		{"own record, SPF of a subdomain aligned", Input{FromDomains: []string{"example.test"}, SPFDomain: "mail.example.test", SPFScope: "mfrom", SPFResult: "pass"},
			Pass, "example.test", "example.test", PolicyReject, PolicyNone, false, true},
		{"B.4.1: DKIM of a subdomain with its own record aligns", Input{FromDomains: []string{"example.test"}, DKIM: dk("signing.example.test")},
			Pass, "example.test", "example.test", PolicyReject, PolicyNone, true, false},
		{"fail, p=reject", Input{FromDomains: []string{"example.test"}, SPFDomain: "evil.example", SPFResult: "pass", DKIM: dk("evil.example")},
			Fail, "example.test", "example.test", PolicyReject, PolicyReject, false, false},
		{"DKIM fail does not count", Input{FromDomains: []string{"example.test"}, DKIM: []DKIMResult{{Domain: "example.test", Result: "fail"}}},
			Fail, "example.test", "example.test", PolicyReject, PolicyReject, false, false},
		{"existing subdomain without a record: sp", Input{FromDomains: []string{"real.np.test"}},
			Fail, "np.test", "np.test", PolicyNone, PolicyNone, false, false},
		{"non-existent subdomain: np", Input{FromDomains: []string{"ghost.np.test"}},
			Fail, "np.test", "np.test", PolicyReject, PolicyReject, false, false},
		{"B.4.2: deep author domain", Input{FromDomains: []string{"a.b.c.d.e.f.g.h.i.j.k.example.test"}, SPFDomain: "example.test", SPFResult: "pass"},
			Pass, "example.test", "example.test", PolicyReject, PolicyNone, false, true},
		{"B.4.3: PSD, SPF aligned under the same org", Input{FromDomains: []string{"giant.bank.example"}, SPFDomain: "mail.giant.bank.example", SPFResult: "pass", DKIM: dk("mail.mega.bank.example")},
			Pass, "giant.bank.example", "giant.bank.example", PolicyQuarantine, PolicyNone, false, true},
		{"B.4.3: PSD, another org's DKIM does not align", Input{FromDomains: []string{"giant.bank.example"}, DKIM: dk("mail.mega.bank.example")},
			Fail, "giant.bank.example", "giant.bank.example", PolicyQuarantine, PolicyQuarantine, false, false},
		{"PSD policy for an org without a record", Input{FromDomains: []string{"nobody.bank.example"}},
			Fail, "bank.example", "nobody.bank.example", PolicyReject, PolicyReject, false, false},
		{"RFC 7489 pct=0: one level down", Input{FromDomains: []string{"legacy.test"}},
			Fail, "legacy.test", "legacy.test", PolicyReject, PolicyQuarantine, false, false},
		{"t=y: one level down", Input{FromDomains: []string{"testing.test"}},
			Fail, "testing.test", "testing.test", PolicyReject, PolicyQuarantine, false, false},
		{"strict: a subdomain does not align", Input{FromDomains: []string{"strict.test"}, SPFDomain: "mail.strict.test", SPFResult: "pass", DKIM: dk("mail.strict.test")},
			Fail, "strict.test", "strict.test", PolicyReject, PolicyReject, false, false},
		{"strict: the same domain aligns", Input{FromDomains: []string{"strict.test"}, DKIM: dk("STRICT.test")},
			Pass, "strict.test", "strict.test", PolicyReject, PolicyNone, true, false},
		{"invalid p= with rua=: p=none", Input{FromDomains: []string{"badp.test"}},
			Fail, "badp.test", "badp.test", PolicyNone, PolicyNone, false, false},
		{"invalid p= without rua=: no DMARC", Input{FromDomains: []string{"norua.test"}},
			None, "", "", "", "", false, false},
		{"two records: none", Input{FromDomains: []string{"twice.example.test"}},
			Fail, "example.test", "example.test", PolicyReject, PolicyReject, false, false},
		{"no record anywhere", Input{FromDomains: []string{"unknown.example"}},
			None, "", "", "", "", false, false},
		{"no From domain", Input{}, PermError, "", "", "", "", false, false},
		{"two From domains: the strictest failure", Input{FromDomains: []string{"np.test", "example.test"}, SPFDomain: "np.test", SPFResult: "pass"},
			Fail, "example.test", "example.test", PolicyReject, PolicyReject, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Evaluate(context.Background(), tc.in)
			if r.Result != tc.result || r.PolicyDomain != tc.policyDomain || r.OrgDomain != tc.org || r.Policy != tc.policy ||
				r.Disposition != tc.disposition || r.DKIMAligned != tc.dkim || r.SPFAligned != tc.spf {
				t.Errorf("got %s policy-domain=%s org=%s p=%s dis=%s dkim=%v spf=%v (%s)\nwant %s policy-domain=%s org=%s p=%s dis=%s dkim=%v spf=%v",
					r.Result, r.PolicyDomain, r.OrgDomain, r.Policy, r.Disposition, r.DKIMAligned, r.SPFAligned, r.Reason,
					tc.result, tc.policyDomain, tc.org, tc.policy, tc.disposition, tc.dkim, tc.spf)
			}
		})
	}
}

func TestPublicSuffixListMode(t *testing.T) {
	// RFC 7489's method: the Organizational Domain is one label under the
	// public suffix, whatever records say, so B.4.3's bank.example is one
	// organization and mega's DKIM aligns with giant's From.
	e := &Evaluator{Resolver: labZones(t), PublicSuffixList: true}
	r := e.Evaluate(context.Background(), Input{FromDomains: []string{"giant.bank.example"}, DKIM: []DKIMResult{{Domain: "mail.mega.bank.example", Result: "pass"}}})
	if r.Result != Pass || r.OrgDomain != "bank.example" || !r.DKIMAligned {
		t.Errorf("PSL mode: %+v", r)
	}
	if r.Row.Published.DiscoveryMethod != "psl" {
		t.Errorf("discovery method %q", r.Row.Published.DiscoveryMethod)
	}
	r = e.Evaluate(context.Background(), Input{FromDomains: []string{"sub.example.test"}})
	if r.Result != Fail || r.PolicyDomain != "example.test" || r.Policy != PolicyReject {
		t.Errorf("PSL mode, subdomain: %+v", r)
	}
}

func TestPctSampling(t *testing.T) {
	rec := `_dmarc IN TXT "v=DMARC1; p=reject; pct=50"`
	s := labtest.Serve(t, labtest.Zone(t, "test"), labtest.Zone(t, "half.test", rec))
	res := &dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}
	for _, tc := range []struct {
		sample float64
		want   Policy
	}{{10, PolicyReject}, {49.9, PolicyReject}, {50, PolicyQuarantine}, {99, PolicyQuarantine}} {
		e := &Evaluator{Resolver: res, Sample: func() float64 { return tc.sample }}
		if r := e.Evaluate(context.Background(), Input{FromDomains: []string{"half.test"}}); r.Disposition != tc.want {
			t.Errorf("sample %v: disposition %s, want %s", tc.sample, r.Disposition, tc.want)
		}
	}
}

func TestDNSTimeoutIsTempError(t *testing.T) {
	e := &Evaluator{Resolver: &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 50 * time.Millisecond, Attempts: 1}}
	if r := e.Evaluate(context.Background(), Input{FromDomains: []string{"example.test"}}); r.Result != TempError {
		t.Errorf("got %+v, want temperror", r)
	}
}

func TestReportRow(t *testing.T) {
	e := &Evaluator{Resolver: labZones(t)}
	ip := netip.MustParseAddr("192.0.2.7")
	r := e.Evaluate(context.Background(), Input{FromDomains: []string{"example.test"}, SPFDomain: "example.test", SPFScope: "mfrom", SPFResult: "fail",
		DKIM: []DKIMResult{{Domain: "example.test", Selector: "sel", Result: "pass"}}, SourceIP: ip, EnvelopeTo: "rcpt.test"})
	row := r.Row
	if row.SourceIP != ip || row.HeaderFrom != "example.test" || row.EnvelopeFrom != "example.test" || row.Disposition != ReportPass ||
		row.DKIMAligned != "pass" || row.SPFAligned != "fail" || row.Published.Domain != "example.test" || row.Published.P != PolicyReject ||
		row.Published.DiscoveryMethod != "treewalk" || len(row.DKIM) != 1 {
		t.Errorf("row %+v", row)
	}
}

func TestDestinations(t *testing.T) {
	e := &Evaluator{Resolver: labZones(t)}
	ctx := context.Background()
	rec, _ := ParseRecord("v=DMARC1; p=reject; rua=mailto:dmarc@example.test,mailto:agg@reports.example,mailto:x@elsewhere.example")
	ok, notes, err := e.Destinations(ctx, "example.test", rec.RUA)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range ok {
		got = append(got, u.URI)
	}
	if want := []string{"mailto:dmarc@example.test", "mailto:agg@reports.example"}; !slices.Equal(got, want) {
		t.Errorf("destinations %v, want %v", got, want)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "elsewhere.example has not authorized") {
		t.Errorf("notes %v", notes)
	}
	// An override on the same host replaces the address...
	ok, _, _ = e.Destinations(ctx, "np.test", []URI{{URI: "mailto:r@reports.example"}})
	if len(ok) != 1 || ok[0].URI != "mailto:np-reports@reports.example" {
		t.Errorf("override: %v", ok)
	}
	// ...one on another host drops both.
	ok, notes, _ = e.Destinations(ctx, "badp.test", []URI{{URI: "mailto:d@reports.example"}})
	if len(ok) != 0 || len(notes) != 1 {
		t.Errorf("cross-host override: %v %v", ok, notes)
	}
	// Failure reports take the consenting record's ruf= (RFC 9991 §5);
	// without one, the address stays.
	ok, _, _ = e.FailureDestinations(ctx, "np.test", []URI{{URI: "mailto:r@reports.example"}})
	if len(ok) != 1 || ok[0].URI != "mailto:np-failures@reports.example" {
		t.Errorf("ruf override: %v", ok)
	}
	ok, _, _ = e.FailureDestinations(ctx, "badp.test", []URI{{URI: "mailto:d@reports.example"}})
	if len(ok) != 1 || ok[0].URI != "mailto:d@reports.example" {
		t.Errorf("rua override applied to failure reports: %v", ok)
	}
}

func TestParseRecord(t *testing.T) {
	r, err := ParseRecord("v=DMARC1;p=quarantine; sp=reject ; np=none; adkim=s; aspf=r; t=y; psd=n; fo=1:d; rua=mailto:a@x.test!10m, https://x.test/r, mailto:b@y.test; pct=20; ri=86400; rf=afrf; future=1")
	if err != nil {
		t.Fatal(err)
	}
	if r.P != PolicyQuarantine || r.SP != PolicyReject || r.NP != PolicyNone || r.ADKIM != 's' || r.ASPF != 'r' || !r.Testing || r.PSD != 'n' ||
		len(r.RUA) != 2 || r.RUA[0].MaxSize != 10<<20 || r.RUA[0].Host() != "x.test" || r.Pct != 20 || r.RI != 86400 || r.RF != "afrf" {
		t.Errorf("%+v", r)
	}
	want := []string{"https://x.test/r", "pct=", "ri=", "rf="}
	for _, w := range want {
		if !slices.ContainsFunc(r.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning about %s in %v", w, r.Warnings)
		}
	}
	for _, bad := range []string{"", "v=DMARC2; p=none", "p=none; v=DMARC1", "v=dmarc1; p=none", "spf1"} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	r, _ = ParseRecord("v=DMARC1; p=reject; sp=maybe")
	if !r.SPNPInvalid || !r.PValid {
		t.Errorf("invalid sp=: %+v", r)
	}
}
