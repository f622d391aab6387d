package store

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"mailwall/internal/dmarc"
)

// TestM1DetailsRebuilt: hits and the milter's two headers that the
// row's columns rebuild are written shorter and read back as they were;
// those the columns do not rebuild exactly are written whole, and read
// back as they were too.
func TestM1DetailsRebuilt(t *testing.T) {
	hits := []Hit{{Rule: "link_host_new", Weight: 3, Detail: "www.a.example first seen"}, {Rule: "classify_ham", Weight: -2}}
	for _, c := range []struct {
		name                   string
		verdict, action, stage string
		score                  int
		rules                  []string
		hits                   []Hit
		headers                []Header
		short                  int // items written short: h, V, R
	}{
		{"all rebuilt", "pass", "accept", "content", 1, []string{"link_host_new=3", "classify_ham=-2"}, hits,
			[]Header{{"Authentication-Results", "mx.test; spf=pass"}, {"X-Mailwall-Verdict", "pass (action=accept; stage=content)"}, {"X-Mailwall-Score", "1 (link_host_new=3 classify_ham=-2)"}}, 4},
		{"stage none", "pass", "accept", "content", 0, nil, nil,
			[]Header{{"X-Mailwall-Verdict", "pass (action=accept; stage=none)"}, {"X-Mailwall-Score", "0 (none)"}}, 2},
		{"empty stage", "pass", "accept", "", 0, nil, nil, []Header{{"X-Mailwall-Verdict", "pass (action=accept; stage=)"}}, 1},
		{"empty stage not the row's", "pass", "accept", "content", 0, nil, nil, []Header{{"X-Mailwall-Verdict", "pass (action=accept; stage=)"}}, 0},
		{"other verdict", "fail", "reject", "score", 9, nil, nil,
			[]Header{{"X-Mailwall-Verdict", "pass (action=reject; stage=score)"}, {"X-Mailwall-Score", "8 (none)"}, {"X-Mailwall-Score", "9 (x=9)"}}, 0},
		{"header twice, other order", "tag", "tag", "score", -1, []string{"a=-1"}, []Hit{{Rule: "a", Weight: -1, Detail: "d"}},
			[]Header{{"X-Mailwall-Score", "-1 (a=-1)"}, {"X-Other", "v"}, {"X-Mailwall-Verdict", "tag (action=tag; stage=score)"}, {"X-Mailwall-Score", "-1 (a=-1)"}}, 4},
		{"rules cut (fewer than hits)", "pass", "accept", "", 5, []string{"link_host_new=3"}, hits, nil, 1},
		{"rule spelled otherwise", "pass", "accept", "", 5, []string{"link_host_new=4", "classify_ham=-2"}, hits, nil, 1},
		{"rule with spaces made _", "pass", "accept", "", 1, []string{"a_b=1"}, []Hit{{Rule: "a b", Weight: 1}}, nil, 0},
		{"rule with =", "pass", "accept", "", 1, []string{"a=b=1"}, []Hit{{Rule: "a=b", Weight: 1, Detail: "x"}}, nil, 1},
		{"rule without name", "pass", "accept", "", 1, []string{"=1"}, []Hit{{Rule: "", Weight: 1}}, nil, 1},
		{"an empty rule: Fields would lose it", "pass", "accept", "", 1, []string{"", "a=1"}, []Hit{{Rule: "", Weight: 0}, {Rule: "a", Weight: 1}}, nil, 0},
		{"rule not ASCII", "pass", "accept", "", 1, []string{"a\u2028b=1"}, []Hit{{Rule: "a\u2028b", Weight: 1}}, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Details{Stages: []StageResult{{Stage: "spf", Result: "pass", Reason: "domain a.example"}}, Hits: c.hits, Headers: c.headers}
			text := strings.Join(c.rules, " ")
			enc := d.encode(&detailsRow{mailFrom: "x@a.example", domain: "a.example", ip: "192.0.2.1",
				verdict: c.verdict, action: c.action, stage: c.stage, score: c.score, rules: c.rules, rulesText: text})
			short := 0
			for item := range strings.SplitSeq(enc[len(detailsV3):], string(detailsEnd)) {
				if item != "" && strings.IndexByte("hVR", item[0]) >= 0 {
					short++
				}
			}
			if short != c.short {
				t.Errorf("%d items written short, want %d: %q", short, c.short, enc)
			}
			// As the store reads the row: its rules split at spaces.
			got := decodeDetails(enc, &detailsRow{mailFrom: "x@a.example", domain: "a.example", ip: "192.0.2.1",
				verdict: c.verdict, action: c.action, stage: c.stage, score: c.score, rules: strings.Fields(text), rulesText: text})
			if !reflect.DeepEqual(got, d) {
				t.Errorf("read back\n got %+v\nwant %+v\n(%q)", got, d, enc)
			}
		})
	}
}

// TestM1AuthResultsWords: an Authentication-Results value is written
// with its words as their codes and read back as it was, whatever it
// holds; each of arWords begins with the octet it is listed under.
func TestM1AuthResultsWords(t *testing.T) {
	for c, ws := range arWords {
		for _, w := range ws {
			if word := detailsWords[w-wordBase]; word[0] != byte(c) {
				t.Errorf("word %q listed under %q", word, byte(c))
			}
		}
	}
	for _, c := range []struct {
		value string
		saved int // octets fewer than the value
	}{
		// bench/milter's, as its verdicts have it.
		{"lab.example.test; spf=pass smtp.mailfrom=sender@example.test; dmarc=pass (p=reject dis=none) header.from=example.test; " +
			"iprev=pass policy.iprev=127.0.0.1 (mail.example.test); dkim=pass header.d=example.test header.s=sel header.a=rsa-sha256 header.b=qcMGbimo; arc=none", 128},
		{"mx.test; dkim=fail header.d=a.example header.a=ed25519-sha256; dmarc=fail; spf=none", 5 + 4 + 9 + 6 + 4 + 4 + 4},
		{"", 0},
		{"=", 0},
		{"; ", 0},
		{"x =pass=none=fail; arc; arc=", 4 + 4 + 4 + 4 + 4},
		{"=pas", 0},
		{" header.from=", 12},
		{"a;dkim=pass", 4},
	} {
		d := Details{Headers: []Header{{Name: "Authentication-Results", Value: c.value}}}
		row := &detailsRow{mailFrom: "nobody@nowhere.invalid"}
		enc := d.encode(row)
		if want := len(detailsV3) + 4 + len(c.value) - c.saved; len(enc) != want {
			t.Errorf("%q: written in %d octets, want %d: %q", c.value, len(enc), want, enc)
		}
		if got := decodeDetails(enc, row); !reflect.DeepEqual(got, d) {
			t.Errorf("%q: read back %+v (%q)", c.value, got, enc)
		}
	}
}

// TestM1StagesRebuilt: a stage whose result the row's column holds
// (iprev, spf, arc, dmarc) is written as its letter and reason, and
// read back as it was; others, and those of another result, whole.
func TestM1StagesRebuilt(t *testing.T) {
	row := detailsRow{mailFrom: "x@a.example", domain: "a.example", ip: "192.0.2.1", iprev: "pass", spf: "softfail", arc: "none", dmarc: ""}
	for _, c := range []struct {
		name   string
		stages []StageResult
		short  int
	}{
		{"the row's", []StageResult{{"helo", "pass", ""}, {"iprev", "pass", "name mail.a.example"}, {"spf", "softfail", "domain a.example; matched ~all"},
			{"arc", "none", ""}, {"dmarc", "", "no policy"}}, 4},
		{"other results", []StageResult{{"iprev", "fail", ""}, {"spf", "pass", "domain a.example"}, {"arc", "pass", ""}, {"dmarc", "none", ""}}, 0},
		{"twice, and other stages", []StageResult{{"spf", "softfail", ""}, {"spf", "softfail", "again"}, {"dkim", "pass", "d=a.example s=s"},
			{"Spf", "softfail", ""}, {"", "", ""}}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Details{Stages: c.stages}
			enc := d.encode(&row)
			short := 0
			for item := range strings.SplitSeq(enc[len(detailsV3):], string(detailsEnd)) {
				if item != "" && item[0] == 'T' {
					short++
				}
			}
			if short != c.short {
				t.Errorf("%d stages written short, want %d: %q", short, c.short, enc)
			}
			if got := decodeDetails(enc, &row); !reflect.DeepEqual(got, d) {
				t.Errorf("read back\n got %+v\nwant %+v\n(%q)", got, d, enc)
			}
		})
	}
}

// TestM1PrintableASCII: the eight-at-a-time look answers as the octet at
// a time one, for every pair of octets side by side, at the start, the
// middle and the end of a word and across two, and for lengths 0 to 17.
func TestM1PrintableASCII(t *testing.T) {
	base := []byte("abcdefghijklmnopq")
	for n := 0; n <= len(base); n++ {
		if !printableASCII(string(base[:n])) {
			t.Errorf("%q: not printable", base[:n])
		}
	}
	for _, at := range []int{0, 3, 6, 7, 14, 15} {
		b := append([]byte(nil), base...)
		for x := range 256 {
			for y := range 256 {
				b[at], b[at+1] = byte(x), byte(y)
				if got, want := printableASCII(string(b)), printableSlow(string(b)); got != want {
					t.Fatalf("%q: %v, want %v", b, got, want)
				}
			}
		}
	}
}

// TestM1DMARCRowsReused: in a batch, a DMARC row as the domain's row
// before takes its source_ip and record; each row's values are still
// those it has alone, for rows equal, equal but for nil and empty lists,
// and of another sender or policy.
func TestM1DMARCRowsReused(t *testing.T) {
	rows := b24DMARCRows()
	base := rows[0]
	empty := base
	empty.DKIM, empty.Reasons = []dmarc.DKIMResult{}, []string{}
	nilDKIM := base
	nilDKIM.DKIM = nil
	other := base
	other.SourceIP = netip.MustParseAddr("192.0.2.99")
	policy := base
	policy.Published.P = "none"
	var vs []Verdict
	for i, r := range []dmarc.Row{base, base, empty, empty, nilDKIM, base, other, policy, base, rows[1], rows[1], rows[2], rows[3], rows[3]} {
		vs = append(vs, Verdict{ID: int64(i + 1), At: time.Unix(int64(1_800_000_000+i/3), 0), DMARCRow: &DMARCRow{Row: r, RI: 86400}})
	}
	var (
		args     []any
		policies dmarcPolicies
	)
	for i := range vs {
		args = appendDMARCRowArgs(args, &vs[i], &policies)
	}
	reused := 0
	for i := range vs {
		got, want := args[i*dmarcRowColumns:(i+1)*dmarcRowColumns], dmarcRowArgs(&vs[i])
		if !reflect.DeepEqual(got, want) {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
		// The same text, not only an equal one.
		if i > 0 && unsafe.StringData(got[4].(string)) == unsafe.StringData(args[(i-1)*dmarcRowColumns+4].(string)) {
			reused++
		}
	}
	// base, empty, rows[1] and rows[3] again; base after policy has
	// another policy's values.
	if reused != 4 {
		t.Errorf("%d rows took the record of the row before, want 4", reused)
	}
}
