package policyd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailwall/internal/debuglog"
	"mailwall/internal/greylist"
	"mailwall/internal/lists"
	"mailwall/internal/netguard"
	"mailwall/internal/spf"
)

// Server answers policy requests on any number of listeners.
//
// Connections are bounded per listener (maxConns) and, for peers off
// loopback, per peer address (MaxPerPeer), by internal/netguard, which
// also keeps accepting through EMFILE. Postfix keeps one connection per
// smtpd process and leaves it idle between requests for up to
// smtpd_policy_service_max_idle (300 s), so idle connections are normal
// and are not cut short; but when a listener is full, or the process is
// out of file descriptors, the connection that has waited longest for a
// request is closed to make room: first those that never sent one (smtpd
// writes its request as soon as it connects), then the least recently
// used. Postfix sends a request again on a new connection when the old
// one was closed (smtpd_policy_service_try_limit, 2 by default), so a
// legitimate smtpd loses at most its retry delay, and an attacker's
// idle connections cannot keep a real request waiting.
type Server struct {
	// MaxPerPeer bounds the connections from one address off loopback
	// (0: no limit); set it before Serve. Loopback is not counted: every
	// local smtpd process connects from it, and eviction guards there.
	MaxPerPeer int
	// ObserveDNSBL, when set before Serve, hears each blocklist check
	// (for metrics; it survives reloads); it must not block.
	ObserveDNSBL func(BlocklistCheck)
	// ObserveLists, when set before Serve, hears each request the allow
	// or block list decided ("allow", "block"); it must not block.
	ObserveLists func(list string)
	// Debug, when set before Serve, are log.debug_peers: a request from
	// a client in them is logged with its answer, and its checks' DNS
	// answers (package debuglog).
	Debug *debuglog.Peers

	// record, when set (SetRecord), hears every refusal answered.
	record atomic.Pointer[func(Decision)]

	rules    atomic.Pointer[rules]
	grey     atomic.Pointer[greylist.Greylister] // nil: no greylisting
	lists    atomic.Pointer[lists.Cache]         // nil: no allow and block lists
	stop     chan struct{}                       // closed by Shutdown: ends tarpits
	stopOnce sync.Once
	log      *slog.Logger
	maxConns int
	// Tests shorten these and count loopback per peer; zero and nil
	// mean the constants and loopback.
	firstWait, requestWait time.Duration
	countLoopback          bool
	// evictLog limits eviction warnings to one per minute under attack.
	evictLog struct {
		last  time.Time
		since int
	}

	mu        sync.Mutex
	listeners []*netguard.Listener
	conns     map[net.Conn]*connState
	wg        sync.WaitGroup
	closing   atomic.Bool

	requests, malformed, internalErrors, timeouts atomic.Uint64
}

// connState is what eviction reads about a connection; s.mu guards it.
type connState struct {
	ln       *netguard.Listener
	accepted time.Time
	lastDone time.Time // last answer written; zero: none yet
	busy     bool      // a request has begun arriving, or is being decided
}

// New returns a server. maxConns bounds the connections open at once on
// each listener.
func New(checker *spf.Checker, opts Options, maxConns int, log *slog.Logger) *Server {
	if maxConns <= 0 {
		maxConns = 1000
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{log: log, maxConns: maxConns, conns: map[net.Conn]*connState{}, stop: make(chan struct{})}
	s.Reload(checker, opts)
	return s
}

// rules are what a reload replaces: the checker, the options and the
// blocklists built from them (nil: none).
type rules struct {
	checker *spf.Checker
	opts    Options
	bl      *blocklister
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
	ru := &rules{checker: checker, opts: opts}
	if checker != nil {
		ru.bl = newBlocklister(opts.Blocklists, checker.Resolver, s.log)
	}
	s.rules.Store(ru)
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

// Timeouts of a connection. The idle one is longer than Postfix's
// smtpd_policy_service_max_idle (300 s), so Postfix closes idle
// connections first and never finds one closed under it; the others are
// far above what Postfix needs, as it connects only to send a request
// and writes each request, a few hundred bytes, at once.
const (
	idleTimeout         = 330 * time.Second // between requests
	firstRequestTimeout = 10 * time.Second  // from accept to the first request's first byte
	requestTimeout      = 10 * time.Second  // from a request's first byte to its empty line
	writeTimeout        = 30 * time.Second
)

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	var g *netguard.Listener
	g = netguard.New(ln, netguard.Config{
		Name:          "policyd " + ln.Addr().String(),
		MaxConns:      s.maxConns,
		MaxPerPeer:    s.MaxPerPeer,
		PerPeerExempt: s.exempt(),
		Evict:         func() bool { return s.evictIdle(g) },
		Log:           s.log,
	})
	s.mu.Lock()
	s.listeners = append(s.listeners, g)
	s.mu.Unlock()
	for {
		conn, err := g.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			return fmt.Errorf("policyd: accept: %w", err)
		}
		st := &connState{ln: g, accepted: time.Now()}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		s.conns[conn] = st
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				conn.Close()
				s.wg.Done()
			}()
			s.serveConn(conn, st)
		}()
	}
}

// exempt are the peers MaxPerPeer does not count: loopback.
func (s *Server) exempt() []netip.Prefix {
	if s.countLoopback {
		return nil
	}
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// evictIdle closes the connection of g that has waited longest for a
// request: one that never sent any, oldest first, else the least
// recently answered. It reports whether it closed one. A scan of at most
// maxConns entries, done only when g is full or out of descriptors.
func (s *Server) evictIdle(g *netguard.Listener) bool {
	s.mu.Lock()
	var victim net.Conn
	var best *connState
	for c, st := range s.conns {
		if st.ln != g || st.busy {
			continue
		}
		if best == nil || evictFirst(st, best) {
			victim, best = c, st
		}
	}
	if victim == nil {
		s.mu.Unlock()
		return false
	}
	best.busy = true // not chosen twice
	now := time.Now()
	s.evictLog.since++
	logIt := now.Sub(s.evictLog.last) >= time.Minute
	n := s.evictLog.since
	if logIt {
		s.evictLog.last, s.evictLog.since = now, 0
	}
	s.mu.Unlock()
	if logIt {
		s.log.Warn("policy connections full, or out of file descriptors: closing those idle longest", "listener", g.Addr().String(),
			"closed", n, "oldest_client", victim.RemoteAddr().String(), "connected", now.Sub(best.accepted).Round(time.Second).String(),
			"had_requests", !best.lastDone.IsZero())
	}
	victim.Close()
	return true
}

// evictFirst orders idle connections for eviction.
func evictFirst(a, b *connState) bool {
	if a.lastDone.IsZero() != b.lastDone.IsZero() {
		return a.lastDone.IsZero()
	}
	if a.lastDone.IsZero() {
		return a.accepted.Before(b.accepted)
	}
	return a.lastDone.Before(b.lastDone)
}

// serveConn answers requests on one connection. Postfix sends several
// requests per connection, one per recipient among them; SPF is decided
// once a message (same "instance"): later recipients get DUNNO after a
// PREPEND, so the header is added once, or the same rejection.
// Greylisting is per recipient (each is a triplet): a greylisted one gets
// DEFER_IF_PERMIT, and the header goes with the first that is not.
func (s *Server) serveConn(conn net.Conn, st *connState) {
	r := NewReader(conn)
	w := bufio.NewWriter(conn)
	var lastInstance string
	var last Response
	headerSent := false
	wait, reqWait := firstRequestTimeout, requestTimeout
	if s.firstWait > 0 {
		wait = s.firstWait
	}
	if s.requestWait > 0 {
		reqWait = s.requestWait
	}
	for {
		conn.SetReadDeadline(time.Now().Add(wait))
		wait = idleTimeout
		// After setting the deadline: Shutdown sets closing before it
		// cuts the deadlines short, so one of the two always wins.
		if s.closing.Load() {
			return
		}
		// Wait for the request's first byte as an idle connection, then
		// give the whole request requestTimeout.
		if _, err := r.Peek(1); err != nil {
			s.connEnded(conn, err, st.lastDone.IsZero())
			return
		}
		s.mu.Lock()
		if st.busy { // chosen for eviction as the request came
			s.mu.Unlock()
			return
		}
		st.busy = true
		s.mu.Unlock()
		conn.SetReadDeadline(time.Now().Add(reqWait))
		req, err := ReadRequest(r)
		if err != nil && !errors.Is(err, ErrMalformed) {
			s.connEnded(conn, err, false)
			return
		}
		s.requests.Add(1)
		var (
			resp Response
			// a refusal to record after the answer (recordRefusal)
			recordReq   Request
			recordResp  Response
			recordStage string
		)
		if err != nil {
			s.malformed.Add(1)
			s.log.Warn("malformed policy request: DUNNO", "client", conn.RemoteAddr().String(), "err", err)
			resp = Response{Action: Dunno}
		} else {
			start := time.Now()
			ru := s.rules.Load()
			inst := req["instance"]
			same := inst != "" && inst == lastInstance
			if !same {
				last = s.safeDecide(ru, req)
				lastInstance, headerSent = inst, false
				s.logDecision(req, last)
			}
			resp = last
			var wait time.Duration
			grey, listed := Response{}, false
			if req["sasl_username"] == "" {
				grey, listed = s.listRcpt(s.listSet(), last, req)
			}
			greylisted := false
			if !listed {
				grey, wait, greylisted = s.greylistStep(ru, last, req)
			}
			if listed && grey.Action != Prepend {
				resp = grey
			} else if greylisted {
				resp = grey
			} else if resp.Action == Prepend {
				if headerSent {
					resp = Response{Action: Dunno}
				}
				headerSent = true
			}
			if !same && ru.opts.Observe != nil {
				ru.opts.Observe(resp, time.Since(start))
			}
			if resp.Action == Reject || resp.Action == Defer {
				stage := last.stage()
				if listed && grey.Action != Prepend {
					stage = "lists"
				} else if greylisted {
					stage = "greylist"
				}
				// Recorded once the answer is written: Postfix waits
				// for nothing of it.
				recordReq, recordResp, recordStage = req, resp, stage
			}
			s.tarpit(wait)
			s.debugFinal(req, resp)
		}
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		w.WriteString(resp.Line())
		w.WriteString("\n\n")
		if err := w.Flush(); err != nil {
			return
		}
		if recordReq != nil {
			s.recordRefusal(recordReq, recordResp, recordStage)
			recordReq = nil
		}
		s.mu.Lock()
		st.busy, st.lastDone = false, time.Now()
		s.mu.Unlock()
	}
}

// connEnded logs why a connection ended, unless it was the client's
// clean close or our shutdown. silent says it never sent a request.
func (s *Server) connEnded(conn net.Conn, err error, silent bool) {
	if errors.Is(err, io.EOF) || s.closing.Load() || errors.Is(err, net.ErrClosed) {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.timeouts.Add(1)
		if silent {
			// Debug: under attack there is one per idle connection.
			s.log.Debug("policy connection closed: no request within the time allowed", "client", conn.RemoteAddr().String())
			return
		}
	}
	s.log.Info("policy connection closed", "client", conn.RemoteAddr().String(), "err", err)
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
				resp = Response{Action: Defer, Text: "4.7.24 temporary failure in the SPF check", failed: true}
			}
		}
	}()
	ctx := context.Background()
	if s.Debug.Active() {
		if ip, err := netip.ParseAddr(req["client_address"]); err == nil {
			if dl := s.Debug.Logger(ip); dl != nil {
				dl.Info("debug: policy request", "request", debugRequest(req))
				ctx = debuglog.With(ctx, dl)
				defer func() {
					dl.Info("debug: policy checks", "action", string(resp.Action), "text", resp.Text, "stage", resp.stage())
				}()
			}
		}
	}
	return s.decide(ctx, ru, req)
}

// Decide answers one request as the first of its message, without a
// connection: for a receiver that plays Postfix's part in-process (the
// lab's MX). Greylisting is not applied, and only the blocklists log
// (the receiver logs the rest).
func (s *Server) Decide(req Request) Response {
	return s.safeDecide(s.rules.Load(), req)
}

func (s *Server) logDecision(req Request, resp Response) {
	if resp.blocklisted || resp.listHit || !s.log.Enabled(context.Background(), slog.LevelInfo) {
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
	// Timeouts are connections closed for taking too long: to send a
	// request, to finish one, or idle past idleTimeout.
	Timeouts uint64
	// Open, Evicted, AcceptErrors and PerPeerRefused sum the listeners'
	// netguard counters: connections open, idle ones closed for a new
	// one, accept errors retried (EMFILE...), connections refused over
	// MaxPerPeer.
	Open                                  int
	Evicted, AcceptErrors, PerPeerRefused uint64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := Stats{Requests: s.requests.Load(), Malformed: s.malformed.Load(), InternalErrors: s.internalErrors.Load(), Timeouts: s.timeouts.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		g := l.Stats()
		st.Open += g.Open
		st.Evicted += g.Evicted
		st.AcceptErrors += g.TemporaryErrors
		st.PerPeerRefused += g.PerPeerRefused
	}
	return st
}

// Shutdown stops accepting, lets open connections finish their current
// request until ctx ends, then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
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
	// Then the greylist's deferred triplets still waiting are written
	// (SetGreylist).
	defer func() {
		if g := s.grey.Load(); g != nil {
			g.Close()
		}
	}()
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
