package greylist_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"mailwall/internal/cputime"
	"mailwall/internal/greylist"
	"mailwall/internal/pgtest"
	"mailwall/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// twoStatements hides the store's SeenTripletClient: the greylister asks
// ClientPasses, then SeenTriplet.
type twoStatements struct{ greylist.Store }

// BenchmarkCheckNewClients: greylisting on SQLite where every request
// comes from a new client with a new triplet (a botnet's spam: the
// dearest case), each client's count and triplet asked in one
// statement (combined) or two, or read and written behind in batches
// (write_behind: the time a batch's write takes on the flusher's
// goroutine is counted too, since b.N's last triplets are written by
// the deferred Close; cpu-ns/op is this process's CPU, all goroutines).
// The _pg cases are on PostgreSQL (internal/pgtest, fsync off: a real
// server's commit would cost the upsert a disk flush each, a batch one).
func BenchmarkCheckNewClients(b *testing.B) {
	for _, bc := range []struct {
		name        string
		wrap        func(*store.Store) greylist.Store
		writeBehind bool
		postgres    bool
	}{
		{"combined", func(s *store.Store) greylist.Store { return s }, false, false},
		{"two_statements", func(s *store.Store) greylist.Store { return twoStatements{s} }, false, false},
		// A read, the triplet written with others a few ms later.
		{"write_behind", func(s *store.Store) greylist.Store { return s }, true, false},
		{"combined_pg", func(s *store.Store) greylist.Store { return s }, false, true},
		{"write_behind_pg", func(s *store.Store) greylist.Store { return s }, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			driver, dsn := "sqlite", filepath.Join(b.TempDir(), "mailwall.db")
			if bc.postgres {
				driver, dsn = "postgres", pgtest.DSN(b)
			}
			st, err := store.Open(context.Background(), driver, dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			g, err := greylist.New(greylist.Config{}, bc.wrap(st))
			if err != nil {
				b.Fatal(err)
			}
			if bc.writeBehind {
				g.StartWriteBehind(slog.New(slog.DiscardHandler))
			}
			// A new triplet each time too: a client's triplet is its /24's.
			rcpts := make([]string, 1<<20)
			for i := range rcpts {
				rcpts[i] = fmt.Sprintf("b%d@rcpt.test", i)
			}
			b.ReportAllocs()
			// The process's CPU: with write-behind part of the work is on
			// another goroutine, which ns/op (one goroutine's time) would not show.
			cpu0 := cputime.Process()
			b.ResetTimer()
			defer func() {
				g.Close() // the last batch written, before the store closes
				b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
			}()
			for i := range b.N {
				ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				d := g.Check(context.Background(), greylist.Request{IP: ip, ClientName: "unknown", Sender: "a@example.org", Recipient: rcpts[i%len(rcpts)]})
				if d.Outcome != greylist.Deferred {
					b.Fatalf("%s: %s %v", ip, d.Outcome, d.Err)
				}
			}
		})
	}
}
