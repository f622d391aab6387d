package store

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"
)

// TestPictureCounts is issue 23 item 6: two reports with a count of
// 2^63-1 made the domain page answer 503 (SUM overflowed) until retention
// removed them; unauthenticated reports were counted like the others.
func TestPictureCounts(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
		save := func(i int, authed bool, count int64) {
			t.Helper()
			r := &ReceivedReport{ReceivedAt: at, Source: "milter", Filename: "r.xml", OrgName: "Google Inc.", ReportID: fmt.Sprint(i), Domain: "our.test",
				Begin: at.Add(-24 * time.Hour), End: at, Messages: count, Authenticated: authed, Auth: "dmarc=pass", Reporter: "google.com",
				Records: []ReceivedRecord{{SourceIP: "203.0.113.66", Count: count, Disposition: "none", DKIMAligned: "pass", SPFAligned: "pass", HeaderFrom: "our.test"}}}
			if err := s.SaveReceived(ctx, r, fmt.Appendf(nil, "report %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		save(1, true, math.MaxInt64)
		save(2, true, math.MaxInt64)
		save(3, false, 1_000_000)
		p, err := s.Picture(ctx, "our.test", at.Add(-48*time.Hour))
		if err != nil {
			t.Fatalf("picture: %v", err)
		}
		if p.Reports != 2 || p.Messages != 2*MaxReceivedMessages || p.Unauthenticated != 1 || len(p.Sources) != 1 || p.Sources[0].Messages != 2*MaxReceivedCount {
			t.Errorf("picture %+v", p)
		}
		rs, err := s.ReceivedReports(ctx, "our.test", 0)
		if err != nil || len(rs) != 3 {
			t.Fatalf("%v %d", err, len(rs))
		}
		for _, r := range rs {
			if r.Authenticated != (r.ReportID != "3") || r.Reporter != "google.com" || r.Auth != "dmarc=pass" || r.Messages > MaxReceivedMessages {
				t.Errorf("stored %+v", r)
			}
		}
		if n, err := s.ReceivedFrom(ctx, "Google.com", at.Add(-time.Hour)); err != nil || n != 3 {
			t.Errorf("from google.com: %d %v", n, err)
		}
		if n, err := s.ReceivedFrom(ctx, "google.com", at.Add(time.Hour)); err != nil || n != 0 {
			t.Errorf("from google.com later: %d %v", n, err)
		}
	})
}

// TestReceivedRaw: a malformed report is kept raw for a person to look
// at only when authenticated and at most MaxKeptRaw octets: anyone can
// mail unauthenticated ones by the hundred.
func TestReceivedRaw(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for i, c := range []struct {
			authed bool
			size   int
			kept   bool
		}{{true, 100, true}, {false, 100, false}, {true, MaxKeptRaw + 1, false}} {
			raw := make([]byte, c.size)
			raw[0] = byte(i)
			r := &ReceivedReport{ReceivedAt: time.Now(), Error: "feedback: broken", Authenticated: c.authed}
			if err := s.SaveReceived(ctx, r, raw); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(LENGTH(raw), 0) FROM reports_in WHERE id = $1`, r.ID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if (n == c.size) != c.kept || (n != 0 && n != c.size) {
				t.Errorf("%+v: %d octets kept", c, n)
			}
		}
	})
}
