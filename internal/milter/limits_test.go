package milter

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMacrosBounded: a stage's macros replace that stage's earlier ones,
// a later stage's value hides an earlier's, the message's go at its end,
// and names beyond MacroNames, or past MaxMacroBytes, are not kept.
func TestMacrosBounded(t *testing.T) {
	var m Macros
	pairs := func(kv ...string) []byte { return cstr(kv...) }
	m.set('C', pairs("j", "mx.example.test", "{daemon_name}", "smtpd"), nil)
	m.set('M', pairs("i", "Q1", "{auth_authen}", "alice"), nil)
	m.set('M', pairs("i", "Q2"), nil) // replaces: auth_authen is gone
	m.set('E', pairs("i", "Q3"), nil)
	for name, want := range map[string]string{"j": "mx.example.test", "{daemon_name}": "smtpd", "i": "Q3", "auth_authen": ""} {
		if got := m.Get(name); got != want {
			t.Errorf("Get(%q) = %q, want %q", name, got, want)
		}
	}
	m.endMessage()
	if m.Get("i") != "" || m.Get("j") != "mx.example.test" {
		t.Errorf("after the message: i=%q j=%q", m.Get("i"), m.Get("j"))
	}

	// Only the names asked for.
	var k Macros
	k.set('M', pairs("i", "Q1", "{auth_authen}", "alice", "{mail_addr}", "a@example.test"), map[string]string{"i": "i", "auth_authen": "auth_authen"})
	if k.Get("i") != "Q1" || k.Get("auth_authen") != "alice" || k.Get("mail_addr") != "" {
		t.Errorf("kept %+v", k.stages)
	}

	// 250 stages' worth of large, distinct macros keep at most
	// MaxMacroBytes (the attack: 1.29 GB kept on one connection).
	var big Macros
	value := strings.Repeat("x", 1<<20)
	dropped := false
	for i := range 250 {
		stage := "CHMRTNEX"[i%8]
		if big.set(stage, pairs("name"+strconv.Itoa(i), value, "small"+strconv.Itoa(i), "v"), nil) {
			dropped = true
		}
	}
	kept := 0
	for _, st := range big.stages {
		for _, kv := range st {
			kept += len(kv.name) + len(kv.value)
		}
	}
	if kept > MaxMacroBytes || big.size != kept || !dropped {
		t.Errorf("kept %d octets of macros (counted %d, dropped %v), want at most %d", kept, big.size, dropped, MaxMacroBytes)
	}
	if big.Get("small249") != "v" {
		t.Errorf("a small macro of the last stage was not kept")
	}
}

// TestMacroNamesOverTheWire: a server given MacroNames hands its filter
// those and no others.
func TestMacroNamesOverTheWire(t *testing.T) {
	rec, events := newRecorder()
	s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler), MacroNames: []string{"{auth_authen}", "i"}}
	addr := serveOn(t, s)
	c, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Macro('C', "j", "mx.example.test")
	c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
	c.Macro('M', "{auth_authen}", "alice", "i", "Q1", "{mail_addr}", "a@example.test")
	if r, err := c.Mail("<a@example.test>"); err != nil || r.Code != 'c' {
		t.Fatalf("mail: %v %v", r, err)
	}
	got := strings.Join(events(), "|")
	if !strings.Contains(got, "connect x 4 192.0.2.1 j=|") || !strings.Contains(got, "auth=alice j=") {
		t.Errorf("events %s: want j dropped, auth_authen kept", got)
	}
}

// rawConn dials addr without negotiating.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestHandshakeTimeout: a connection that does not negotiate is closed
// after HandshakeTimeout, even while it sends what may come before
// negotiation (macros); one that negotiated and then falls silent, after
// IdleTimeout.
func TestHandshakeTimeout(t *testing.T) {
	rec, _ := newRecorder()
	s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler),
		HandshakeTimeout: 200 * time.Millisecond, IdleTimeout: 600 * time.Millisecond}
	addr := serveOn(t, s)

	silent := rawConn(t, addr)
	chatty := rawConn(t, addr)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		w := bufio.NewWriter(chatty)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			writePacket(w, cmdMacro, []byte{'C'}, cstr("j", "x"))
			if w.Flush() != nil {
				return
			}
		}
	}()
	if !closedWithin(silent, 2*time.Second) {
		t.Fatal("a connection that never negotiated was still open after 2 s")
	}
	if !closedWithin(chatty, 2*time.Second) {
		t.Fatal("a connection sending macros but never negotiating was still open after 2 s")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("closed after %v, want about 200 ms", d)
	}

	// Negotiated: the idle timeout, not the handshake's, applies.
	c := heloSession(t, addr)
	defer c.Close()
	start = time.Now()
	if !closedWithin(c.Conn(), 3*time.Second) {
		t.Fatal("an idle negotiated connection was still open after 3 s")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("idle connection closed after %v, before its IdleTimeout (600 ms)", d)
	}
}

// TestConnectionLimits: past MaxConnsPerPeer a connection from the same
// address is closed at once; at MaxConns a newcomer takes the place of
// the oldest connection that has not negotiated, and sessions that have
// negotiated are left alone.
func TestConnectionLimits(t *testing.T) {
	rec, _ := newRecorder()
	t.Run("per peer", func(t *testing.T) {
		s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler), MaxConnsPerPeer: 2}
		addr := serveOn(t, s)
		a, b := heloSession(t, addr), heloSession(t, addr)
		defer a.Close()
		defer b.Close()
		third := rawConn(t, addr)
		if !closedWithin(third, 2*time.Second) {
			t.Fatal("a third connection from one address was kept with MaxConnsPerPeer 2")
		}
		b.Close()
		waitOpen(t, s, 1)
		heloSession(t, addr).Close() // room again
	})
	t.Run("total", func(t *testing.T) {
		s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler), MaxConns: 3, MaxConnsPerPeer: -1}
		addr := serveOn(t, s)
		live := heloSession(t, addr)
		defer live.Close()
		idle1 := rawConn(t, addr)
		waitOpen(t, s, 2)
		idle2 := rawConn(t, addr)
		waitOpen(t, s, 3)
		// Full: a real session still gets in, in place of idle1.
		c, err := Dial("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("a session at MaxConns: %v", err)
		}
		c.Close()
		if !closedWithin(idle1, 2*time.Second) {
			t.Error("the oldest unnegotiated connection was not closed for a newcomer")
		}
		if closedWithin(idle2, 50*time.Millisecond) {
			t.Error("the newer unnegotiated connection was closed too")
		}
		if r, err := live.Helo("again.example.test"); err != nil || r.Code != 'c' {
			t.Errorf("the negotiated session was disturbed: %v %v", r, err)
		}
		if s.Stats().Evicted != 1 {
			t.Errorf("evicted %d, want 1", s.Stats().Evicted)
		}
	})
}

// waitOpen waits until s has n connections open.
func waitOpen(t *testing.T, s *Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		open := len(s.conns)
		s.mu.Unlock()
		if open == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", open, n)
		}
	}
}

// emfileListener fails Accept with EMFILE a number of times, then
// accepts from the real listener.
type emfileListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// TestAcceptOutOfFiles: EMFILE from Accept (the process out of file
// descriptors) does not end Serve, which used to return the error and
// take the daemon down with it.
func TestAcceptOutOfFiles(t *testing.T) {
	rec, _ := newRecorder()
	s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &emfileListener{Listener: ln}
	el.fails.Store(5)
	served := make(chan error, 1)
	go func() { served <- s.Serve(el) }()
	t.Cleanup(s.Shutdown)
	c := heloSession(t, ln.Addr().String())
	c.Close()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v", err)
	default:
	}
	if el.fails.Load() >= 0 {
		t.Errorf("EMFILE was not met")
	}
}

// TestLargePacketsBounded: a packet past maxPacket ends the connection,
// and one announced large but never sent holds no buffer of its size.
func TestLargePacketsBounded(t *testing.T) {
	var hdr [4]byte
	hdr[0], hdr[1] = 0x00, 0x20 // 2 MiB
	if _, err := readPacket(bufio.NewReader(strings.NewReader(string(hdr[:]) + "L"))); !errors.Is(err, errPacketTooLarge) {
		t.Errorf("2 MiB packet: %v, want errPacketTooLarge", err)
	}
	announced := string([]byte{0x00, 0x10, 0x00, 0x00}) + "Lname\x00" // 1 MiB announced, a few octets sent
	allocs := testing.AllocsPerRun(10, func() {
		readPacket(bufio.NewReaderSize(strings.NewReader(announced), 16))
	})
	var ms1, ms2 runtimeMem
	ms1.read()
	for range 100 {
		if _, err := readPacket(bufio.NewReaderSize(strings.NewReader(announced), 16)); err == nil {
			t.Fatal("a short packet was read whole")
		}
	}
	ms2.read()
	if grew := ms2.alloc - ms1.alloc; grew > 10<<20 {
		t.Errorf("100 announced 1 MiB packets of a few octets allocated %d MB (%.0f allocations each)", grew>>20, allocs)
	}
	// A whole large packet (a 512 KiB header field) is still read.
	value := strings.Repeat("v", 512<<10)
	data := "L" + "X-Big\x00" + value + "\x00"
	n := len(data)
	p, err := readPacket(bufio.NewReader(strings.NewReader(string([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}) + data)))
	if err != nil || p.cmd != 'L' || len(p.data) != n-1 {
		t.Errorf("512 KiB packet: %v, %d octets", err, len(p.data))
	}
}

// runtimeMem is the heap allocated so far.
type runtimeMem struct{ alloc uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.alloc = s.TotalAlloc
}
