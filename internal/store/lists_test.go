package store

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"mailwall/internal/lists"
)

// TestListEntries adds, updates, lists and removes entries on both
// databases; every change bumps the version the caches poll, and a
// cache over the store matches what was added.
func TestListEntries(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		v0, err := s.ListsVersion(ctx)
		if err != nil || v0 != 0 {
			t.Fatalf("fresh version %d %v", v0, err)
		}
		cache := lists.NewCache(s, nil)
		if err := cache.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		e, err := s.AddListEntry(ctx, lists.Entry{List: lists.Block, Kind: lists.IP, Value: "192.0.2.7", Note: "spammer"})
		if err != nil || e.Value != "192.0.2.7/32" || e.ID == 0 {
			t.Fatalf("add: %+v %v", e, err)
		}
		if _, err := s.AddListEntry(ctx, lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "Partner.Example."}); err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(time.Hour).Truncate(time.Second)
		// The same entry again updates its note and expiry.
		if _, err := s.AddListEntry(ctx, lists.Entry{List: lists.Block, Kind: lists.IP, Value: "192.0.2.7/32", Note: "still", Expires: exp}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddListEntry(ctx, lists.Entry{List: lists.Block, Kind: lists.Sender, Value: "not an address"}); err == nil {
			t.Error("a bad address was stored")
		}
		all, err := s.ListEntries(ctx)
		if err != nil || len(all) != 2 {
			t.Fatalf("entries %+v %v", all, err)
		}
		if all[0].List != lists.Allow || all[0].Value != "partner.example" || all[1].Note != "still" || !all[1].Expires.Equal(exp) {
			t.Errorf("entries %+v", all)
		}
		v1, _ := s.ListsVersion(ctx)
		if v1 != 3 {
			t.Errorf("version after three changes: %d", v1)
		}
		if err := cache.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if d := cache.Set().Check(lists.Query{IP: netip.MustParseAddr("192.0.2.7")}); !d.Blocked() {
			t.Errorf("cache after refresh: %+v", d)
		}
		ok, err := s.RemoveListEntry(ctx, lists.Block, lists.IP, "192.0.2.7")
		if err != nil || !ok {
			t.Fatalf("remove: %v %v", ok, err)
		}
		if ok, _ := s.RemoveListEntry(ctx, lists.Block, lists.IP, "192.0.2.7"); ok {
			t.Error("removed twice")
		}
		if err := cache.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if d := cache.Set().Check(lists.Query{IP: netip.MustParseAddr("192.0.2.7")}); d.Blocked() || cache.Set().Len() != 1 {
			t.Errorf("cache after remove: %+v, %d entries", d, cache.Set().Len())
		}
		if _, err := s.AddListEntry(ctx, lists.Entry{List: lists.Block, Kind: lists.Rcpt, Value: "old@example.test", Expires: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		v2, _ := s.ListsVersion(ctx)
		if n, err := s.PurgeListEntries(ctx, time.Now()); err != nil || n != 1 {
			t.Errorf("purge: %d %v", n, err)
		}
		v3, _ := s.ListsVersion(ctx)
		if n, err := s.PurgeListEntries(ctx, time.Now()); err != nil || n != 0 {
			t.Errorf("second purge: %d %v", n, err)
		}
		if v4, _ := s.ListsVersion(ctx); v3 != v2+1 || v4 != v3 {
			t.Errorf("versions around the purges: %d %d %d", v2, v3, v4)
		}
	})
}

// TestListsSharedPostgres: an entry added through one host's store
// reaches another host's cache on the same PostgreSQL database at its
// next refresh, and a refresh with nothing changed rereads nothing.
func TestListsSharedPostgres(t *testing.T) {
	ctx := context.Background()
	a, b := sharedPostgres(t)
	src := &countingSource{Source: b}
	cache := lists.NewCache(src, slog.New(slog.DiscardHandler))
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddListEntry(ctx, lists.Entry{List: lists.Block, Kind: lists.Domain, Value: "spam.example"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := cache.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := cache.Set().Check(lists.Query{MailFrom: "x@spam.example"}); !d.Blocked() {
		t.Errorf("host b does not see host a's entry: %+v", d)
	}
	if src.reads != 2 {
		t.Errorf("entries read %d times, want 2 (the first load and the one change)", src.reads)
	}
}

// countingSource counts the full reads of the entries.
type countingSource struct {
	lists.Source
	reads int
}

func (c *countingSource) ListEntries(ctx context.Context) ([]lists.Entry, error) {
	c.reads++
	return c.Source.ListEntries(ctx)
}
