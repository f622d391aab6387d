package policyd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailwall/internal/spf"
)

// Server answers policy requests on any number of listeners.
type Server struct {
	rules atomic.Pointer[rules]
	log   *slog.Logger
	slots chan struct{}

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
	closing   atomic.Bool

	requests, malformed, internalErrors atomic.Uint64
}

// New returns a server. maxConns bounds concurrent connections; more wait
// in the kernel's accept queue.
func New(checker *spf.Checker, opts Options, maxConns int, log *slog.Logger) *Server {
	if maxConns <= 0 {
		maxConns = 1000
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{log: log, slots: make(chan struct{}, maxConns), conns: map[net.Conn]struct{}{}}
	s.Reload(checker, opts)
	return s
}

// rules are what a reload replaces: the checker and the options.
type rules struct {
	checker *spf.Checker
	opts    Options
}

// Reload makes later requests use checker and opts (a SIGHUP's new
// config). A request already being answered finishes with the old ones.
func (s *Server) Reload(checker *spf.Checker, opts Options) {
	if opts.ReasonMessage == "" {
		opts.ReasonMessage = defaultReasonMsg
	}
	if opts.HeloReject == "" {
		opts.HeloReject = RejectFail
	}
	if opts.MailFromReject == "" {
		opts.MailFromReject = RejectFail
	}
	s.rules.Store(&rules{checker: checker, opts: opts})
}

// Listen opens "inet:host:port" or "unix:/path". A stale unix socket file
// is replaced; mode sets its permissions.
func Listen(addr string, mode os.FileMode) (net.Listener, error) {
	switch {
	case strings.HasPrefix(addr, "inet:"):
		// No TCP keep-alive: Postfix closes idle policy and milter
		// connections itself, and setting it up cost four system calls
		// for every milter session.
		lc := net.ListenConfig{KeepAlive: -1}
		return lc.Listen(context.Background(), "tcp", strings.TrimPrefix(addr, "inet:"))
	case strings.HasPrefix(addr, "unix:"):
		path := strings.TrimPrefix(addr, "unix:")
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(path, mode); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	return nil, fmt.Errorf("policyd: listen address %q: want inet:HOST:PORT or unix:PATH", addr)
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	for {
		s.slots <- struct{}{}
		conn, err := ln.Accept()
		if err != nil {
			<-s.slots
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("policyd: accept: %w", err)
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				conn.Close()
				<-s.slots
				s.wg.Done()
			}()
			s.serveConn(conn)
		}()
	}
}

// idleTimeout is longer than Postfix's smtpd_policy_service_max_idle
// (300s), so Postfix closes idle connections first.
const idleTimeout = 330 * time.Second

// serveConn answers requests on one connection. Postfix sends several
// requests per connection, one per recipient among them; the answer for a
// message (same "instance") is given once: later recipients get DUNNO
// after a PREPEND, so the header is added once, or the same rejection.
func (s *Server) serveConn(conn net.Conn) {
	r := NewReader(conn)
	w := bufio.NewWriter(conn)
	var lastInstance string
	var last Response
	for {
		conn.SetReadDeadline(time.Now().Add(idleTimeout))
		// After setting the deadline: Shutdown sets closing before it
		// cuts the deadlines short, so one of the two always wins.
		if s.closing.Load() {
			return
		}
		req, err := ReadRequest(r)
		if err != nil && !errors.Is(err, ErrMalformed) {
			if !errors.Is(err, io.EOF) && !s.closing.Load() {
				s.log.Info("policy connection closed", "client", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		s.requests.Add(1)
		var resp Response
		if err != nil {
			s.malformed.Add(1)
			s.log.Warn("malformed policy request: DUNNO", "client", conn.RemoteAddr().String(), "err", err)
			resp = Response{Action: Dunno}
		} else if inst := req["instance"]; inst != "" && inst == lastInstance {
			resp = last
			if resp.Action == Prepend {
				resp = Response{Action: Dunno}
			}
		} else {
			start := time.Now()
			ru := s.rules.Load()
			resp = s.safeDecide(ru, req)
			if ru.opts.Observe != nil {
				ru.opts.Observe(resp, time.Since(start))
			}
			lastInstance, last = inst, resp
			s.logDecision(req, resp)
		}
		conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		w.WriteString(resp.Line())
		w.WriteString("\n\n")
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// safeDecide turns a panic inside the checks into the configured
// fail-open (DUNNO) or fail-closed (DEFER_IF_PERMIT) answer.
func (s *Server) safeDecide(ru *rules, req Request) (resp Response) {
	defer func() {
		if p := recover(); p != nil {
			s.internalErrors.Add(1)
			s.log.Error("policy check failed inside mailwall", "panic", fmt.Sprint(p), "client_address", req["client_address"], "sender", req["sender"])
			resp = Response{Action: Dunno}
			if ru.opts.DeferOnError {
				resp = Response{Action: Defer, Text: "4.7.24 temporary failure in the SPF check"}
			}
		}
	}()
	return s.decide(context.Background(), ru, req)
}

func (s *Server) logDecision(req Request, resp Response) {
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	o := resp.Outcome
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "spf",
		slog.String("queue_id", req["queue_id"]), slog.String("client", req["client_address"]),
		slog.String("helo", req["helo_name"]), slog.String("sender", req["sender"]),
		slog.String("identity", string(o.Identity)), slog.String("result", string(o.Result)),
		slog.String("mechanism", o.Mechanism), slog.String("problem", o.Problem),
		slog.Int("lookups", o.Lookups), slog.String("action", string(resp.Action)))
}

// Stats are the server's counters.
type Stats struct {
	Requests, Malformed, InternalErrors uint64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Malformed: s.malformed.Load(), InternalErrors: s.internalErrors.Load()}
}

// Shutdown stops accepting, lets open connections finish their current
// request until ctx ends, then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	// Idle connections wait in a read: wake them now.
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
