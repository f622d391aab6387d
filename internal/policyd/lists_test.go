package policyd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"mailwall/internal/dnsbl"
	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/lists"
	"mailwall/internal/spf"
)

// memLists is a lists.Source in memory.
type memLists []lists.Entry

func (m memLists) ListsVersion(context.Context) (int64, error)        { return 1, nil }
func (m memLists) ListEntries(context.Context) ([]lists.Entry, error) { return m, nil }

func listCache(t *testing.T, entries ...lists.Entry) *lists.Cache {
	t.Helper()
	c := lists.NewCache(memLists(entries), quiet)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestListsAtRCPT: with greylisting on for every client without a
// verified name, a blocked client or sender is refused in 5.7.1 before
// SPF, an allowed network skips the SPF rejection, the blocklists and
// greylisting, an allowed MAIL FROM skips greylisting only when SPF
// passed for it, and a recipient who wants everything gets it.
func TestListsAtRCPT(t *testing.T) {
	g, err := greylist.New(greylist.Config{}, greylist.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	srv := New(&spf.Checker{Resolver: labResolver(t)}, Options{HideReceiver: true}, 100, quiet)
	srv.SetGreylist(g)
	var observed sync.Map
	srv.ObserveLists = func(list string) {
		n, _ := observed.LoadOrStore(list, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	srv.SetLists(listCache(t,
		lists.Entry{List: lists.Block, Kind: lists.IP, Value: "127.0.0.9"},
		lists.Entry{List: lists.Allow, Kind: lists.IP, Value: "127.0.0.3/32"},
		lists.Entry{List: lists.Block, Kind: lists.Domain, Value: "blocked.test"},
		lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "example.test"},
		lists.Entry{List: lists.Allow, Kind: lists.Rcpt, Value: "postmaster@rcpt.test"},
		lists.Entry{List: lists.Block, Kind: lists.Rcpt, Value: "gone@rcpt.test"},
	))
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c := dial(t, "tcp", ln.Addr().String())
	for _, tc := range []struct{ name, ip, sender, rcpt, want string }{
		{"blocked client", "127.0.0.9", "a@example.test", "r@rcpt.test", "action=550 5.7.1 sender is on this site's block list"},
		{"blocked sender domain, unauthenticated", "127.0.0.2", "x@mx.blocked.test", "r@rcpt.test", "action=550 5.7.1 sender is on this site's block list"},
		// 127.0.0.3 fails SPF for example.test: allowed, not rejected.
		{"allowed client skips the SPF rejection", "127.0.0.3", "a@example.test", "r@rcpt.test", "action=PREPEND X-Comment: SPF skipped for allow-listed client - client-ip=127.0.0.3"},
		{"allowed sender passing SPF is not greylisted", "127.0.0.2", "a@example.test", "r@rcpt.test", "action=PREPEND Received-SPF: Pass (mailfrom)"},
		{"sender not on the list is greylisted", "127.0.0.2", "a@stranger.test", "r@rcpt.test", "action=DEFER_IF_PERMIT 4.7.1"},
		{"recipient who wants everything", "127.0.0.2", "a@stranger.test", "postmaster@rcpt.test", "action=PREPEND Received-SPF: "},
		{"recipient who wants everything, SPF fail", "127.0.0.4", "a@example.test", "postmaster@rcpt.test", "action=DUNNO"},
		{"blocked recipient", "127.0.0.2", "a@example.test", "gone@rcpt.test", "action=550 5.7.1 sender is on this site's block list"},
	} {
		got := c.ask(t, greyRequest(tc.ip, "unknown", tc.sender, tc.rcpt, tc.name, ""))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s, want %s...", tc.name, got, tc.want)
		}
	}
	// allow: the client, the sender twice (once before its recipient was
	// blocked), the recipient twice.
	for list, want := range map[string]int64{"block": 3, "allow": 5} {
		n, _ := observed.Load(list)
		if got, _ := n.(*atomic.Int64); got == nil || got.Load() != want {
			t.Errorf("%s observed %v times, want %d", list, got, want)
		}
	}
}

// TestListsSkipAuthenticated: our own users are not refused for the
// network they roam on (as the blocklists do).
func TestListsSkipAuthenticated(t *testing.T) {
	srv := New(&spf.Checker{Resolver: labResolver(t)}, Options{HideReceiver: true}, 100, quiet)
	srv.SetLists(listCache(t, lists.Entry{List: lists.Block, Kind: lists.IP, Value: "127.0.0.9"}))
	req := Request{"client_address": "127.0.0.9", "helo_name": "roaming.test", "sender": "a@stranger.test"}
	if got := srv.Decide(req); got.Action != Reject {
		t.Fatalf("unauthenticated: %s", got.Line())
	}
	req["sasl_username"] = "alice"
	if got := srv.Decide(req); got.Action != Prepend {
		t.Errorf("authenticated: %s", got.Line())
	}
}

// TestListsSpoofedSenderAtRCPT: an allowed MAIL FROM that fails SPF (a
// spoof) is rejected by SPF as it would be without the entry.
func TestListsSpoofedSenderAtRCPT(t *testing.T) {
	srv := New(&spf.Checker{Resolver: labResolver(t)}, Options{HideReceiver: true}, 100, quiet)
	srv.SetLists(listCache(t, lists.Entry{List: lists.Allow, Kind: lists.Domain, Value: "example.test"}))
	got := srv.Decide(Request{"client_address": "127.0.0.3", "helo_name": "stranger.test", "sender": "a@example.test", "recipient": "r@rcpt.test"})
	if got.Line() != "action=550 5.7.23 Message rejected due to: SPF fail - not authorized." {
		t.Errorf("spoofed allowed sender: %s", got.Line())
	}
}

// TestListsAllowedClientSkipsBlocklists: an allowed network is not
// asked about at the DNS blocklists.
func TestListsAllowedClientSkipsBlocklists(t *testing.T) {
	sites, err := dnsbl.ParseSites("never.asked.test")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(&spf.Checker{Resolver: labResolver(t)}, Options{HideReceiver: true, Blocklists: &Blocklists{Sites: sites}}, 100, quiet)
	asked := 0
	srv.ObserveDNSBL = func(BlocklistCheck) { asked++ }
	srv.SetLists(listCache(t, lists.Entry{List: lists.Allow, Kind: lists.IP, Value: netip.MustParsePrefix("127.0.0.0/30").String()}))
	if got := srv.Decide(Request{"client_address": "127.0.0.2", "helo_name": "x.test", "sender": "a@example.test"}); got.Action != Prepend || asked != 0 {
		t.Errorf("allowed client: %s, blocklists asked %d times", got.Line(), asked)
	}
}

// BenchmarkRequestLists is BenchmarkRequestWarm with 1,000 entries on the
// lists, none matching: the lists are a snapshot in memory, so a request
// costs no store query.
func BenchmarkRequestLists(b *testing.B) {
	var entries []lists.Entry
	for i := range 1000 {
		entries = append(entries, lists.Entry{List: lists.Block, Kind: lists.Domain, Value: fmt.Sprintf("spam%d.example", i)},
			lists.Entry{List: lists.Block, Kind: lists.IP, Value: fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)})
	}
	c := lists.NewCache(memLists(entries), quiet)
	if err := c.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	srv := New(&spf.Checker{Resolver: dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(b)}}, dnsx.CacheOptions{})}, Options{}, 100, quiet)
	srv.SetLists(c)
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	addr := ln.Addr().String()
	var n atomic.Int64
	b.ReportAllocs()
	runRequests(b, addr, func() string {
		return request("127.0.0.2", "mail.example.test", "a@example.test", fmt.Sprint(n.Add(1)))
	}, "action=PREPEND Received-SPF: Pass")
}
