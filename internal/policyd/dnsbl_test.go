package policyd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mailwall/internal/dnsbl"
	"mailwall/internal/dnsx"
	"mailwall/internal/greylist"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
	"mailwall/internal/spf"
)

// blZones are the lab's zones (SPF for example.test) and the lists the
// tests ask: 127.0.0.2 and 127.0.0.3 listed in bl.example.test (and in
// a keyed zone), 127.0.0.2 allow-listed in wl.example.test.
func blZones(t testing.TB) []*labdns.Zone {
	return append(labtest.LabZones(t),
		labtest.Zone(t, "bl.example.test",
			"2.0.0.127 A 127.0.0.2", "2.0.0.127 TXT \"listed for spam\nreally\"",
			"3.0.0.127 A 127.0.0.2",
			"4.0.0.127 A 127.0.0.10"),
		labtest.Zone(t, "secretkey.dq.example.test", "2.0.0.127 A 127.0.0.2"),
		labtest.Zone(t, "wl.example.test", "2.0.0.127 A 127.0.10.2"),
		labtest.Zone(t, "refusing.example.test", "2.0.0.127 A 127.255.255.254"),
	)
}

// slowZones answers nothing under slow.example.test until the query's
// context ends: a list that times out.
type slowZones struct{ dnsx.Resolver }

func (s slowZones) Query(ctx context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	if strings.HasSuffix(strings.TrimSuffix(name, "."), ".slow.example.test") {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Resolver.Query(ctx, name, qtype)
}

// blSender is a sender whose SPF passes for ip in the lab zones.
func blSender(ip string) string {
	switch ip {
	case "127.0.0.4":
		return "a@split.example.test"
	case "127.0.0.5":
		return "a@amozonjp-update.test"
	}
	return "a@example.test"
}

// blRequest is greyRequest with HELO and sender whose SPF passes for ip.
func blRequest(ip, clientName, rcpt, instance, more string) string {
	sender := blSender(ip)
	_, domain, _ := strings.Cut(sender, "@")
	return strings.Replace(greyRequest(ip, clientName, sender, rcpt, instance, more), "helo_name=mail.example.test", "helo_name="+domain, 1)
}

func blSites(t testing.TB, list string) []dnsbl.Site {
	t.Helper()
	s, err := dnsbl.ParseSites(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blServer runs a policy server with blocklists over the lab zones and
// returns its address and the checks observed.
func blServer(t *testing.T, b *Blocklists, g *greylist.Greylister) (string, func() []BlocklistCheck) {
	t.Helper()
	srv := labtest.Serve(t, blZones(t)...)
	res := slowZones{dnsx.NewCache(&dnsx.Client{Servers: []string{srv.Addr()}, Timeout: time.Second, Attempts: 1}, dnsx.CacheOptions{})}
	s := New(&spf.Checker{Resolver: res}, Options{HideReceiver: true, Blocklists: b}, 100, quiet)
	var mu sync.Mutex
	var seen []BlocklistCheck
	s.ObserveDNSBL = func(c BlocklistCheck) { mu.Lock(); seen = append(seen, c); mu.Unlock() }
	s.SetGreylist(g)
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return ln.Addr().String(), func() []BlocklistCheck {
		mu.Lock()
		defer mu.Unlock()
		return append([]BlocklistCheck(nil), seen...)
	}
}

// TestBlocklistAnswers: a listed client is refused at RCPT in
// reject_rbl_client's words before SPF is asked (127.0.0.3 fails SPF, yet
// the reply is the blocklist's), for every recipient of the message; an
// unlisted one gets its SPF answer; a keyed zone is shown by its public
// name; defer and none; SASL clients are not asked about.
func TestBlocklistAnswers(t *testing.T) {
	const listed = "action=554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using bl.example.test"
	for _, tc := range []struct {
		name  string
		b     Blocklists
		ip    string
		more  string
		want  string // prefix of the answer
		zones map[string]string
		act   string
	}{
		{"listed", Blocklists{Sites: blSites(t, "bl.example.test=127.0.0.[2..9]")}, "127.0.0.2", "", listed,
			map[string]string{"bl.example.test": "listed"}, "reject"},
		{"listed, SPF fail", Blocklists{Sites: blSites(t, "bl.example.test=127.0.0.[2..9]")}, "127.0.0.3", "",
			"action=554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using bl.example.test", nil, "reject"},
		{"filtered out", Blocklists{Sites: blSites(t, "bl.example.test=127.0.0.[2..9]")}, "127.0.0.4", "", "action=PREPEND Received-SPF: Pass",
			map[string]string{"bl.example.test": "not_listed"}, "none"},
		{"unlisted", Blocklists{Sites: blSites(t, "bl.example.test")}, "127.0.0.5", "", "action=PREPEND Received-SPF: Pass", map[string]string{"bl.example.test": "not_listed"}, "none"},
		{"below threshold", Blocklists{Sites: blSites(t, "bl.example.test*2"), RejectThreshold: 3}, "127.0.0.2", "", "action=PREPEND Received-SPF: Pass", nil, "none"},
		{"sum of two", Blocklists{Sites: blSites(t, "bl.example.test*2, secretkey.dq.example.test"), RejectThreshold: 3}, "127.0.0.2", "", "action=554 5.7.1", nil, "reject"},
		{"allow list outweighs", Blocklists{Sites: blSites(t, "bl.example.test*2, wl.example.test*-2")}, "127.0.0.2", "", "action=PREPEND Received-SPF: Pass", nil, "none"},
		{"keyed zone named", Blocklists{Sites: blSites(t, "secretkey.dq.example.test"), ReplyNames: map[string]string{"secretkey.dq.example.test": "dq.example.test"}},
			"127.0.0.2", "", "action=554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using dq.example.test", nil, "reject"},
		{"reason", Blocklists{Sites: blSites(t, "bl.example.test"), Reply: "{ip} in {zone}: {reason}"}, "127.0.0.2", "",
			"action=554 5.7.1 127.0.0.2 in bl.example.test: listed for spam really", nil, "reject"},
		{"defer", Blocklists{Sites: blSites(t, "bl.example.test"), Action: BlocklistDefer}, "127.0.0.2", "",
			"action=DEFER_IF_PERMIT 4.7.1 Service unavailable; Client host [127.0.0.2] blocked", nil, "defer"},
		{"score only", Blocklists{Sites: blSites(t, "bl.example.test"), Action: BlocklistNone}, "127.0.0.2", "", "action=PREPEND Received-SPF: Pass", nil, "scored"},
		{"refusal is no listing", Blocklists{Sites: blSites(t, "refusing.example.test")}, "127.0.0.2", "", "action=PREPEND Received-SPF: Pass",
			map[string]string{"refusing.example.test": "refused"}, "none"},
		{"authenticated", Blocklists{Sites: blSites(t, "bl.example.test")}, "127.0.0.2", "sasl_username=alice", "action=PREPEND Received-SPF: Pass", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			addr, observed := blServer(t, &b, nil)
			c := dial(t, "tcp", addr)
			for _, rcpt := range []string{"r1@rcpt.test", "r2@rcpt.test"} {
				got := c.ask(t, blRequest(tc.ip, "unknown", rcpt, "1", tc.more))
				if rcpt == "r2@rcpt.test" && strings.HasPrefix(tc.want, "action=PREPEND") {
					continue // the header goes once
				}
				if !strings.HasPrefix(got, tc.want) {
					t.Errorf("%s: %s, want %s...", rcpt, got, tc.want)
				}
			}
			obs := observed()
			if tc.act == "" {
				if len(obs) != 0 {
					t.Errorf("observed %v, want no check", obs)
				}
				return
			}
			if len(obs) != 1 {
				t.Fatalf("observed %d checks, want one a message", len(obs))
			}
			if obs[0].Action != tc.act {
				t.Errorf("action %q, want %q", obs[0].Action, tc.act)
			}
			for z, want := range tc.zones {
				if obs[0].Zones[z] != want {
					t.Errorf("zone %s: %q, want %q", z, obs[0].Zones[z], want)
				}
			}
		})
	}
}

// TestBlocklistTimeout: a list that never answers costs at most the
// budget and never refuses; the other list's listing still counts.
func TestBlocklistTimeout(t *testing.T) {
	const budget = 300 * time.Millisecond
	addr, observed := blServer(t, &Blocklists{Sites: blSites(t, "slow.example.test"), Timeout: budget, Budget: budget}, nil)
	c := dial(t, "tcp", addr)
	start := time.Now()
	got := c.ask(t, blRequest("127.0.0.2", "unknown", "r@rcpt.test", "1", ""))
	took := time.Since(start)
	if !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Errorf("timeout: %s, want SPF's answer", got)
	}
	if took > budget+700*time.Millisecond {
		t.Errorf("answered after %s, want at most the %s budget (and SPF)", took, budget)
	}
	if obs := observed(); len(obs) != 1 || obs[0].Zones["slow.example.test"] != "error" || obs[0].Action != "none" {
		t.Errorf("observed %+v, want slow.example.test: error", obs)
	}

	addr, _ = blServer(t, &Blocklists{Sites: blSites(t, "slow.example.test, bl.example.test"), Timeout: budget, Budget: budget}, nil)
	c = dial(t, "tcp", addr)
	if got := c.ask(t, blRequest("127.0.0.2", "unknown", "r@rcpt.test", "1", "")); !strings.HasPrefix(got, "action=554 5.7.1") {
		t.Errorf("one list timed out, the other lists: %s", got)
	}
}

// TestBlocklistGreylist: an allow-listed client that rgrey would
// greylist (no verified name) is not; a client with a blocklist score at
// greylist_threshold is, though its verified name would not be.
func TestBlocklistGreylist(t *testing.T) {
	g, err := greylist.New(greylist.Config{}, greylist.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	addr, observed := blServer(t, &Blocklists{Sites: blSites(t, "wl.example.test*-2"), AllowlistThreshold: -1}, g)
	c := dial(t, "tcp", addr)
	if got := c.ask(t, blRequest("127.0.0.2", "unknown", "r@rcpt.test", "1", "")); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Errorf("allow-listed: %s, want no greylisting", got)
	}
	if got := c.ask(t, blRequest("127.0.0.5", "unknown", "r@rcpt.test", "2", "")); !strings.HasPrefix(got, "action=DEFER_IF_PERMIT 4.7.1 Greylisted") {
		t.Errorf("not allow-listed, no verified name: %s, want greylisting", got)
	}
	if obs := observed(); len(obs) != 2 || obs[0].Action != "allowlisted" || obs[1].Action != "none" {
		t.Errorf("observed %+v", obs)
	}

	addr, observed = blServer(t, &Blocklists{Sites: blSites(t, "bl.example.test"), RejectThreshold: 5, GreylistThreshold: 1}, g)
	c = dial(t, "tcp", addr)
	got := c.ask(t, blRequest("127.0.0.2", "mail.example.test", "r@rcpt.test", "1", ""))
	if want := "action=DEFER_IF_PERMIT 4.7.1 Greylisted, see RFC 6647 (127.0.0.2 has a blocklist score of 1 (bl.example.test))"; !strings.HasPrefix(got, want) {
		t.Errorf("listed below the reject threshold: %s, want %s...", got, want)
	}
	if got := c.ask(t, blRequest("127.0.0.5", "mail.example.test", "r@rcpt.test", "2", "")); !strings.HasPrefix(got, "action=PREPEND") {
		t.Errorf("unlisted, verified name: %s, want no greylisting", got)
	}
	if obs := observed(); len(obs) != 2 || obs[0].Action != "greylist" {
		t.Errorf("observed %+v", obs)
	}
}

// BenchmarkRequestBlocklists is BenchmarkRequestWarm with three lists
// asked, all cached (an unlisted client: the common case), and with the
// client listed (refused before SPF).
func BenchmarkRequestBlocklists(b *testing.B) {
	for _, bc := range []struct{ name, ip, want string }{
		{"unlisted", "127.0.0.5", "action=PREPEND Received-SPF: Pass"},
		{"listed", "127.0.0.2", "action=554 5.7.1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := labtest.Serve(b, blZones(b)...)
			res := dnsx.NewCache(&dnsx.Client{Servers: []string{srv.Addr()}}, dnsx.CacheOptions{})
			addr := startPolicyd(b, res, Options{Blocklists: &Blocklists{Sites: blSites(b, "bl.example.test*3, secretkey.dq.example.test, wl.example.test*-2")}})
			req := func(i int64) string { return blRequest(bc.ip, "unknown", "r@rcpt.test", fmt.Sprint(i), "") }
			warm, _ := net.Dial("tcp", addr)
			fmt.Fprintf(warm, "%s\n\n", req(-1))
			bufio.NewReader(warm).ReadString('\n')
			warm.Close()
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			runRequests(b, addr, func() string { return req(n.Add(1)) }, bc.want)
		})
	}
}

// TestBlocklistReload: a reload (SIGHUP) replaces the lists: a client
// listed by the new ones is refused, and lists removed are not asked.
func TestBlocklistReload(t *testing.T) {
	zs := labtest.Serve(t, blZones(t)...)
	checker := &spf.Checker{Resolver: dnsx.NewCache(&dnsx.Client{Servers: []string{zs.Addr()}, Timeout: time.Second, Attempts: 1}, dnsx.CacheOptions{})}
	s := New(checker, Options{}, 10, quiet)
	ask := func(inst string) string {
		return s.Decide(Request{"request": "smtpd_access_policy", "client_address": "127.0.0.2", "helo_name": "example.test",
			"sender": "a@example.test", "recipient": "r@rcpt.test", "instance": inst}).Line()
	}
	if got := ask("1"); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Fatalf("no lists: %s", got)
	}
	s.Reload(checker, Options{Blocklists: &Blocklists{Sites: blSites(t, "bl.example.test")}})
	if got := ask("2"); !strings.HasPrefix(got, "action=554 5.7.1") {
		t.Errorf("after a reload with a list: %s", got)
	}
	s.Reload(checker, Options{})
	if got := ask("3"); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Errorf("after a reload without lists: %s", got)
	}
}
