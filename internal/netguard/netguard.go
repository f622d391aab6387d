// Package netguard wraps a net.Listener so that running out of file
// descriptors, or a stranger opening many connections, cannot stop a
// server from accepting the connections it is there for.
//
// Accept on the wrapped listener:
//   - treats EMFILE, ENFILE, ENOBUFS, ENOMEM and ECONNABORTED (and any
//     net.Error that says it is a timeout) as temporary: it waits, 5 ms
//     doubling to 1 s as net/http's Server.Serve does, and tries again,
//     instead of returning an error that would end the accept loop and,
//     in a daemon, the daemon. Out of descriptors, it first asks Evict
//     (below) to free one, once per pause. An episode is counted in
//     Stats, and logged when it starts and when it ends, but at most one
//     episode per LogEvery (10 s): under a sustained flood each eviction
//     ends an episode, and logging each would write two lines per
//     connection. The next episode logged says how many went unlogged;
//   - keeps at most MaxConns connections open: a connection accepted at
//     the limit first has Evict asked to close one (a server can give
//     up an idle connection for a new one), and otherwise waits, held,
//     for one to close, while later newcomers wait in the kernel's
//     accept queue;
//   - closes at once a connection from a peer address that already has
//     MaxPerPeer open, unless the address is in PerPeerExempt (Postfix's
//     smtpd processes all connect from one address, usually loopback: a
//     per-peer limit must not count them).
//
// A connection's slot is given back when it is closed, once, however
// often Close is called.
package netguard

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Backoff bounds for temporary accept errors, as net/http's Server.Serve.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// LogEvery is the least time between two logged temporary-error
// episodes of one listener.
const LogEvery = 10 * time.Second

// Config says what a Listener allows. The zero value limits nothing but
// still survives temporary accept errors.
type Config struct {
	// Name names the listener in logs ("policyd inet:127.0.0.1:10045").
	Name string
	// MaxConns bounds the connections open at once through this
	// listener; 0 is no limit.
	MaxConns int
	// MaxPerPeer bounds the connections open at once from one IP
	// address; more are closed as soon as they are accepted. 0 is no
	// limit. Unix-socket peers have no address and are not counted.
	MaxPerPeer int
	// PerPeerExempt are peer addresses MaxPerPeer does not apply to.
	PerPeerExempt []netip.Prefix
	// Evict, when set, is called when Accept cannot take a connection:
	// MaxConns are open, or the process is out of file descriptors. It
	// returns true if it closed a connection (the caller's own choice,
	// e.g. the one idle longest), and Accept then tries again at once.
	// It must not call Accept or Close on the Listener.
	Evict func() bool
	// Log hears the start and end of a temporary-error episode and
	// per-peer refusals (once per episode too). Nil is slog.Default().
	Log *slog.Logger
}

// Stats are a listener's counters.
type Stats struct {
	Open            int    // connections accepted and not yet closed
	Accepted        uint64 // connections handed to the caller
	TemporaryErrors uint64 // accept errors retried (EMFILE, ...)
	PerPeerRefused  uint64 // connections closed for MaxPerPeer
	Evicted         uint64 // times Evict closed a connection
	FullWaits       uint64 // times Accept waited at MaxConns
}

// Add returns the sum of s and o: the counters of a server's listeners
// together.
func (s Stats) Add(o Stats) Stats {
	return Stats{Open: s.Open + o.Open, Accepted: s.Accepted + o.Accepted, TemporaryErrors: s.TemporaryErrors + o.TemporaryErrors,
		PerPeerRefused: s.PerPeerRefused + o.PerPeerRefused, Evicted: s.Evicted + o.Evicted, FullWaits: s.FullWaits + o.FullWaits}
}

// Listener is a guarded net.Listener. Its Accept returns only
// connections within the limits, and an error only when the underlying
// listener fails for good (closed, or an error not known as temporary).
type Listener struct {
	net.Listener
	cfg   Config
	log   *slog.Logger
	slots chan struct{} // nil when MaxConns is 0
	done  chan struct{}
	once  sync.Once

	mu      sync.Mutex
	perPeer map[netip.Addr]int
	// refusing is set while per-peer refusals go unlogged; it is
	// cleared when a connection from that peer is accepted again.
	refusing map[netip.Addr]bool

	open                                                     atomic.Int64
	accepted, tempErrors, perPeerRefused, evicted, fullWaits atomic.Uint64

	// Episode logging, rate-limited (logEpisode): when one was last
	// logged, the episodes begun since, and the error and eviction
	// totals then.
	logEvery            time.Duration // LogEvery; tests shorten it
	logMu               sync.Mutex
	lastLog             time.Time
	episodesSince       uint64
	errorsAt, evictedAt uint64
}

// New wraps ln.
func New(ln net.Listener, cfg Config) *Listener {
	l := &Listener{Listener: ln, cfg: cfg, log: cfg.Log, done: make(chan struct{}),
		perPeer: map[netip.Addr]int{}, refusing: map[netip.Addr]bool{}, logEvery: LogEvery}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.cfg.Name == "" {
		l.cfg.Name = ln.Addr().String()
	}
	if cfg.MaxConns > 0 {
		l.slots = make(chan struct{}, cfg.MaxConns)
	}
	return l
}

// Close closes the underlying listener and wakes an Accept waiting for a
// slot or backing off.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	return Stats{Open: int(l.open.Load()), Accepted: l.accepted.Load(), TemporaryErrors: l.tempErrors.Load(),
		PerPeerRefused: l.perPeerRefused.Load(), Evicted: l.evicted.Load(), FullWaits: l.fullWaits.Load()}
}

// Accept waits for a connection within the limits.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	var episode int // temporary errors in a row
	var episodeStart time.Time
	logged := false  // this episode has been logged, so its end will be
	evicted := false // the last retry followed an eviction
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !Temporary(err) {
				return nil, err
			}
			l.tempErrors.Add(1)
			if episode == 0 {
				episodeStart = time.Now()
			}
			// An episode not logged at its start is logged by a later
			// error of it once LogEvery has passed: a long one shows.
			if !logged {
				logged = l.logEpisode(err, episode == 0)
			}
			episode++
			// One eviction per pause at most: if the descriptor freed
			// went elsewhere (another listener, a file), evicting again
			// at once would empty this server's idle connections for
			// someone else's flood.
			if !evicted && isFDShortage(err) && l.cfg.Evict != nil && l.cfg.Evict() {
				l.evicted.Add(1)
				evicted = true
				continue
			}
			evicted = false
			if delay == 0 {
				delay = minBackoff
			} else if delay *= 2; delay > maxBackoff {
				delay = maxBackoff
			}
			if !l.sleep(delay) {
				return nil, net.ErrClosed
			}
			continue
		}
		if episode > 0 {
			if logged {
				l.log.Info("accepting again", "listener", l.cfg.Name, "errors", episode, "after", time.Since(episodeStart).Round(time.Millisecond).String())
			}
			episode, delay, logged = 0, 0, false
		}
		peer, counted := l.peerOf(c)
		if counted && !l.addPeer(peer) {
			c.Close()
			continue
		}
		// The slot is taken after the accept, so a full listener evicts
		// only for a connection that is really there. While it waits,
		// this one connection is held beyond MaxConns; the rest wait in
		// the kernel's queue.
		if err := l.takeSlot(); err != nil {
			l.dropPeer(peer, counted)
			c.Close()
			return nil, err
		}
		l.open.Add(1)
		l.accepted.Add(1)
		return &conn{Conn: c, l: l, peer: peer, counted: counted}, nil
	}
}

// logEpisode logs a temporary accept error of an episode (begun: its
// first) unless another was logged less than logEvery ago, and reports
// whether it did. A log after quiet ones says what they hid: episodes
// begun, errors and evictions since the last log.
func (l *Listener) logEpisode(err error, begun bool) bool {
	l.logMu.Lock()
	defer l.logMu.Unlock()
	if begun {
		l.episodesSince++
	}
	now := time.Now()
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < l.logEvery {
		return false
	}
	errs, evicted := l.tempErrors.Load(), l.evicted.Load()
	args := []any{"listener", l.cfg.Name, "err", err}
	if !l.lastLog.IsZero() {
		args = append(args, "since_last_log", now.Sub(l.lastLog).Round(time.Second).String(),
			"episodes", l.episodesSince, "errors", errs-l.errorsAt, "evicted", evicted-l.evictedAt)
	}
	l.log.Warn("accept failed, retrying", args...)
	l.lastLog, l.episodesSince, l.errorsAt, l.evictedAt = now, 0, errs, evicted
	return true
}

// takeSlot waits for one of MaxConns, asking Evict first.
func (l *Listener) takeSlot() error {
	if l.slots == nil {
		return nil
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	l.fullWaits.Add(1)
	if l.cfg.Evict != nil && l.cfg.Evict() {
		l.evicted.Add(1)
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

func (l *Listener) giveSlot() {
	if l.slots != nil {
		<-l.slots
	}
}

func (l *Listener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// peerOf returns c's peer address and whether MaxPerPeer counts it.
func (l *Listener) peerOf(c net.Conn) (netip.Addr, bool) {
	if l.cfg.MaxPerPeer <= 0 {
		return netip.Addr{}, false
	}
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	a := ta.AddrPort().Addr().Unmap()
	for _, p := range l.cfg.PerPeerExempt {
		if p.Contains(a) {
			return a, false
		}
	}
	return a, true
}

// addPeer counts a connection from a, or refuses it past MaxPerPeer.
func (l *Listener) addPeer(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perPeer[a] >= l.cfg.MaxPerPeer {
		l.perPeerRefused.Add(1)
		if !l.refusing[a] {
			l.refusing[a] = true
			l.log.Warn("too many connections from one address: closing new ones", "listener", l.cfg.Name, "peer", a.String(), "max_per_peer", l.cfg.MaxPerPeer)
		}
		return false
	}
	l.perPeer[a]++
	delete(l.refusing, a)
	return true
}

func (l *Listener) release(c *conn) {
	l.dropPeer(c.peer, c.counted)
	l.open.Add(-1)
	l.giveSlot()
}

// dropPeer uncounts a connection from a.
func (l *Listener) dropPeer(a netip.Addr, counted bool) {
	if !counted {
		return
	}
	l.mu.Lock()
	if l.perPeer[a]--; l.perPeer[a] <= 0 {
		delete(l.perPeer, a)
		delete(l.refusing, a) // so the map holds only peers with connections open
	}
	l.mu.Unlock()
}

// conn gives its slot back on the first Close.
type conn struct {
	net.Conn
	l       *Listener
	peer    netip.Addr
	counted bool
	closed  atomic.Bool
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c)
	}
	return err
}

// Unwrap returns the connection as the underlying listener accepted it
// (a *net.TCPConn or *net.UnixConn), for callers that need its type.
func (c *conn) Unwrap() net.Conn { return c.Conn }

// Temporary reports whether an accept error is worth retrying: the
// process or system is out of file descriptors or buffers, a client
// gave up before it was accepted, or the listener says it timed out.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	if isFDShortage(err) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EPROTO) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isFDShortage is EMFILE and its kin: an fd or kernel memory is missing,
// which closing a connection can give back.
func isFDShortage(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}
