package policyd

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/spf"
)

// startLimited serves on a loopback port with maxConns and the hooks a
// test sets.
func startLimited(t *testing.T, res dnsx.Resolver, maxConns int, set func(*Server)) (*Server, string) {
	t.Helper()
	srv := New(&spf.Checker{Resolver: res}, Options{HideReceiver: true}, maxConns, quiet)
	if set != nil {
		set(srv)
	}
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv, ln.Addr().String()
}

// idleConns opens n connections that never send anything.
func idleConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// askWithin dials, asks one request and fails the test unless the answer
// comes within d.
func askWithin(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	start := time.Now()
	c := dial(t, "tcp", addr)
	c.conn.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c.conn, request("127.0.0.2", "mail.example.test", "a@example.test", "x.1")+"\n\n"); err != nil {
		t.Fatal(err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("no answer within %v: %v", d, err)
	}
	if !strings.HasPrefix(line, "action=PREPEND Received-SPF: Pass") {
		t.Fatalf("answer %q", line)
	}
	t.Logf("answered in %v", time.Since(start))
}

// Before: the slots were taken by idle connections and a real request
// waited in the accept queue until one timed out, 330 s later.
func TestIdleConnectionsDoNotStarveRequests(t *testing.T) {
	srv, addr := startLimited(t, labResolver(t), 20, nil)
	idleConns(t, addr, 20)
	waitFor(t, func() bool { return srv.Stats().Open == 20 })
	for range 3 {
		askWithin(t, addr, time.Second)
	}
	if st := srv.Stats(); st.Evicted < 1 || st.Open > 20 {
		t.Errorf("stats %+v: want evictions, at most 20 open", st)
	}
}

// An smtpd's connection that has been answered and waits for its next
// request outlives strangers' connections that never asked anything.
func TestEvictionKeepsUsedConnections(t *testing.T) {
	srv, addr := startLimited(t, labResolver(t), 5, nil)
	used := dial(t, "tcp", addr)
	used.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "u.1"))
	idleConns(t, addr, 10) // each past the fourth evicts the oldest stranger
	waitFor(t, func() bool { return srv.Stats().Evicted >= 6 })
	if got := used.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "u.2")); !strings.HasPrefix(got, "action=PREPEND") {
		t.Errorf("used connection: %s", got)
	}
}

func TestSilentConnectionClosed(t *testing.T) {
	srv, addr := startLimited(t, labResolver(t), 10, func(s *Server) { s.firstWait = 200 * time.Millisecond })
	c := idleConns(t, addr, 1)[0]
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v, want EOF", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("closed after %v", took)
	}
	if srv.Stats().Timeouts != 1 {
		t.Errorf("stats %+v", srv.Stats())
	}
}

// A request that begins and then stalls is cut after the request
// timeout, not the idle one.
func TestStalledRequestClosed(t *testing.T) {
	_, addr := startLimited(t, labResolver(t), 10, func(s *Server) { s.requestWait = 200 * time.Millisecond })
	c := idleConns(t, addr, 1)[0]
	io.WriteString(c, "request=smtpd_access_policy\nsender=a@")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v, want EOF", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("closed after %v", took)
	}
}

// An answered connection stays open past the first-request wait: Postfix
// reuses it for up to smtpd_policy_service_max_idle.
func TestAnsweredConnectionKeptIdle(t *testing.T) {
	_, addr := startLimited(t, labResolver(t), 10, func(s *Server) { s.firstWait = 100 * time.Millisecond })
	c := dial(t, "tcp", addr)
	c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "k.1"))
	time.Sleep(400 * time.Millisecond)
	if got := c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "k.2")); !strings.HasPrefix(got, "action=PREPEND") {
		t.Errorf("second request: %s", got)
	}
}

func TestMaxPerPeer(t *testing.T) {
	srv, addr := startLimited(t, labResolver(t), 100, func(s *Server) { s.MaxPerPeer = 3; s.countLoopback = true })
	cs := idleConns(t, addr, 5)
	waitFor(t, func() bool { return srv.Stats().PerPeerRefused == 2 })
	if st := srv.Stats(); st.Open != 3 {
		t.Errorf("stats %+v: want 3 open", st)
	}
	cs[0].Close()
	waitFor(t, func() bool { return srv.Stats().Open == 2 })
	askWithin(t, addr, 2*time.Second)
}

// Loopback is not counted per peer: Postfix's smtpd processes all come
// from it.
func TestMaxPerPeerSparesLoopback(t *testing.T) {
	srv, addr := startLimited(t, labResolver(t), 100, func(s *Server) { s.MaxPerPeer = 3 })
	idleConns(t, addr, 6)
	waitFor(t, func() bool { return srv.Stats().Open == 6 })
	if st := srv.Stats(); st.PerPeerRefused != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestXCommentSanitized(t *testing.T) {
	srv := New(&spf.Checker{Resolver: labResolver(t)}, Options{SkipAddresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, 1, quiet)
	for _, tc := range []struct{ name, helo, sender, recipient string }{
		{"CR LF in HELO", "x.test\r\nX-Injected: 1", "a@example.test", "b@rcpt.test"},
		{"bare CR in sender", "x.test", "a@b\rX-Injected: 1", "b@rcpt.test"},
		{"controls and ;", "x.test", "a;receiver=evil@\x00\x1b[31m", "b\x7f@rcpt.test\u0085"},
		{"long", strings.Repeat("h", 5000), strings.Repeat("é", 3000), strings.Repeat("r", 5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := srv.decide(context.Background(), srv.rules.Load(), Request{"request": "smtpd_access_policy",
				"client_address": "127.0.0.3", "helo_name": tc.helo, "sender": tc.sender, "recipient": tc.recipient})
			line := resp.Line()
			if !strings.HasPrefix(line, "action=PREPEND X-Comment: ") {
				t.Fatalf("answer %q", line)
			}
			if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
				t.Errorf("control character in %q", line)
			}
			if strings.Count(line, ";") != 3 {
				t.Errorf("fields split: %q", line)
			}
			if len(line) > 1000 {
				t.Errorf("%d octets", len(line))
			}
		})
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("condition not reached in 5 s")
}
