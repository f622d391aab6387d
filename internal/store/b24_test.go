package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dmarc"
)

// TestB24Details: a verdict's details come back from the store as they
// went in, hostile values bounded, on both databases; rows written as
// JSON (before the compact form) still read; text that is neither
// leaves the details out and the rest of the verdict lists.
func TestB24Details(t *testing.T) {
	full := Details{
		Stages: []StageResult{{Stage: "helo", Result: "pass"}, {Stage: "spf", Result: "fail", Reason: "domain a.test; matched -all"}, {Stage: "", Result: "x", Reason: ""},
			{Stage: "iprev", Result: "pass", Reason: "192.0.2.1 is mail.a.test, news@a.test"}},
		Hits: []Hit{{Rule: "brand_from_domain", Weight: 45, Detail: "looks like bank.test"}, {Rule: "classify_ham", Weight: -7}, {Rule: "r", Weight: 0, Detail: "ünïcödé ✓"}},
		Headers: []Header{
			{Name: "Authentication-Results", Value: "mx.test; spf=pass smtp.mailfrom=a@b.test"},
			{Name: "X-Empty", Value: ""},
			{Name: "X-Mailwall-Score", Value: "3 (a=1 b=2); stage=content; spf=pass; dkim=none dkim=fail; dmarc=pass score reputation classify"},
		},
		Facts: []Fact{{Name: "protocol_state", Value: "RCPT"}, {Name: "list", Value: "block"}},
	}
	hostile := Details{
		Stages:  []StageResult{{Stage: "dmarc\x1e", Result: "fail\x1f", Reason: "a\x1fb\x1ec\x02d\ne"}},
		Hits:    []Hit{{Rule: "x\x1fy", Weight: 3, Detail: "\x1e\x1e"}},
		Headers: []Header{{Name: "X-A\x1f", Value: "v\x1fw"}},
		Facts:   []Fact{{Name: "\x1e", Value: "\x1f"}},
	}
	hostileWant := Details{
		Stages:  []StageResult{{Stage: "dmarc ", Result: "fail ", Reason: "a b c d e"}},
		Hits:    []Hit{{Rule: "x y", Weight: 3, Detail: "  "}},
		Headers: []Header{{Name: "X-A ", Value: "v w"}},
		Facts:   []Fact{{Name: " ", Value: " "}},
	}
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		vs := []Verdict{testVerdict(t0, "a.test", "192.0.2.1", "accept"), testVerdict(t0, "b.test", "192.0.2.2", "reject"), testVerdict(t0, "c.test", "192.0.2.3", "accept")}
		vs[0].Details, vs[1].Details = full, hostile
		vs[2].FromDomain, vs[2].MailFrom, vs[2].ClientIP = "", "", "" // no words of the row to stand for
		vs[2].Details = full
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		for i, want := range []Details{full, hostileWant, full} {
			got, err := s.Verdict(ctx, vs[i].ID)
			if err != nil || got == nil {
				t.Fatalf("verdict %d: %v %v", vs[i].ID, got, err)
			}
			if !reflect.DeepEqual(got.Details, want) {
				t.Errorf("verdict %d details:\n got %+v\nwant %+v", i, got.Details, want)
			}
		}
		// A row of an older version (JSON) and one of no known form.
		old, _ := json.Marshal(full)
		for _, c := range []struct {
			text string
			want Details
		}{{string(old), full}, {"\x09garbage", Details{}}, {"\x02Sa\x1fb", Details{Stages: []StageResult{{Stage: "a", Result: "b"}}}}} {
			if _, err := s.db.ExecContext(ctx, `UPDATE verdicts SET details = $1 WHERE id = $2`, c.text, vs[2].ID); err != nil {
				t.Fatal(err)
			}
			got, err := s.Verdict(ctx, vs[2].ID)
			if err != nil || got == nil {
				t.Fatalf("verdict: %v %v", got, err)
			}
			if !reflect.DeepEqual(got.Details, c.want) || got.Helo != "mail.c.test" {
				t.Errorf("details %q: got %+v, want %+v", c.text, got.Details, c.want)
			}
		}
	})
}

// TestB24DetailsWords: the compact form's words are control characters
// short of its separators, and each stands for less than it takes.
func TestB24DetailsWords(t *testing.T) {
	if last := wordBase + len(detailsWords) - 1; last >= detailsEnd {
		t.Errorf("%d words: the last is %#x, a separator or past them", len(detailsWords), last)
	}
	d := Details{Stages: []StageResult{{Stage: "dmarc", Result: "pass", Reason: "policy domain a.example, p=reject"}}}
	enc := d.encode(&detailsRow{mailFrom: "x@a.example", domain: "a.example"})
	if want := "\x03Sdmarc\x1fpass\x1f\x08\x02, p=reject\x1e"; enc != want {
		t.Errorf("encoded %q, want %q", enc, want)
	}
}

// b24OldRecord is a DMARC row's record as the store wrote it before
// the record form: json.Marshal of the row, Published zero.
func b24OldRecord(t *testing.T, row dmarc.Row) string {
	t.Helper()
	row.Published = dmarc.PublishedPolicy{}
	b, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// b24DMARCRows are rows to write: ordinary, empty, and with what
// encoding/json escapes.
func b24DMARCRows() []dmarc.Row {
	base := testVerdict(time.Unix(0, 0), "bank.test", "192.0.2.1", "reject").DMARCRow.Row
	odd := base
	odd.SourceIP = netip.MustParseAddr("fe80::1%eth0")
	odd.HeaderFrom, odd.EnvelopeFrom, odd.SPFDomain = `a"b\c<d>&e,"EnvelopeTo":""`, "ünï\u2028cödé\x00\x7f", "bad\xffutf8"
	odd.EnvelopeTo, odd.SPFScope = "", ""
	odd.Published = dmarc.PublishedPolicy{Domain: "<x>", P: "quarantine", SP: "none", NP: "reject", Testing: true, PSD: "y", Pct: 100, FailureReportingFO: "1:d\n"}
	odd.DKIM = []dmarc.DKIMResult{}
	odd.Reasons = []string{"sampled_out", "local_policy", ""}
	multi := base
	multi.DKIM = append(multi.DKIM, dmarc.DKIMResult{Domain: "esp.test", Selector: "", Result: "pass"})
	multi.Reasons = []string{}
	multi.Published.Pct = 0
	return []dmarc.Row{base, odd, multi, {}}
}

// TestB24DMARCJSON: the DMARC row columns read back as the rows written
// (Published, which the published column keeps, zero in the record);
// the record is json.Marshal's with its zero fields left out, as the
// migration rewrote the older rows (the same replacements here); and a
// field added to the dmarc types fails here until appendRowJSON writes
// it too.
func TestB24DMARCJSON(t *testing.T) {
	for typ, n := range map[reflect.Type]int{
		reflect.TypeFor[dmarc.Row]():             14,
		reflect.TypeFor[dmarc.PublishedPolicy](): 11,
		reflect.TypeFor[dmarc.DKIMResult]():      3,
	} {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields, appendRowJSON writes %d: write the new ones", typ, typ.NumField(), n)
		}
	}
	patterns := []string{`,"Published":{"Domain":"","P":"","SP":"","NP":"","ADKIM":"","ASPF":"","Testing":false,"PSD":"","Pct":0,"DiscoveryMethod":"","FailureReportingFO":""}`,
		`,"HeaderFrom":""`, `,"EnvelopeFrom":""`, `,"EnvelopeTo":""`, `,"PolicyDomain":""`, `,"Disposition":""`, `,"DKIMAligned":""`, `,"SPFAligned":""`,
		`,"DKIM":null`, `,"SPFDomain":""`, `,"SPFScope":""`, `,"SPFResult":""`, `,"Reasons":null`}
	for i, row := range b24DMARCRows() {
		v := Verdict{DMARCRow: &DMARCRow{Row: row}}
		args := dmarcRowArgs(&v)
		rec, pub := args[4].(string), args[5].(string)
		want := b24OldRecord(t, row)
		for _, p := range patterns {
			want = strings.ReplaceAll(want, p, "")
		}
		if rec != want {
			t.Errorf("row %d record:\n got %s\nwant %s", i, rec, want)
		}
		var gotRow dmarc.Row
		var gotPub dmarc.PublishedPolicy
		if err := json.Unmarshal([]byte(rec), &gotRow); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if err := json.Unmarshal([]byte(pub), &gotPub); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		// As the older form read back (invalid UTF-8 comes back U+FFFD).
		var wantRow dmarc.Row
		var wantPub dmarc.PublishedPolicy
		oldPub, _ := json.Marshal(row.Published)
		if json.Unmarshal([]byte(b24OldRecord(t, row)), &wantRow) != nil || json.Unmarshal(oldPub, &wantPub) != nil {
			t.Fatal("the older form does not read back")
		}
		if !reflect.DeepEqual(gotRow, wantRow) || gotPub != wantPub {
			t.Errorf("row %d read back:\n got %+v %+v\nwant %+v %+v", i, gotRow, gotPub, wantRow, wantPub)
		}
	}
}

// TestB24DMARCMigration: on a database of the schema before the record
// form, the rows not yet reported are rewritten to it (a report groups
// them with the rows written after), the rows reported are left alone.
func TestB24DMARCMigration(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		rows := b24DMARCRows()
		for i, row := range rows {
			for _, report := range []any{nil, int64(7)} {
				if _, err := s.db.ExecContext(ctx, `INSERT INTO dmarc_rows (at, policy_domain, source_ip, record, published, rua, ri, report_id)
					VALUES ($1, 'bank.test', '', $2, '{}', '', -1, $3)`, i, b24OldRecord(t, row), report); err != nil {
					t.Fatal(err)
				}
			}
		}
		// As the schema before: the migration runs at the next Open.
		if _, err := s.db.ExecContext(ctx, `UPDATE meta SET value = $1 WHERE key = 'schema'`, strconv.Itoa(len(migrations))); err != nil {
			t.Fatal(err)
		}
		if err := s.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		for i, row := range rows {
			v := Verdict{DMARCRow: &DMARCRow{Row: row}}
			want := map[bool]string{false: dmarcRowArgs(&v)[4].(string), true: b24OldRecord(t, row)}
			for _, reported := range []bool{false, true} {
				var got string
				if err := s.db.QueryRowContext(ctx, `SELECT record FROM dmarc_rows WHERE at = $1 AND (report_id IS NOT NULL) = $2`, i, reported).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != want[reported] {
					t.Errorf("row %d (reported %v):\n got %s\nwant %s", i, reported, got, want[reported])
				}
			}
		}
	})
}

// TestB24RecorderWritesBounded: the Recorder bounds a verdict once, as
// Record takes it, and the store keeps it so (InsertVerdicts, called
// directly, bounds its own).
func TestB24RecorderWritesBounded(t *testing.T) {
	s, err := Open(context.Background(), "sqlite", t.TempDir()+"/m.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := testVerdict(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), "a.test", "192.0.2.1", "accept")
	v.Helo = strings.Repeat("h", 1000)
	v.Details = Details{Stages: []StageResult{{Stage: "spf", Result: "pass", Reason: strings.Repeat("r\x1e", 1000)}}}
	r := s.NewRecorder(slog.New(slog.DiscardHandler), 10, nil)
	r.Record(v)
	r.Close()
	got, err := s.Verdicts(context.Background(), VerdictFilter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("%d verdicts, %v", len(got), err)
	}
	if len(got[0].Helo) != maxShort || len(got[0].Details.Stages) != 1 || len(got[0].Details.Stages[0].Reason) != maxText ||
		strings.ContainsRune(got[0].Details.Stages[0].Reason, detailsEnd) {
		t.Errorf("not bounded: helo %d octets, details %+v", len(got[0].Helo), got[0].Details)
	}
}

// TestB24FlushSeenChunks: the message counts owed for many domains (more
// than one statement's chunk) are all written, each row's last sighting
// the later of its own and the owed one.
func TestB24FlushSeenChunks(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		day1 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		const n = 150 // chunks of 64, 64, 16, 4 and 2
		for i := range n {
			if _, _, err := s.SeenDomain(ctx, fmt.Sprintf("d%d.test", i), day1); err != nil {
				t.Fatal(err)
			}
		}
		// d0's row was seen later by another host than what is owed.
		if _, err := s.db.ExecContext(ctx, `UPDATE sender_domains SET last_seen = $1 WHERE domain = 'd0.test'`, day1.Add(48*time.Hour).Unix()); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			for h := 1; h <= 2; h++ {
				if _, _, err := s.SeenDomain(ctx, fmt.Sprintf("d%d.test", i), day1.Add(time.Duration(h)*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.FlushSeen(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			var msgs, last int64
			if err := s.db.QueryRowContext(ctx, `SELECT messages, last_seen FROM sender_domains WHERE domain = $1`, fmt.Sprintf("d%d.test", i)).Scan(&msgs, &last); err != nil {
				t.Fatal(err)
			}
			want := day1.Add(2 * time.Hour)
			if i == 0 {
				want = day1.Add(48 * time.Hour)
			}
			if msgs != 3 || last != want.Unix() {
				t.Errorf("d%d.test: %d messages, last seen %v; want 3, %v", i, msgs, time.Unix(last, 0).UTC(), want)
			}
		}
	})
}

// dmarcRowArgs are a verdict's DMARC row as insertDMARCRows takes it,
// made on its own (no policy kept from a row before).
func dmarcRowArgs(v *Verdict) []any {
	var p dmarcPolicies
	return appendDMARCRowArgs(nil, v, &p)
}
