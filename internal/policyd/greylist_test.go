package policyd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"mailwall/internal/greylist"
	"mailwall/internal/spf"
)

// greyClock is a settable clock for the greylister.
type greyClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *greyClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *greyClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startGreylisting runs a server with greylisting (MemStore, fake clock)
// and returns its address, the clock and the outcomes observed.
func startGreylisting(t *testing.T, opts Options, cfg greylist.Config) (string, *greyClock, func() []greylist.Outcome) {
	t.Helper()
	clk := &greyClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = clk.now
	g, err := greylist.New(cfg, greylist.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []greylist.Outcome
	opts.ObserveGreylist = func(d greylist.Decision) { mu.Lock(); seen = append(seen, d.Outcome); mu.Unlock() }
	srv := New(&spf.Checker{Resolver: labResolver(t)}, opts, 100, quiet)
	srv.SetGreylist(g)
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String(), clk, func() []greylist.Outcome {
		mu.Lock()
		defer mu.Unlock()
		return append([]greylist.Outcome(nil), seen...)
	}
}

// greyRequest is a request with the attributes greylisting reads.
func greyRequest(ip, clientName, sender, rcpt, instance, more string) string {
	return fmt.Sprintf(`request=smtpd_access_policy
protocol_state=RCPT
helo_name=mail.example.test
sender=%s
recipient=%s
client_address=%s
client_name=%s
reverse_client_name=%s
instance=%s
%s`, sender, rcpt, ip, clientName, clientName, instance, more)
}

const greyDefer = "action=DEFER_IF_PERMIT 4.7.1 Greylisted, see RFC 6647 (no forward-confirmed reverse DNS for 127.0.0.2): try again in "

// TestGreylistAnswers: SPF decides first; a recipient SPF lets through is
// greylisted per triplet when the client has no verified name, and the
// Received-SPF header goes with the first recipient that passes.
func TestGreylistAnswers(t *testing.T) {
	addr, clk, outcomes := startGreylisting(t, Options{HideReceiver: true}, greylist.Config{})
	c := dial(t, "tcp", addr)
	ask := func(name, rcpt, inst, more string) string {
		return c.ask(t, greyRequest("127.0.0.2", name, "a@example.test", rcpt, inst, more))
	}
	if got := ask("unknown", "r1@rcpt.test", "1", ""); got != greyDefer+"300 seconds" {
		t.Fatalf("first attempt: %s", got)
	}
	if got := ask("unknown", "r2@rcpt.test", "1", ""); got != greyDefer+"300 seconds" {
		t.Fatalf("second recipient of the message, its own triplet: %s", got)
	}
	clk.add(100 * time.Second)
	if got := ask("unknown", "r1@rcpt.test", "2", ""); got != greyDefer+"200 seconds" {
		t.Fatalf("early retry: %s", got)
	}
	clk.add(200 * time.Second)
	if got := ask("unknown", "r1@rcpt.test", "3", ""); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass (mailfrom)") {
		t.Fatalf("retry after the delay: %s", got)
	}
	if got := ask("unknown", "r2@rcpt.test", "3", ""); got != "action=DUNNO" {
		t.Fatalf("second recipient passes, header already given: %s", got)
	}
	if got := ask("unknown", "r3@rcpt.test", "3", ""); got != greyDefer+"300 seconds" {
		t.Fatalf("a new recipient in the same message: %s", got)
	}
	want := []greylist.Outcome{greylist.Deferred, greylist.Deferred, greylist.Deferred, greylist.Passed, greylist.Passed, greylist.Deferred}
	if got := outcomes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observed %v, want %v", got, want)
	}

	for _, tc := range []struct{ name, client, clientName, sender, more, want string }{
		{"verified name", "127.0.0.2", "mail.example.test", "a@example.test", "", "action=PREPEND Received-SPF: Pass"},
		{"authenticated", "127.0.0.2", "unknown", "a@example.test", "sasl_username=alice", "action=PREPEND Received-SPF: Pass"},
		{"SPF fail still rejects", "127.0.0.3", "unknown", "a@example.test", "", "action=550 5.7.23"},
	} {
		got := c.ask(t, greyRequest(tc.client, tc.clientName, tc.sender, "new@rcpt.test", tc.name, tc.more))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %s, want %s...", tc.name, got, tc.want)
		}
	}
}

// TestGreylistSkipsExempt: skip_addresses and allow_ips clients are not
// greylisted, as they are not SPF-checked; greylist allow networks too.
func TestGreylistSkipsExempt(t *testing.T) {
	addr, _, _ := startGreylisting(t, Options{SkipAddresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.5/32")},
		AllowIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.6/32")}},
		greylist.Config{AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	c := dial(t, "tcp", addr)
	for _, ip := range []string{"127.0.0.5", "127.0.0.6", "127.0.0.2"} {
		if got := c.ask(t, greyRequest(ip, "unknown", "a@example.test", "r@rcpt.test", ip, "")); !strings.HasPrefix(got, "action=PREPEND") {
			t.Errorf("%s: %s, want no greylisting", ip, got)
		}
	}
}

// TestGreylistTarpit: the deferral comes after the tarpit, and only the
// deferral waits.
func TestGreylistTarpit(t *testing.T) {
	const tarpit = 400 * time.Millisecond
	addr, _, _ := startGreylisting(t, Options{}, greylist.Config{Tarpit: tarpit})
	c := dial(t, "tcp", addr)
	start := time.Now()
	if got := c.ask(t, greyRequest("127.0.0.2", "unknown", "a@example.test", "r@rcpt.test", "1", "")); !strings.HasPrefix(got, "action=DEFER_IF_PERMIT 4.7.1") {
		t.Fatalf("got %s", got)
	}
	if took := time.Since(start); took < tarpit {
		t.Errorf("deferral after %s, want the %s tarpit first", took, tarpit)
	}
	start = time.Now()
	c.ask(t, greyRequest("127.0.0.2", "mail.example.test", "a@example.test", "r@rcpt.test", "2", ""))
	if took := time.Since(start); took >= tarpit {
		t.Errorf("an answer that is no deferral waited %s", took)
	}
}
