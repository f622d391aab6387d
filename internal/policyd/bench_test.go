package policyd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/spf"
	"mailwall/internal/store"
)

// BenchmarkRequestWarm: policy requests over TCP (one connection per
// parallel client, several requests each, as Postfix does) with a warm
// DNS cache. Each request has its own instance, so each is checked.
func BenchmarkRequestWarm(b *testing.B) {
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(b)}}, dnsx.CacheOptions{})
	addr := startPolicyd(b, res, Options{})
	var n atomic.Int64
	warm, _ := net.Dial("tcp", addr)
	fmt.Fprintf(warm, "%s\n\n", request("127.0.0.2", "mail.example.test", "a@example.test", "warm"))
	bufio.NewReader(warm).ReadString('\n')
	warm.Close()
	b.ReportAllocs()
	runRequests(b, addr, func() string {
		return request("127.0.0.2", "mail.example.test", "a@example.test", fmt.Sprint(n.Add(1)))
	}, "action=PREPEND Received-SPF: Pass")
}

// runRequests sends requests made by next to the policy server at addr
// in parallel (one connection per parallel client, several requests
// each, as Postfix does) and fails on an answer not starting with want.
func runRequests(b *testing.B, addr string, next func() string, want string) {
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for pb.Next() {
			fmt.Fprintf(c, "%s\n\n", next())
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, want) {
				b.Fatalf("%q %v", line, err)
			}
			r.ReadString('\n')
		}
	})
}

// BenchmarkRequestGreylisted is BenchmarkRequestWarm with greylisting on
// (SQLite store), the bound being within 2x of its requests per
// second. new_triplet: a client with no verified name, each request a new
// recipient, so each reads the client's auto-allow count and inserts a
// triplet (the dearest path: spam from a botnet); passed: the same
// triplet again, passed (a read: it is written once an hour); not_subject:
// a verified static name (no store access).
func BenchmarkRequestGreylisted(b *testing.B) {
	for _, bc := range []struct {
		name, clientName, want string
		newRcpt                bool
	}{
		{"new_triplet", "unknown", "action=DEFER_IF_PERMIT 4.7.1 Greylisted", true},
		{"passed", "unknown", "action=PREPEND Received-SPF: Pass", false},
		{"not_subject", "mail.example.test", "action=PREPEND Received-SPF: Pass", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr, clk := glBenchServer(b)
			req := func(i int64) string {
				r := strings.Replace(request("127.0.0.2", "mail.example.test", "a@example.test", fmt.Sprint(i)), "client_name=unknown", "client_name="+bc.clientName, 1)
				if bc.newRcpt {
					r = strings.Replace(r, "recipient=rcpt@rcpt.test", fmt.Sprintf("recipient=r%d@rcpt.test", i), 1)
				}
				return r
			}
			warm, _ := net.Dial("tcp", addr)
			wr := bufio.NewReader(warm)
			for _, inst := range []int64{-1, -2} { // the passed triplet: deferred, then passed
				fmt.Fprintf(warm, "%s\n\n", req(inst))
				wr.ReadString('\n')
				wr.ReadString('\n')
				clk.add(time.Hour)
			}
			warm.Close()
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			runRequests(b, addr, func() string { return req(n.Add(1)) }, bc.want)
		})
	}
}

// glBenchServer is a policy server with greylisting on an SQLite store,
// on a settable clock.
func glBenchServer(b *testing.B) (string, *greyClock) {
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(b)}}, dnsx.CacheOptions{})
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(b.TempDir(), "mailwall.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	clk := &greyClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	g, err := greylist.New(greylist.Config{Now: clk.now}, st)
	if err != nil {
		b.Fatal(err)
	}
	srv := New(&spf.Checker{Resolver: res}, Options{}, 100, quiet)
	srv.SetGreylist(g)
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String(), clk
}
