package store

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"mailwall/internal/reputation"
)

// TestReputationDecay: evidence is added, decayed by the half-life
// between writes (never forwards in time), clamped at 0 when taken
// back; rows are found by key, by identity and in the top list.
func TestReputationDecay(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		hl := 30 * 24 * time.Hour
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		dk := reputation.Key{Kind: reputation.DKIM, Identity: "bulk.example"}
		nk := reputation.Key{Kind: reputation.Net, Identity: "192.0.2.0/24"}
		steps := []struct {
			d         reputation.Delta
			ham, spam float64 // dk's row after the step, as of its updated_at
		}{
			{reputation.Delta{Key: dk, Spam: 4, At: t0}, 0, 4},
			// A half-life later: 4 halves to 2, plus 1 ham.
			{reputation.Delta{Key: dk, Ham: 1, At: t0.Add(hl)}, 1, 2},
			// A host whose clock is behind: no decay backwards.
			{reputation.Delta{Key: dk, Spam: 1, At: t0}, 1, 3},
			// Feedback taken back: never below 0.
			{reputation.Delta{Key: dk, Ham: -5, At: t0.Add(hl)}, 0, 3},
		}
		for i, st := range steps {
			if err := s.AddReputation(ctx, []reputation.Delta{st.d, {Key: nk, Ham: 1, At: st.d.At}}, hl); err != nil {
				t.Fatal(err)
			}
			got, err := s.ReputationCounts(ctx, []reputation.Key{dk, nk, {Kind: reputation.SPF, Identity: "none.example"}})
			if err != nil {
				t.Fatal(err)
			}
			c := got[dk]
			if math.Abs(c.Ham-st.ham) > 1e-6 || math.Abs(c.Spam-st.spam) > 1e-6 {
				t.Errorf("step %d: ham %g spam %g, want %g %g", i, c.Ham, c.Spam, st.ham, st.spam)
			}
			if !c.FirstSeen.Equal(t0) || !c.Updated.Equal(t0.Add(hl)) && i > 0 {
				t.Errorf("step %d: first seen %s, updated %s", i, c.FirstSeen, c.Updated)
			}
			if len(got) != 2 {
				t.Errorf("step %d: %d rows, want 2 (the unknown SPF domain has none)", i, len(got))
			}
		}
		top, err := s.TopReputation(ctx, "", 10)
		if err != nil || len(top) != 2 || top[0].Key != nk {
			t.Errorf("top: %+v %v, want the network (4 ham) first", top, err)
		}
		top, _ = s.TopReputation(ctx, reputation.DKIM, 10)
		if len(top) != 1 || top[0].Key != dk {
			t.Errorf("top dkim: %+v", top)
		}
		found, err := s.FindReputation(ctx, "BULK.example")
		if err != nil || len(found) != 1 || found[0].Key != dk {
			t.Errorf("find: %+v %v", found, err)
		}
		if n, err := s.PurgeReputation(ctx, t0.Add(hl+time.Second)); err != nil || n != 2 {
			t.Errorf("purge: %d %v, want 2", n, err)
		}
	})
}

// TestCorrespondentsAndQuota: correspondents are counted and found;
// a learning quota admits max messages a day and domain, per class.
func TestCorrespondentsAndQuota(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		if err := s.AddCorrespondents(ctx, map[string]int64{"alice@example.org": 2, "bob@example.net": 1}, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.AddCorrespondents(ctx, map[string]int64{"alice@example.org": 1}, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err := s.KnownCorrespondents(ctx, []string{"alice@example.org", "carol@example.org"})
		if err != nil || !got["alice@example.org"] || got["carol@example.org"] {
			t.Errorf("known: %v %v", got, err)
		}
		var n int64
		if err := s.db.QueryRowContext(ctx, `SELECT messages FROM correspondents WHERE address = $1`, "alice@example.org").Scan(&n); err != nil || n != 3 {
			t.Errorf("alice's messages: %d %v, want 3", n, err)
		}
		if n, _ := s.PurgeCorrespondents(ctx, t0.Add(time.Minute)); n != 1 {
			t.Errorf("purged %d, want bob's row", n)
		}
		for i := range 4 {
			ok, err := s.TakeLearnQuota(ctx, 20000, "spam.example", "junk", 3)
			if err != nil || ok != (i < 3) {
				t.Errorf("quota take %d: %v %v", i, ok, err)
			}
		}
		if ok, _ := s.TakeLearnQuota(ctx, 20000, "spam.example", "ham", 3); !ok {
			t.Error("the other class has a quota of its own")
		}
		if ok, _ := s.TakeLearnQuota(ctx, 20001, "spam.example", "junk", 3); !ok {
			t.Error("the next day starts over")
		}
	})
}

// TestReputationTwoHosts: two hosts on one PostgreSQL database write at
// once; both read the sum, through a Reputation each.
func TestReputationTwoHosts(t *testing.T) {
	a, b := sharedPostgres(t)
	ctx := context.Background()
	cfg := reputation.DefaultConfig()
	cfg.CacheTTL = time.Nanosecond // read the store every time
	ra, rb := reputation.New(a, cfg, nil), reputation.New(b, cfg, nil)
	ids := reputation.Identities{DKIM: []string{"shared.example"}}
	var wg sync.WaitGroup
	for _, r := range []*reputation.Reputation{ra, rb} {
		wg.Go(func() {
			for range 10 {
				r.Add(ids, 0, 1)
				for j := range 50 { // many rows in one batch, as a busy host writes them
					r.Add(reputation.Identities{DKIM: []string{fmt.Sprintf("d%d.example", j)}}, 1, 0)
				}
				if err := r.Flush(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	k := reputation.Key{Kind: reputation.DKIM, Identity: "shared.example"}
	for name, r := range map[string]*reputation.Reputation{"a": ra, "b": rb} {
		c, seen, err := r.Lookup(ctx, []reputation.Key{k})
		if err != nil || !seen[k] || math.Abs(c[k].Spam-20) > 0.01 {
			t.Errorf("host %s sees %+v %v %v, want 20 spam", name, c[k], seen[k], err)
		}
	}
	d7 := reputation.Key{Kind: reputation.DKIM, Identity: "d7.example"}
	if c, _, _ := rb.Lookup(ctx, []reputation.Key{d7}); math.Abs(c[d7].Ham-20) > 0.01 {
		t.Errorf("d7.example: %+v, want 20 ham from both hosts' batches", c[d7])
	}
	if err := rb.Feedback(ctx, ids, false, false); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := ra.Lookup(ctx, []reputation.Key{k}); math.Abs(c[k].Ham-cfg.FeedbackWeight) > 0.01 {
		t.Errorf("host a after host b's feedback: %+v", c[k])
	}
}
