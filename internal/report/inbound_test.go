package report

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
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

func TestIngest(t *testing.T) {
	made, msg := madeReportMail(t)
	eachStore(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		now := day.Add(48 * time.Hour)
		rrs, err := IngestMessage(ctx, st, "milter", msg, now)
		if err != nil || len(rrs) != 1 {
			t.Fatalf("ingest: %v %+v", err, rrs)
		}
		rr := rrs[0]
		if rr.Messages != made.Messages || rr.Domain != "bank.test" || rr.ReportID != made.ReportID || rr.Policy != "p=reject sp=quarantine adkim=r aspf=s t=n fo=1" ||
			len(rr.Records) != made.Records || !rr.Begin.Equal(made.Begin) || !rr.End.Equal(made.End) {
			t.Fatalf("ingested %+v\nmade %+v", rr, made)
		}
		// The same report again is recognized.
		if rrs, err := IngestMessage(ctx, st, "milter", msg, now); err != nil || len(rrs) != 0 {
			t.Errorf("duplicate: %v %+v", err, rrs)
		}
		// A malformed report is kept, flagged; nothing crashes.
		var broken bytes.Buffer
		zw := gzip.NewWriter(&broken)
		zw.Write([]byte("<feedback><report_metadata><org_name>x</org_name>"))
		zw.Close()
		bad := (&Sender{From: "a@b.test", Receiver: "b.test"}).message(&store.ReportOut{PolicyDomain: "bank.test", Filename: "b.test!bank.test!1!2.xml.gz", GZ: broken.Bytes()}, "x@bank.test")
		rrs, err = IngestMessage(ctx, st, "milter", bad, now)
		if err == nil || len(rrs) != 1 || rrs[0].Error == "" {
			t.Errorf("malformed: %v %+v", err, rrs)
		}
		if _, err := IngestMessage(ctx, st, "milter", []byte("Subject: hi\r\n\r\nno report here\r\n"), now); !errors.Is(err, feedback.ErrNotReport) {
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
	os.WriteFile(filepath.Join(dir, "new", "1.a.host"), msg, 0o600)
	os.WriteFile(filepath.Join(dir, "new", "2.b.host"), []byte("Content-Type: text/xml\r\n\r\n<feedback><broken"), 0o600)
	os.WriteFile(filepath.Join(dir, "new", "3.c.host"), []byte("Subject: not a report\r\n\r\nhello\r\n"), 0o600)
	res, err := ImportMaildir(context.Background(), st, dir, false, time.Now())
	if err != nil || res.Messages != 3 || res.Reports != 2 || res.Malformed != 1 || len(res.Errors) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "new")); len(left) != 0 {
		t.Errorf("%d messages left in new/", len(left))
	}
	if _, err := os.Stat(filepath.Join(dir, "cur", "1.a.host:2,S")); err != nil {
		t.Errorf("read message not moved to cur/ as seen: %v", err)
	}
	res, _ = ImportMaildir(context.Background(), st, dir, true, time.Now())
	if res.Reports != 0 || res.Duplicates != 2 {
		t.Errorf("second import of cur/: %+v", res)
	}
}
