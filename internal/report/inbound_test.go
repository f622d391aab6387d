package report

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/feedback"
	"mailwall/internal/store"
)

// madeReportMail makes a day's reports on a scratch store and returns the
// bank.test report as its mail message: the receiving side of our own
// sending.
func madeReportMail(t *testing.T) (*store.ReportOut, []byte) {
	t.Helper()
	src, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	vs, _ := aDay()
	for _, r := range generate(t, src, vs) {
		if r.PolicyDomain == "bank.test" {
			s := &Sender{From: "dmarc@receiver.test", Receiver: "mx.receiver.test"}
			return r, s.message(r, "dmarc@bank.test")
		}
	}
	t.Fatal("no bank.test report")
	return nil, nil
}

// passed is the Auth of a report message from receiver.test that passed
// DMARC.
var passed = VerdictAuth("pass", "receiver.test")

func TestIngest(t *testing.T) {
	made, msg := madeReportMail(t)
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := day.Add(48 * time.Hour)
		in := &Inbound{Store: st, Domains: []string{"bank.test"}}
		rrs, err := in.IngestMessage(ctx, "milter", msg, passed, now)
		if err != nil || len(rrs) != 1 {
			t.Fatalf("ingest: %v %+v", err, rrs)
		}
		rr := rrs[0]
		if rr.Messages != made.Messages || rr.Domain != "bank.test" || rr.ReportID != made.ReportID || rr.Policy != "p=reject sp=quarantine adkim=r aspf=s t=n fo=1" ||
			len(rr.Records) != made.Records || !rr.Begin.Equal(made.Begin) || !rr.End.Equal(made.End) {
			t.Fatalf("ingested %+v\nmade %+v", rr, made)
		}
		// The same report again is recognized.
		if rrs, err := in.IngestMessage(ctx, "milter", msg, passed, now); err != nil || len(rrs) != 0 {
			t.Errorf("duplicate: %v %+v", err, rrs)
		}
		// A malformed report is kept, flagged; nothing crashes.
		var broken bytes.Buffer
		zw := gzip.NewWriter(&broken)
		zw.Write([]byte("<feedback><report_metadata><org_name>x</org_name>"))
		zw.Close()
		bad := (&Sender{From: "a@b.test", Receiver: "b.test"}).message(&store.ReportOut{PolicyDomain: "bank.test", Filename: "b.test!bank.test!1!2.xml.gz", GZ: broken.Bytes()}, "x@bank.test")
		rrs, err = in.IngestMessage(ctx, "milter", bad, passed, now)
		if err == nil || len(rrs) != 1 || rrs[0].Error == "" {
			t.Errorf("malformed: %v %+v", err, rrs)
		}
		if _, err := in.IngestMessage(ctx, "milter", []byte("Subject: hi\r\n\r\nno report here\r\n"), passed, now); !errors.Is(err, feedback.ErrNotReport) {
			t.Errorf("message without a report: %v", err)
		}
		list, _ := st.ReceivedReports(ctx, "", 0)
		if len(list) != 2 {
			t.Fatalf("%d stored", len(list))
		}
		// The domain's picture adds up to what the report said.
		pic, err := st.Picture(ctx, "bank.test", day.Add(-24*time.Hour))
		if err != nil || pic.Reports != 1 || pic.Messages != made.Messages || len(pic.Sources) != 5 {
			t.Fatalf("picture: %v %+v", err, pic)
		}
		if s := pic.Sources[0]; s.SourceIP != "192.0.2.10" || s.Messages != 42 || s.Passed != 42 || s.SPFAligned != 42 || s.Reporters != 1 {
			t.Errorf("first source %+v", s)
		}
		for _, s := range pic.Sources {
			if s.SourceIP == "203.0.113.66" && (s.Messages != 12 || s.Passed != 0) {
				t.Errorf("spoofing source %+v", s)
			}
		}
	})
}

func TestImportMaildir(t *testing.T) {
	_, msg := madeReportMail(t)
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "new", "1.a.host"), append([]byte(ourPass), msg...), 0o600)
	os.WriteFile(filepath.Join(dir, "new", "2.b.host"), []byte("Content-Type: text/xml\r\n\r\n<feedback><broken"), 0o600)
	os.WriteFile(filepath.Join(dir, "new", "3.c.host"), []byte("Subject: not a report\r\n\r\nhello\r\n"), 0o600)
	in := &Inbound{Store: st, AuthServID: "mx.our.test"}
	res, err := in.ImportMaildir(context.Background(), dir, false, time.Now())
	if err != nil || res.Messages != 3 || res.Reports != 2 || res.Malformed != 1 || res.Unauthenticated != 1 || len(res.Errors) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if rs, _ := st.ReceivedReports(context.Background(), "bank.test", 0); len(rs) != 1 || !rs[0].Authenticated || rs[0].Reporter != "receiver.test" {
		t.Errorf("the report our milter passed: %+v", rs)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "new")); len(left) != 0 {
		t.Errorf("%d messages left in new/", len(left))
	}
	if _, err := os.Stat(filepath.Join(dir, "cur", "1.a.host:2,S")); err != nil {
		t.Errorf("read message not moved to cur/ as seen: %v", err)
	}
	res, _ = in.ImportMaildir(context.Background(), dir, true, time.Now())
	if res.Reports != 0 || res.Duplicates != 2 {
		t.Errorf("second import of cur/: %+v", res)
	}
}

// ourPass is the Authentication-Results our milter adds to a report
// message from receiver.test that passed DMARC, above a forged one.
const ourPass = "Authentication-Results: mx.our.test;\r\n\tspf=pass smtp.mailfrom=receiver.test;\r\n\tdmarc=pass (p=reject dis=none) header.from=receiver.test\r\n"

func TestMessageAuth(t *testing.T) {
	from := "From: DMARC <dmarc@Receiver.test>\r\n"
	for name, c := range map[string]struct {
		msg  string
		pass bool
		why  string
	}{
		"ours, pass":          {ourPass + from, true, "dmarc=pass header.from=receiver.test"},
		"ours first":          {ourPass + "Authentication-Results: mx.our.test; dmarc=fail header.from=receiver.test\r\n" + from, true, "dmarc=pass"},
		"ours, fail":          {"Authentication-Results: mx.our.test; dmarc=fail header.from=receiver.test\r\n" + from, false, "dmarc=fail"},
		"ours, none":          {"Authentication-Results: MX.our.test; dmarc=none header.from=receiver.test\r\n" + from, false, "dmarc=none"},
		"another's pass":      {"Authentication-Results: mx.evil.test; dmarc=pass header.from=receiver.test\r\n" + from, false, "no Authentication-Results of mx.our.test"},
		"other From":          {ourPass + "From: dmarc@google.com\r\n", false, "dmarc=pass"},
		"two From":            {ourPass + from + from, false, "2 From fields"},
		"no From":             {ourPass, false, "0 From fields"},
		"no dmarc":            {"Authentication-Results: mx.our.test; spf=pass smtp.mailfrom=receiver.test\r\n" + from, false, "no dmarc result"},
		"no header end":       {ourPass + from + "X: " + strings.Repeat("a", 300<<10), false, "no header section"},
		"none at all":         {from, false, "no Authentication-Results"},
		"forged without ours": {"Authentication-Results: mx.our.test.evil.test; dmarc=pass header.from=receiver.test\r\n" + from, false, "no Authentication-Results"},
	} {
		msg := c.msg
		if !strings.Contains(name, "no header end") {
			msg += "Subject: report\r\n\r\nbody\r\n"
		}
		a := MessageAuth([]byte(msg), "mx.our.test")
		if a.Pass != c.pass || !strings.Contains(a.Why, c.why) {
			t.Errorf("%s: %+v, want pass %v and %q", name, a, c.pass, c.why)
		}
	}
}

// reportMessage wraps a report document (gzipped) in a message from
// receiver.test.
func reportMessage(domain, id string, gz []byte) []byte {
	s := &Sender{From: "dmarc@receiver.test", Receiver: "mx.receiver.test"}
	return s.message(&store.ReportOut{ReportID: id, PolicyDomain: domain, Filename: "receiver.test!" + domain + "!1!2.xml.gz", GZ: gz}, "dmarc@"+domain)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// oneReport is a readable report about domain with one record.
func oneReport(domain, id string, count string) []byte {
	return gzipped([]byte(`<feedback><report_metadata><org_name>Google Inc.</org_name><email>noreply@google.com</email><report_id>` + id + `</report_id>
<date_range><begin>1763596800</begin><end>1763683199</end></date_range></report_metadata>
<policy_published><domain>` + domain + `</domain><p>none</p></policy_published>
<record><row><source_ip>203.0.113.66</source_ip><count>` + count + `</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
<identifiers><header_from>` + domain + `</header_from></identifiers></record></feedback>`))
}

// TestIngestBelief is issue 23 item 6: a forged report ("Google Inc.:
// 1,000,000 messages from 203.0.113.66, 100% aligned") from a sender
// without SPF, DKIM or PTR was stored and counted; reports about
// anyone's domains were taken; counts of 2^63-1 broke the domain page.
func TestIngestBelief(t *testing.T) {
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := day.Add(48 * time.Hour)
		in := &Inbound{Store: st, Domains: []string{"bank.test"}, PerReporterPerDay: 3}
		since := time.Unix(0, 0)

		forged := VerdictAuth("none", "google.com")
		rrs, err := in.IngestMessage(ctx, "milter", reportMessage("bank.test", "forged", oneReport("bank.test", "forged", "1000000")), forged, now)
		if err != nil || len(rrs) != 1 || rrs[0].Authenticated || rrs[0].Auth != "dmarc=none header.from=google.com" {
			t.Fatalf("forged report: %v %+v", err, rrs)
		}
		pic, err := st.Picture(ctx, "bank.test", since)
		if err != nil || pic.Reports != 0 || pic.Messages != 0 || len(pic.Sources) != 0 || pic.Unauthenticated != 1 {
			t.Errorf("the forged report is counted: %v %+v", err, pic)
		}

		// Authenticated, below one of our domains: counted.
		if _, err := in.IngestMessage(ctx, "milter", reportMessage("news.bank.test", "sub", oneReport("news.bank.test", "sub", "5")), passed, now); err != nil {
			t.Fatal(err)
		}
		if pic, _ := st.Picture(ctx, "news.bank.test", since); pic.Reports != 1 || pic.Messages != 5 {
			t.Errorf("subdomain: %+v", pic)
		}

		// Not one of ours: not stored.
		if _, err := in.IngestMessage(ctx, "milter", reportMessage("other.test", "o", oneReport("other.test", "o", "5")), passed, now); !errors.Is(err, ErrRefused) {
			t.Errorf("report about other.test: %v", err)
		}
		if rs, _ := st.ReceivedReports(ctx, "other.test", 0); len(rs) != 0 {
			t.Errorf("report about other.test stored")
		}

		// Counts of 2^63-1: flagged, not counted; the picture still adds up.
		for _, id := range []string{"max1", "max2"} {
			rrs, err := in.IngestMessage(ctx, "milter", reportMessage("bank.test", id, oneReport("bank.test", id, "9223372036854775807")), passed, now)
			if err == nil || len(rrs) != 1 || !strings.Contains(rrs[0].Error, "count 9223372036854775807 not in") || rrs[0].Messages != feedback.MaxCount {
				t.Errorf("count 2^63-1: %v %+v", err, rrs)
			}
		}
		if pic, err := st.Picture(ctx, "bank.test", since); err != nil || pic.Messages != 0 {
			t.Errorf("picture after counts of 2^63-1: %v %+v", err, pic)
		}

		// receiver.test has sent 3 today (one refused before storing):
		// the fourth is refused; unauthenticated senders share one
		// allowance, whatever From they use.
		if _, err := in.IngestMessage(ctx, "milter", reportMessage("bank.test", "r4", oneReport("bank.test", "r4", "1")), passed, now); !errors.Is(err, ErrRefused) {
			t.Errorf("fourth report of the day: %v", err)
		}
		// Nor from a subdomain: the allowance is the organization's.
		if _, err := in.IngestMessage(ctx, "milter", reportMessage("bank.test", "r4", oneReport("bank.test", "r4", "1")), VerdictAuth("pass", "x1.receiver.test"), now); !errors.Is(err, ErrRefused) {
			t.Errorf("fourth report of the day, from a subdomain: %v", err)
		}
		if _, err := in.IngestMessage(ctx, "milter", reportMessage("bank.test", "r5", oneReport("bank.test", "r5", "1")), passed, now.Add(25*time.Hour)); err != nil {
			t.Errorf("next day: %v", err)
		}
		for i := range 3 {
			_, err := in.IngestMessage(ctx, "milter", reportMessage("bank.test", fmt.Sprint("u", i), oneReport("bank.test", fmt.Sprint("u", i), "1")),
				VerdictAuth("fail", fmt.Sprintf("d%d.test", i)), now)
			if (i < 2) != (err == nil) {
				t.Errorf("unauthenticated report %d: %v", i, err)
			}
		}
	})
}

// TestIngestBombs: issue 23 item 4's reports through IngestMessage: the
// nested bomb and 205,000 records are stored flagged, with the reason and
// without records; a stranger's is not kept raw.
func TestIngestBombs(t *testing.T) {
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in := &Inbound{Store: st, Domains: []string{"bank.test"}}
	var nested bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&nested, gzip.BestCompression)
	zw.Write([]byte("<feedback><report_metadata><org_name>x</org_name></report_metadata><policy_published><domain>bank.test</domain></policy_published>"))
	for range 2400 {
		zw.Write([]byte(strings.Repeat("<a>", 4000)))
	}
	zw.Close()
	head, _, _ := strings.Cut(string(feedbackOf(t, oneReport("bank.test", "big", "1"))), "<record>")
	var many bytes.Buffer
	zw = gzip.NewWriter(&many)
	zw.Write([]byte(head))
	for i := range 205_000 {
		fmt.Fprintf(zw, "<record><row><source_ip>10.%d.%d.%d</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>bank.test</header_from></identifiers></record>\n", i>>16&255, i>>8&255, i&255)
	}
	zw.Write([]byte("</feedback>"))
	zw.Close()
	for name, c := range map[string]struct {
		gz   []byte
		auth Auth
		want string
	}{
		"nested":  {nested.Bytes(), VerdictAuth("none", "evil.test"), "nested more than 32"},
		"records": {many.Bytes(), passed, "more than 20000 records"},
	} {
		start := time.Now()
		rrs, err := in.IngestMessage(context.Background(), "milter", reportMessage("bank.test", name, c.gz), c.auth, day)
		if !errors.Is(err, feedback.ErrLimit) || len(rrs) != 1 || !strings.Contains(rrs[0].Error, c.want) || len(rrs[0].Records) != 0 {
			t.Errorf("%s: %v %+v", name, err, rrs)
		}
		t.Logf("%s: %d octets of gzip refused in %s", name, len(c.gz), time.Since(start))
	}
}

func feedbackOf(t *testing.T, gz []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	return b
}
