package greylist_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"mailwall/internal/greylist"
	"mailwall/internal/store"
)

// twoStatements hides the store's SeenTripletClient: the greylister asks
// ClientPasses, then SeenTriplet.
type twoStatements struct{ greylist.Store }

// BenchmarkCheckNewClients: greylisting on SQLite where every request
// comes from a new client (a botnet's spam: the dearest case), each
// client's count and triplet asked in one statement (combined) or two.
func BenchmarkCheckNewClients(b *testing.B) {
	for _, bc := range []struct {
		name string
		wrap func(*store.Store) greylist.Store
	}{
		{"combined", func(s *store.Store) greylist.Store { return s }},
		{"two_statements", func(s *store.Store) greylist.Store { return twoStatements{s} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st, err := store.Open(context.Background(), "sqlite", filepath.Join(b.TempDir(), "mailwall.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			g, err := greylist.New(greylist.Config{}, bc.wrap(st))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				d := g.Check(context.Background(), greylist.Request{IP: ip, ClientName: "unknown", Sender: "a@example.org", Recipient: "b@rcpt.test"})
				if d.Outcome != greylist.Deferred {
					b.Fatalf("%s: %s %v", ip, d.Outcome, d.Err)
				}
			}
		})
	}
}
