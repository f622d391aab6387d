package admin

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

func TestSocketLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	// A socket file left by a crash: nobody listens, so it is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{labtest.Lab(t)}, Timeout: time.Second}, dnsx.CacheOptions{})
	s := &Server{Cache: cache, Log: slog.New(slog.DiscardHandler)}
	if err := s.Listen(path); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	go s.Serve()
	// A second daemon must not steal a live socket.
	other := &Server{Cache: cache, Log: slog.New(slog.DiscardHandler)}
	if err := other.Listen(path); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Errorf("second Listen: %v", err)
	}
	c := NewClient(path)
	a, err := c.Query("mail.example.test", "a")
	if err != nil || a.Cached || len(a.Records) != 1 || a.TTL != 300 {
		t.Fatalf("first query: %+v %v", a, err)
	}
	a, err = c.Query("mail.example.test", "A")
	if err != nil || !a.Cached || a.TTL > 300 || a.TTL < 295 {
		t.Errorf("second query: %+v %v", a, err)
	}
	if a, _ := c.Query("mail.example.test", "BOGUS"); a == nil || a.Error == "" {
		t.Errorf("bad type: %+v", a)
	}
	if a, _ := c.Query("nx.example.test", "A"); a == nil || a.Rcode != "NXDOMAIN" || len(a.Records) != 0 {
		t.Errorf("NXDOMAIN: %+v", a)
	}
	if f, err := c.Flush("mail.example.test"); err != nil || f.Entries != 1 {
		t.Errorf("flush: %+v %v", f, err)
	}
	s.Shutdown(context.Background())
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}

// A client of the socket cannot hold more than maxConns connections, nor
// keep one idle past the read timeout; the socket serves again after.
func TestSocketBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{labtest.Lab(t)}, Timeout: time.Second}, dnsx.CacheOptions{})
	s := &Server{Cache: cache, Log: slog.New(slog.DiscardHandler), timeout: 300 * time.Millisecond}
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Shutdown(context.Background())
	var idle []net.Conn
	for range 3 * maxConns {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond)
	if open := s.ln.Stats().Open; open > maxConns {
		t.Errorf("%d connections open, want at most %d", open, maxConns)
	}
	// The idle ones are closed after the timeout, each batch making
	// room for the next.
	start := time.Now()
	c := NewClient(path)
	if _, err := c.Query("mail.example.test", "a"); err != nil {
		t.Fatalf("query behind idle connections: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("query answered after %v", took)
	}
	for _, c := range idle[:maxConns] {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("idle connection answered")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("idle connection still open")
		}
	}
}
