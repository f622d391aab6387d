package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"mailwall/internal/dmarc"
)

// TestVerdictFeedback: a verdict's kept features read back as written
// (nil when none), its feedback is set and cleared, a missing verdict
// is nil / false; on both databases.
func TestVerdictFeedback(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		kept := append([]byte("mwf1"), bytes.Repeat([]byte{0xff, 0, 7}, 40)...)
		vs := []Verdict{{At: time.Now(), Node: "mx1", Action: "accept", Features: kept}, {At: time.Now(), Node: "mx1", Action: "reject"}}
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		fb, err := s.VerdictFeedback(ctx, vs[0].ID)
		if err != nil || !bytes.Equal(fb.Features, kept) || fb.Feedback != "" {
			t.Fatalf("features: %+v %v", fb, err)
		}
		if fb, err := s.VerdictFeedback(ctx, vs[1].ID); err != nil || fb.Features != nil {
			t.Errorf("a verdict without features: %+v %v", fb, err)
		}
		for _, f := range []string{"spam", "ham", ""} {
			if ok, err := s.SetVerdictFeedback(ctx, vs[0].ID, f); err != nil || !ok {
				t.Fatalf("set %q: %v %v", f, ok, err)
			}
			fb, _ := s.VerdictFeedback(ctx, vs[0].ID)
			got, _ := s.Verdict(ctx, vs[0].ID)
			if fb.Feedback != f || got.Feedback != f {
				t.Errorf("after setting %q: %q, the verdict says %q", f, fb.Feedback, got.Feedback)
			}
		}
		if fb, err := s.VerdictFeedback(ctx, 999); err != nil || fb != nil {
			t.Errorf("missing verdict: %+v %v", fb, err)
		}
		if ok, err := s.SetVerdictFeedback(ctx, 999, "spam"); err != nil || ok {
			t.Errorf("feedback on a missing verdict: %v %v", ok, err)
		}
	})
}

// TestRetryDelivery: only failed deliveries are listed and can be put
// back, due at once with no attempts; a second retry finds it pending.
func TestRetryDelivery(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Second)
		r := &ReportOut{PolicyDomain: "bank.test", Begin: now.Add(-48 * time.Hour), End: now.Add(-24 * time.Hour), ReportID: "r1", Filename: "f", Created: now, GZ: []byte{1}}
		if _, err := s.SaveReport(ctx, r, []dmarc.URI{{URI: "mailto:a@bank.test"}, {URI: "mailto:b@bank.test"}, {URI: "mailto:c@bank.test"}}); err != nil {
			t.Fatal(err)
		}
		ds, err := s.DueDeliveries(ctx, time.Time{})
		if err != nil || len(ds) != 3 {
			t.Fatalf("%+v %v", ds, err)
		}
		for i, state := range []string{Failed, Dropped, Sent} {
			d := ds[i]
			d.State, d.LastError, d.NextTry = state, "550 no", now.Add(time.Hour)
			s.ClaimDelivery(ctx, d.ID)
			if err := s.FinishDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		failed, err := s.FailedDeliveries(ctx, 0)
		if err != nil || len(failed) != 1 || failed[0].ID != ds[0].ID || failed[0].Attempts != 1 || failed[0].PolicyDomain != "bank.test" ||
			!failed[0].Begin.Equal(r.Begin) || failed[0].LastError != "550 no" {
			t.Fatalf("failed: %+v %v", failed, err)
		}
		for _, d := range ds[1:] {
			if ok, err := s.RetryDelivery(ctx, d.ID, now); err != nil || ok {
				t.Errorf("retry of a %s delivery: %v %v", d.State, ok, err)
			}
		}
		if ok, err := s.RetryDelivery(ctx, ds[0].ID, now); err != nil || !ok {
			t.Fatalf("retry: %v %v", ok, err)
		}
		due, err := s.DueDeliveries(ctx, now)
		if err != nil || len(due) != 1 || due[0].ID != ds[0].ID || due[0].Attempts != 0 || due[0].LastError != "" || due[0].State != Pending {
			t.Errorf("due after the retry: %+v %v", due, err)
		}
		if ok, _ := s.RetryDelivery(ctx, ds[0].ID, now); ok {
			t.Error("a pending delivery retried again")
		}
		if failed, _ := s.FailedDeliveries(ctx, 0); len(failed) != 0 {
			t.Errorf("still failed: %+v", failed)
		}
	})
}
