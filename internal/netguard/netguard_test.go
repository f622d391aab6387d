package netguard

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeListener returns the queued errors, then connections from a pipe.
type fakeListener struct {
	errs   chan error
	closed chan struct{}
}

func newFake(errs ...error) *fakeListener {
	f := &fakeListener{errs: make(chan error, len(errs)), closed: make(chan struct{})}
	for _, e := range errs {
		f.errs <- e
	}
	return f
}

func (f *fakeListener) Accept() (net.Conn, error) {
	select {
	case e := <-f.errs:
		return nil, e
	default:
	}
	select {
	case <-f.closed:
		return nil, net.ErrClosed
	default:
	}
	a, b := net.Pipe()
	go func() { io.Copy(io.Discard, b) }()
	return a, nil
}
func (f *fakeListener) Close() error   { close(f.closed); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func accErr(e syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
}

// Before netguard, the first EMFILE ended the accept loop, and the daemon
// with it.
func TestTemporaryErrorsRetried(t *testing.T) {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS} {
		t.Run(e.Error(), func(t *testing.T) {
			l := New(newFake(accErr(e), accErr(e), accErr(e)), Config{Log: quiet()})
			start := time.Now()
			c, err := l.Accept()
			if err != nil {
				t.Fatalf("Accept: %v", err)
			}
			c.Close()
			// 5 + 10 + 20 ms of backoff.
			if took := time.Since(start); took < 30*time.Millisecond || took > 2*time.Second {
				t.Errorf("took %v, want the 35 ms backoff", took)
			}
			if st := l.Stats(); st.TemporaryErrors != 3 || st.Accepted != 1 || st.Open != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestPermanentErrorReturned(t *testing.T) {
	bad := errors.New("broken")
	l := New(newFake(bad), Config{Log: quiet(), MaxConns: 1})
	if _, err := l.Accept(); !errors.Is(err, bad) {
		t.Fatalf("err %v, want %v", err, bad)
	}
	// The slot was given back.
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestTemporary(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{accErr(syscall.EMFILE), true},
		{accErr(syscall.ENFILE), true},
		{accErr(syscall.ECONNABORTED), true},
		{accErr(syscall.EINVAL), false},
		{net.ErrClosed, false},
		{fmt.Errorf("x: %w", net.ErrClosed), false},
		{errors.New("other"), false},
		{nil, false},
	} {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestEvictOnFDShortage(t *testing.T) {
	evicts := 0
	l := New(newFake(accErr(syscall.EMFILE)), Config{Log: quiet(), Evict: func() bool { evicts++; return true }})
	start := time.Now()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if evicts != 1 || time.Since(start) > 500*time.Millisecond {
		t.Errorf("evicts %d after %v: want one, and no backoff", evicts, time.Since(start))
	}
}

func TestMaxConnsWaitsAndEvicts(t *testing.T) {
	var held []net.Conn
	evict := func() bool {
		if len(held) == 0 {
			return false
		}
		held[0].Close()
		held = held[1:]
		return true
	}
	l := New(newFake(), Config{Log: quiet(), MaxConns: 2, Evict: evict})
	for range 2 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The third evicts the oldest.
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Open != 2 || st.Evicted != 1 || st.FullWaits != 1 {
		t.Errorf("stats %+v", st)
	}
	held = append(held, c)
	// Closing twice gives one slot back, not two.
	held[0].Close()
	held[0].Close()
	if st := l.Stats(); st.Open != 1 {
		t.Errorf("open %d after a double close, want 1", st.Open)
	}
	l.cfg.Evict = nil
	if _, err := l.Accept(); err != nil { // the freed slot
		t.Fatal(err)
	}
	// Full and nothing to evict: Accept waits until Close.
	got := make(chan error, 1)
	go func() { _, err := l.Accept(); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("Accept returned %v at the limit", err)
	case <-time.After(50 * time.Millisecond):
	}
	l.Close()
	select {
	case err := <-got:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("err %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake Accept")
	}
}

func TestMaxPerPeer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exempt []netip.Prefix
		kept   int
	}{
		{"counted", nil, 2},
		{"loopback exempt", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := New(ln, Config{Log: quiet(), MaxPerPeer: 2, PerPeerExempt: tc.exempt})
			defer l.Close()
			accepted := make(chan net.Conn, 8)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepted <- c
				}
			}()
			var clients []net.Conn
			for range 4 {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				clients = append(clients, c)
			}
			kept := 0
			for _, c := range clients {
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				_, err := c.Read(make([]byte, 1))
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					kept++ // still open
				}
			}
			if kept != tc.kept {
				t.Errorf("%d connections kept open, want %d (stats %+v)", kept, tc.kept, l.Stats())
			}
			// Closing one makes room for another from the same peer.
			if tc.exempt == nil {
				(<-accepted).Close()
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				select {
				case <-accepted:
				case <-time.After(2 * time.Second):
					t.Error("no room after a close")
				}
			}
		})
	}
}

// When the descriptor an eviction freed goes elsewhere, the next retry
// pauses before evicting again.
func TestEvictOncePerPause(t *testing.T) {
	evicts := 0
	emfile := accErr(syscall.EMFILE)
	l := New(newFake(emfile, emfile, emfile, emfile), Config{Log: quiet(), Evict: func() bool { evicts++; return true }})
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// evict, retry (EMFILE), pause, evict, retry (EMFILE), pause, accept.
	if evicts != 2 {
		t.Errorf("%d evictions for 4 EMFILEs, want 2", evicts)
	}
}

// floodListener is a process out of descriptors under a connection flood:
// every other Accept fails with EMFILE, and the one after an eviction
// succeeds.
type floodListener struct {
	fakeListener
	fail bool
}

func (f *floodListener) Accept() (net.Conn, error) {
	if f.fail = !f.fail; f.fail {
		return nil, accErr(syscall.EMFILE)
	}
	return f.fakeListener.Accept()
}

// TestEpisodeLogsRateLimited: under a sustained flood each eviction ends
// the EMFILE episode. Before, each episode logged its start and its end,
// two lines per connection (2,000 for 1,000 connections); now one episode
// per LogEvery is logged, and the next one logged counts those hidden.
func TestEpisodeLogsRateLimited(t *testing.T) {
	var buf strings.Builder
	l := New(&floodListener{fakeListener: *newFake()}, Config{Name: "flood", Log: slog.New(slog.NewTextHandler(&buf, nil)),
		Evict: func() bool { return true }})
	const n = 1000
	accept := func() {
		t.Helper()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for range n {
		accept()
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `msg="accept failed, retrying"`) || !strings.Contains(lines[1], `msg="accepting again"`) {
		t.Errorf("%d log lines for %d episodes within LogEvery, want 2 (a start, an end):\n%s", len(lines), n, strings.Join(lines[:min(len(lines), 6)], "\n"))
	}
	if st := l.Stats(); st.TemporaryErrors != n || st.Evicted != n || st.Accepted != n {
		t.Errorf("stats %+v: the episodes not logged must still be counted", st)
	}
	// Past LogEvery, the next episode is logged with what went unlogged.
	buf.Reset()
	l.logEvery = 0
	accept()
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := fmt.Sprintf("episodes=%d errors=%d evicted=%d", n, n, n)
	if len(lines) != 2 || !strings.Contains(lines[0], want) {
		t.Errorf("after LogEvery: want %q in the first of 2 lines:\n%s", want, buf.String())
	}
}
