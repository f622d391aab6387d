package policyd

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/spf"
	"mailwall/internal/store"
)

// slowBatches is the store with each batch of triplets written 100 ms
// late.
type slowBatches struct{ *store.Store }

func (s slowBatches) SeenTriplets(ctx context.Context, reqs []greylist.TripletAt, tm greylist.Timing) error {
	time.Sleep(100 * time.Millisecond)
	return s.Store.SeenTriplets(ctx, reqs, tm)
}

// TestGreylistWriteBehindShutdown: the policy server answers new
// triplets' deferrals before their rows are written (write-behind, on
// SQLite, its batches slow here), and Shutdown writes every one before
// it returns; a greylister SetGreylist replaces has written its own too.
func TestGreylistWriteBehindShutdown(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "mailwall.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clk := &greyClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	newGrey := func() *greylist.Greylister {
		g, err := greylist.New(greylist.Config{Now: clk.now}, slowBatches{st})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	srv := New(&spf.Checker{Resolver: dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(t)}}, dnsx.CacheOptions{})}, Options{}, 100, quiet)
	srv.SetGreylist(newGrey())
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	c := dial(t, "tcp", ln.Addr().String())
	rcpt := func(i int) string { return fmt.Sprintf("r%d@rcpt.test", i) }
	const n = 300
	for i := range n {
		if i == n/2 {
			srv.SetGreylist(newGrey()) // a reload: the first half written by the old one
		}
		if got := c.ask(t, greyRequest("127.0.0.2", "unknown", "a@example.test", rcpt(i), fmt.Sprint(i), "")); !strings.HasPrefix(got, greyDefer+"300 seconds") {
			t.Fatalf("request %d: %s, want deferred", i, got)
		}
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		tr := greylist.Triplet{Client: "127.0.0.0/24", Sender: "a@example.test", Recipient: rcpt(i)}
		row, _, _, err := st.PeekTripletClient(ctx, tr, "", clk.now(), greylist.DefaultMaxAge)
		if err != nil || !row.Found || row.First != clk.now().Unix() {
			t.Errorf("triplet %d after Shutdown: %+v %v, want written, begun at the deferral", i, row, err)
		}
	}
}
