package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailwall/internal/netguard"
)

// Response is a filter's answer to one stage.
type Response struct {
	code byte
	text string // for replyReplyCode: "550 5.7.1 text"
}

// The answers.
var (
	Continue = Response{code: replyContinue}
	Accept   = Response{code: replyAccept}
	Discard  = Response{code: replyDiscard}
	Reject   = Response{code: replyReject}
	TempFail = Response{code: replyTempFail}
)

// ReplyCode rejects or defers with an SMTP reply of our own, such as
// "554 5.7.1 <name>: Helo command rejected: Access denied".
func ReplyCode(reply string) Response {
	reply = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, reply)
	return Response{code: replyReplyCode, text: reply}
}

// Final reports whether the response ends the message (or connection) for
// the filter: anything but Continue.
func (r Response) Final() bool { return r.code != replyContinue }

func (r Response) String() string {
	switch r.code {
	case replyContinue:
		return "continue"
	case replyAccept:
		return "accept"
	case replyDiscard:
		return "discard"
	case replyReject:
		return "reject"
	case replyTempFail:
		return "tempfail"
	case replyReplyCode:
		return "reply " + r.text
	}
	return fmt.Sprintf("response %q", r.code)
}

// Macros are the values the MTA sent, kept per stage: a stage's macro
// command replaces what that stage sent before (as libmilter does), and a
// later stage's value of a name hides an earlier stage's. Those of the
// connection and HELO stages last for the connection, the others for the
// message.
type Macros struct {
	stages [macroStages][]macro
	size   int // octets of names and values kept, over all stages
}

type macro struct{ name, value string }

// Stages' places in Macros, in protocol order; macroOther holds stages
// this package does not know.
const (
	macroConnect = iota
	macroHelo
	macroMail
	macroRcpt
	macroData
	macroEOH
	macroEOM
	macroOther
	macroStages
)

// MaxMacroBytes bounds the macros a connection keeps, names and values
// over all stages; what would pass it is dropped. Postfix sends a few
// hundred octets a stage.
const MaxMacroBytes = 64 << 10

// Get returns a macro by name, with or without braces: "j", "{auth_authen}".
func (m *Macros) Get(name string) string {
	name = macroName(name)
	for i := len(m.stages) - 1; i >= 0; i-- {
		for _, kv := range m.stages[i] {
			if kv.name == name {
				return kv.value
			}
		}
	}
	return ""
}

func macroName(name string) string {
	return strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}")
}

func macroStage(stage byte) int {
	switch stage {
	case cmdConnect:
		return macroConnect
	case cmdHelo:
		return macroHelo
	case cmdMail:
		return macroMail
	case cmdRcpt:
		return macroRcpt
	case cmdData:
		return macroData
	case cmdEOH:
		return macroEOH
	case cmdEOB:
		return macroEOM
	}
	return macroOther
}

// set replaces a stage's macros with those in data (NUL-terminated names
// and values), keeping only the names in keep (all when keep is nil; its
// values are the names' strings, kept without a copy each) and no more
// than MaxMacroBytes in all. It reports whether any was dropped for the
// size. A value another stage holds already (the queue ID, sent at every
// stage of a message) shares that one's string.
func (m *Macros) set(stage byte, data []byte, keep map[string]string) (dropped bool) {
	i := macroStage(stage)
	for _, kv := range m.stages[i] {
		m.size -= len(kv.name) + len(kv.value)
	}
	old := m.stages[i]
	kept := old[:0]
	for len(data) > 0 {
		name, rest, ok := bytes.Cut(data, []byte{0})
		if !ok {
			break // a name without its value
		}
		value, rest, _ := bytes.Cut(rest, []byte{0})
		data = rest
		name = bytes.TrimSuffix(bytes.TrimPrefix(name, []byte("{")), []byte("}"))
		var sname string
		if keep != nil {
			k, ok := keep[string(name)] // no allocation: map lookup by string(bytes)
			if !ok {
				continue
			}
			sname = k
		}
		if m.size+len(name)+len(value) > MaxMacroBytes {
			dropped = true
			continue
		}
		m.size += len(name) + len(value)
		if keep == nil {
			sname = string(name)
		}
		kept = append(kept, macro{sname, m.value(i, sname, value)})
	}
	if len(kept) < len(old) {
		clear(old[len(kept):]) // let go of the values replaced
	}
	m.stages[i] = kept
	return dropped
}

// value is value as a string: that of the same macro in another stage
// than skip when it is the same, else a copy.
func (m *Macros) value(skip int, name string, value []byte) string {
	for i := range m.stages {
		if i == skip {
			continue
		}
		for _, kv := range m.stages[i] {
			if kv.name == name && kv.value == string(value) {
				return kv.value
			}
		}
	}
	return string(value)
}

// endMessage forgets the message's macros; the connection's stay.
func (m *Macros) endMessage() {
	for i := macroMail; i < macroStages; i++ {
		for _, kv := range m.stages[i] {
			m.size -= len(kv.name) + len(kv.value)
		}
		clear(m.stages[i])
		m.stages[i] = m.stages[i][:0]
	}
}

// reset forgets every macro, keeping the room.
func (m *Macros) reset() {
	for i := range m.stages {
		clear(m.stages[i])
		m.stages[i] = m.stages[i][:0]
	}
	m.size = 0
}

// Modifier collects the changes a filter makes at end of message. It is
// valid only during the filter's EndOfMessage.
type Modifier struct {
	actions uint32
	// out holds the changes as packets, as they go on the wire: the
	// reply joins them and all leave in one write.
	out []byte
}

// maxKeptMods bounds the room a session keeps for its next message's
// changes; a few header fields take a few hundred octets.
const maxKeptMods = 16 << 10

// indexed is a change's header index as the packet carries it.
func indexed(index uint32) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], index)
	return b
}

// ErrNotNegotiated is returned for a change the MTA did not allow.
var ErrNotNegotiated = errors.New("milter: action not negotiated with the MTA")

// InsertHeader inserts a header field at index (0: the top).
func (m *Modifier) InsertHeader(index uint32, name, value string) error {
	if m.actions&ActAddHeader == 0 {
		return ErrNotNegotiated
	}
	ix := indexed(index)
	m.out = appendPacket(m.out, replyInsHeader, ix[:], name, value)
	return nil
}

// AddHeader appends a header field.
func (m *Modifier) AddHeader(name, value string) error {
	if m.actions&ActAddHeader == 0 {
		return ErrNotNegotiated
	}
	m.out = appendPacket(m.out, replyAddHeader, nil, name, value)
	return nil
}

// DeleteHeader removes the index-th (from 1) field of that name.
func (m *Modifier) DeleteHeader(index uint32, name string) error {
	if m.actions&ActChangeHeader == 0 {
		return ErrNotNegotiated
	}
	ix := indexed(index)
	m.out = appendPacket(m.out, replyChgHeader, ix[:], name, "")
	return nil
}

// ChangeHeader replaces the index-th (from 1) field of that name.
func (m *Modifier) ChangeHeader(index uint32, name, value string) error {
	if m.actions&ActChangeHeader == 0 {
		return ErrNotNegotiated
	}
	ix := indexed(index)
	m.out = appendPacket(m.out, replyChgHeader, ix[:], name, value)
	return nil
}

// Quarantine puts the message on hold (Postfix: the hold queue).
func (m *Modifier) Quarantine(reason string) error {
	if m.actions&ActQuarantine == 0 {
		return ErrNotNegotiated
	}
	m.out = appendPacket(m.out, replyQuarantine, nil, reason)
	return nil
}

// Conn describes the SMTP client, from SMFIC_CONNECT.
type Conn struct {
	Hostname string     // the MTA's name for the client ("unknown" when none)
	Family   string     // "4", "6", "unix" or "unknown"
	Addr     netip.Addr // zero for unix and unknown
	Port     uint16
}

// Filter handles one SMTP connection's stages. Methods are called in
// protocol order from one goroutine. The *Macros and *Modifier they get
// are valid only during the call: the server reuses them.
type Filter interface {
	Connect(c Conn, m *Macros) Response
	Helo(name string, m *Macros) Response
	MailFrom(from string, args []string, m *Macros) Response
	RcptTo(rcpt string, args []string, m *Macros) Response
	Header(name, value string) Response
	EndOfHeaders(m *Macros) Response
	// Body gets the next piece of the body; chunk is only valid during
	// the call.
	Body(chunk []byte) Response
	EndOfMessage(m *Macros, mod *Modifier) Response
	// Abort ends the current message early; the connection goes on.
	Abort()
	// Close ends the connection.
	Close()
}

// AfterReply is implemented by filters with end-of-message work the MTA
// need not wait for, such as logging and recording the verdict: the
// server calls EndOfMessageSent once the reply to end of message is
// written (or has failed to be), before it reads the next command.
type AfterReply interface {
	EndOfMessageSent()
}

// NoReplier is implemented by filters that know, when their connection
// starts, at which stages they will always continue: its answer stands
// for Server.NoReply on that connection. A filter made for a connection
// reused after QUITNC keeps the stages negotiated first.
type NoReplier interface {
	NoReply() uint32
}

// Server accepts MTA connections.
type Server struct {
	// NewFilter makes a Filter per connection.
	NewFilter func() Filter
	// Actions are the changes the filters need (ActAddHeader ...).
	Actions uint32
	// NoReply asks the MTA not to wait for answers at these stages
	// (ProtoNRConn, ProtoNRMail, ...), saving a round trip each, for
	// filters that always continue there.
	NoReply uint32
	// OnError answers when a filter panics: TempFail by default, as
	// Postfix's milter_default_action = tempfail would.
	OnError *Response
	Log     *slog.Logger
	// MacroNames are the macros the filters read, with or without
	// braces ("i", "{auth_authen}"): the MTA's others are not kept.
	// Empty keeps all, up to MaxMacroBytes a connection.
	MacroNames []string
	// HandshakeTimeout bounds the wait for the MTA's option negotiation
	// once it has connected; default 10 seconds. Postfix sends it at
	// once.
	HandshakeTimeout time.Duration
	// IdleTimeout bounds waiting for the MTA's next command, and for it
	// to take a reply; default 10 minutes. Postfix holds its milter
	// connection while its SMTP client is slow (smtpd_timeout, 300 s a
	// command) and waits up to milter_content_timeout (300 s) itself, so
	// this stays above both.
	IdleTimeout time.Duration
	// MaxConns bounds the connections open at once through each
	// listener (default DefaultMaxConns): past it a newcomer, or an
	// Accept out of file descriptors, takes the place of the oldest
	// connection that has not negotiated yet, or else waits in the
	// kernel's queue. MaxConnsPerPeer bounds those from one IP address
	// (default DefaultMaxConnsPerPeer; unix sockets are not counted):
	// more are closed at once, and Postfix applies its
	// milter_default_action to that SMTP session. Negative: no limit.
	MaxConns, MaxConnsPerPeer int

	// buffers recycles sessions, with their readers, writers, packet
	// buffers and the room for macros and changes: a session per SMTP
	// connection made them a good share of the garbage.
	buffers sync.Pool

	keepMacros map[string]string // MacroNames, without braces, to themselves; nil: all

	mu        sync.Mutex
	listeners []net.Listener
	// conns are the connections open.
	conns   map[net.Conn]connState
	wg      sync.WaitGroup
	closing atomic.Bool
	// idle are the goroutines that have served a connection and wait,
	// up to WorkerIdle, to be handed the next one; the last to finish
	// is handed first. A new goroutine starts on a small stack and grows
	// it, copying, on the way down to RSA verification: with a new one
	// per session that was 6% of the CPU per small message in a profile
	// of the benchmark.
	idle    []chan net.Conn
	done    chan struct{} // closed by Shutdown: idle goroutines end
	workers atomic.Uint64 // goroutines started to serve connections
	idleFor time.Duration // WorkerIdle, unless set (tests)

	sessions, panics, evicted atomic.Uint64
}

// Defaults for Server's limits.
const (
	DefaultMaxConns         = 2048
	DefaultMaxConnsPerPeer  = 1024
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 10 * time.Minute
)

// limit is a configured limit, its default when zero, none when negative.
func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0 // netguard: no limit
	}
	return v
}

// Serve accepts connections on ln until Shutdown. Running out of file
// descriptors does not end it: it waits and tries again (netguard).
func (s *Server) Serve(ln net.Listener) error {
	var gl *netguard.Listener
	gl = netguard.New(ln, netguard.Config{Name: "milter " + ln.Addr().String(), MaxConns: limit(s.MaxConns, DefaultMaxConns),
		MaxPerPeer: limit(s.MaxConnsPerPeer, DefaultMaxConnsPerPeer), Evict: func() bool { return s.evictUnnegotiated(gl) }, Log: s.log()})
	s.mu.Lock()
	s.listeners = append(s.listeners, gl)
	if s.conns == nil {
		s.conns = map[net.Conn]connState{}
		s.done = make(chan struct{})
		if s.closing.Load() {
			close(s.done)
		}
		if len(s.MacroNames) > 0 {
			s.keepMacros = map[string]string{}
			for _, n := range s.MacroNames {
				s.keepMacros[macroName(n)] = macroName(n)
			}
		}
	}
	closing := s.closing.Load()
	s.mu.Unlock()
	if closing {
		gl.Close()
		return nil
	}
	for {
		c, err := gl.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			return fmt.Errorf("milter: accept: %w", err)
		}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = connState{ln: gl, accepted: time.Now()}
		if n := len(s.idle); n > 0 {
			next := s.idle[n-1]
			s.idle = s.idle[:n-1]
			next <- c
			s.mu.Unlock()
			continue
		}
		s.wg.Add(1) // before Shutdown can Wait
		s.mu.Unlock()
		s.workers.Add(1)
		go s.work(c)
	}
}

// connState is what the server knows of an open connection.
type connState struct {
	ln net.Listener // it came through
	// accepted is when, while it has not negotiated; zero after (or
	// once evicted).
	accepted time.Time
}

// evictUnnegotiated closes the connection through ln that has waited
// longest without negotiating, for a newcomer when ln is full or file
// descriptors run out: an MTA negotiates at once, so that one is the
// least likely to be one.
func (s *Server) evictUnnegotiated(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest net.Conn
	var since time.Time
	for c, st := range s.conns {
		if st.ln == ln && !st.accepted.IsZero() && (oldest == nil || st.accepted.Before(since)) {
			oldest, since = c, st.accepted
		}
	}
	if oldest == nil {
		return false
	}
	s.conns[oldest] = connState{ln: ln} // evicted once
	s.evicted.Add(1)
	oldest.Close()
	return true
}

// negotiated marks c as past its handshake: no longer the first to go.
func (s *Server) negotiated(c net.Conn) {
	s.mu.Lock()
	if st, ok := s.conns[c]; ok {
		s.conns[c] = connState{ln: st.ln}
	}
	s.mu.Unlock()
}

// WorkerIdle is how long a goroutine waits for another connection after
// serving one. After a burst, the goroutines beyond what the sessions
// still open need stay this long before they end.
const WorkerIdle = 10 * time.Second

// idleWait is WorkerIdle, or idleFor when a test sets it.
func (s *Server) idleWait() time.Duration {
	if s.idleFor > 0 {
		return s.idleFor
	}
	return WorkerIdle
}

// work serves c, then the connections handed to it on s.idle until none
// comes within WorkerIdle or the server shuts down.
func (s *Server) work(c net.Conn) {
	defer s.wg.Done()
	next := make(chan net.Conn, 1) // Serve sends under s.mu: never blocks
	var wait *time.Timer
	for {
		s.serve(c)
		s.mu.Lock()
		delete(s.conns, c)
		if s.closing.Load() {
			s.mu.Unlock()
			return
		}
		s.idle = append(s.idle, next)
		s.mu.Unlock()
		if wait == nil {
			wait = time.NewTimer(s.idleWait())
		} else {
			wait.Reset(s.idleWait())
		}
		select {
		case c = <-next:
			continue
		case <-s.done:
			return // Shutdown closes any connection handed over since
		case <-wait.C:
		}
		s.mu.Lock()
		i := slices.Index(s.idle, next)
		if i >= 0 {
			s.idle = slices.Delete(s.idle, i, i+1)
		}
		s.mu.Unlock()
		if i >= 0 {
			return
		}
		c = <-next // handed one as the wait ended
	}
}

// Shutdown stops accepting and closes open connections; the MTA applies
// its milter_default_action to messages in flight.
func (s *Server) Shutdown() {
	s.mu.Lock()
	if s.done != nil && !s.closing.Load() {
		close(s.done)
	}
	s.closing.Store(true)
	for _, l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// wanted are the protocol flags asked of the MTA: no unknown commands, no
// DATA stage, no replies per header or body chunk (fewer round trips),
// header values with their leading space (DKIM's simple canonicalization
// needs the bytes as sent).
const wanted = ProtoNoUnknown | ProtoNoData | ProtoNRHeader | ProtoNRBody | ProtoHeaderSpace

type session struct {
	s        *Server
	conn     net.Conn
	r        *packetReader
	w        *bufio.Writer
	f        Filter
	macros   Macros
	actions  uint32
	protocol uint32
	done     bool // the filter gave a final answer for this message
	// replied: the end-of-message reply is being written; the filter's
	// EndOfMessageSent is due.
	replied bool
	// mod collects the changes at end of message; its room is kept.
	mod Modifier
	// macrosCut: macros were dropped for MaxMacroBytes (logged once).
	macrosCut bool
}

// recycle readies ss, its connection over, for the next: only its
// buffers and their room stay.
func (ss *session) recycle() {
	ss.r.reset(nil)
	ss.w.Reset(nil)
	out := ss.mod.out[:0]
	if cap(out) > maxKeptMods {
		out = nil
	}
	ss.macros.reset()
	*ss = session{r: ss.r, w: ss.w, mod: Modifier{out: out}, macros: ss.macros}
}

func (s *Server) serve(c net.Conn) {
	s.sessions.Add(1)
	// Small buffers to start with: the reader's grows to a body chunk
	// (up to 64 KB) only for a message with a body that large, and
	// replies are a few octets. 64 KB each was 64 MB of heap at 1,000
	// sessions (mostly untouched, so the peak RSS measured the same
	// either way).
	ss, ok := s.buffers.Get().(*session)
	if ok {
		ss.r.reset(c)
		ss.w.Reset(c)
	} else {
		ss = &session{r: newPacketReader(c), w: bufio.NewWriterSize(c, 1024)}
	}
	ss.s, ss.conn = s, c
	defer func() {
		ss.recycle()
		s.buffers.Put(ss)
	}()
	defer c.Close()
	defer func() {
		if ss.f != nil {
			ss.f.Close()
		}
	}()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	handshake := s.HandshakeTimeout
	if handshake <= 0 {
		handshake = DefaultHandshakeTimeout
	}
	// Until the MTA negotiates, the deadline does not move: packets
	// allowed before negotiation (macros, abort) cannot hold the
	// connection open.
	c.SetDeadline(time.Now().Add(handshake))
	// Once negotiated, the deadline moves before each wait on the MTA:
	// a read the buffer cannot answer, and the write of a reply (an MTA
	// that stops taking them gives the connection up too). Moving it is
	// a timer's update, and reading the clock for each of a small
	// message's 30 packets cost more than the rest of their reading; so
	// it moves only at those waits, and only once idle/64 has passed
	// since it last did, and then to idle+idle/64 ahead: each wait still
	// has at least idle, and at most idle/64 more.
	var moved time.Time
	slack := idle / 64
	refresh := func() {
		if ss.f == nil {
			return
		}
		if now := time.Now(); moved.IsZero() || now.Sub(moved) >= slack {
			c.SetDeadline(now.Add(idle + slack))
			moved = now
		}
	}
	for {
		if !ss.r.ready() {
			refresh()
		}
		p, err := ss.r.read()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF) || s.closing.Load():
			case ss.f == nil:
				// Never negotiated: a port scan, or a connection evicted
				// or timed out in a flood. Not worth a warning each.
				s.log().Debug("milter connection ended before negotiation", "peer", c.RemoteAddr().String(), "err", err)
			default:
				s.log().Warn("milter connection ended", "peer", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		negotiating := ss.f == nil
		if p.cmd == cmdEOB {
			refresh() // its reply may leave while the filter's changes are written
		}
		quit, err := ss.handle(p)
		if err == nil && ss.w.Buffered() > 0 {
			refresh()
			err = ss.w.Flush()
		}
		if ss.replied {
			ss.replied = false
			ss.afterReply()
		}
		if err != nil {
			s.log().Warn("milter protocol error", "peer", c.RemoteAddr().String(), "err", err)
			return
		}
		if quit {
			return
		}
		if negotiating && ss.f != nil {
			s.negotiated(c)
		}
	}
}

func (ss *session) reply(r Response) error {
	_, err := ss.w.Write(appendReply(ss.w.AvailableBuffer(), r))
	return err
}

// appendReply appends r's packet to b.
func appendReply(b []byte, r Response) []byte {
	if r.code == replyReplyCode {
		return appendPacket(b, r.code, nil, r.text)
	}
	return appendPacket(b, r.code, nil)
}

// call runs a filter method, turning a panic into the OnError answer so a
// bug never drops mail silently.
func (ss *session) call(stage string, fn func() Response) (r Response) {
	defer func() {
		if p := recover(); p != nil {
			ss.s.panics.Add(1)
			r = TempFail
			if ss.s.OnError != nil {
				r = *ss.s.OnError
			}
			ss.s.log().Error("milter filter failed", "stage", stage, "panic", fmt.Sprint(p), "answer", r.String())
		}
	}()
	return fn()
}

// afterReply runs the filter's EndOfMessageSent, if it has one, turning a
// panic into a logged error: the message has had its answer.
func (ss *session) afterReply() {
	a, ok := ss.f.(AfterReply)
	if !ok {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			ss.s.panics.Add(1)
			ss.s.log().Error("milter filter failed after its reply", "stage", "eom", "panic", fmt.Sprint(p))
		}
	}()
	a.EndOfMessageSent()
}

// handle processes one packet; it reports whether the connection ends.
func (ss *session) handle(p packet) (bool, error) {
	switch p.cmd {
	case cmdOptNeg:
		if len(p.data) < 12 {
			return true, errors.New("short option negotiation")
		}
		version := binary.BigEndian.Uint32(p.data[0:4])
		if version < 2 {
			return true, fmt.Errorf("MTA speaks milter version %d, need 2 or later", version)
		}
		ss.actions = binary.BigEndian.Uint32(p.data[4:8]) & ss.s.Actions
		ss.f = ss.s.NewFilter()
		noReply := ss.s.NoReply
		if q, ok := ss.f.(NoReplier); ok {
			noReply = q.NoReply()
		}
		ss.protocol = binary.BigEndian.Uint32(p.data[8:12]) & (wanted | noReply&(ProtoNRConn|ProtoNRHelo|ProtoNRMail|ProtoNRRcpt|ProtoNRData|ProtoNREOH))
		return false, writePacket(ss.w, cmdOptNeg, u32(min(version, Version)), u32(ss.actions), u32(ss.protocol))
	case cmdMacro:
		if len(p.data) > 0 && ss.macros.set(p.data[0], p.data[1:], ss.s.keepMacros) && !ss.macrosCut {
			ss.macrosCut = true
			ss.s.log().Warn("milter macros over the limit: dropped", "peer", ss.conn.RemoteAddr().String(), "limit", MaxMacroBytes)
		}
		return false, nil
	case cmdQuit:
		return true, nil
	case cmdQuitNC:
		// A new SMTP connection follows on this milter connection.
		if ss.f != nil {
			ss.f.Close()
		}
		ss.macros.reset()
		ss.f, ss.done = ss.s.NewFilter(), false
		return false, nil
	case cmdAbort:
		if ss.f != nil {
			ss.f.Abort()
		}
		ss.macros.endMessage()
		ss.done = false
		return false, nil
	}
	if ss.f == nil {
		return true, fmt.Errorf("command %q before option negotiation", p.cmd)
	}
	var r Response
	noReply := false
	switch p.cmd {
	case cmdConnect:
		c, err := parseConnect(p.data)
		if err != nil {
			return true, err
		}
		r = ss.call("connect", func() Response { return ss.f.Connect(c, &ss.macros) })
		noReply = ss.protocol&ProtoNRConn != 0
	case cmdHelo:
		name := strings.Join(cstrings(p.data), "")
		r = ss.call("helo", func() Response { return ss.f.Helo(name, &ss.macros) })
		noReply = ss.protocol&ProtoNRHelo != 0
	case cmdMail:
		args := cstrings(p.data)
		if len(args) == 0 {
			args = []string{""}
		}
		ss.done = false
		r = ss.call("mail", func() Response { return ss.f.MailFrom(args[0], args[1:], &ss.macros) })
		noReply = ss.protocol&ProtoNRMail != 0
	case cmdRcpt:
		args := cstrings(p.data)
		if len(args) == 0 {
			args = []string{""}
		}
		r = ss.call("rcpt", func() Response { return ss.f.RcptTo(args[0], args[1:], &ss.macros) })
		noReply = ss.protocol&ProtoNRRcpt != 0
	case cmdData:
		r, noReply = Continue, ss.protocol&ProtoNRData != 0
	case cmdHeader:
		// After a final answer (such as too many fields) the rest cost
		// nothing but their reading.
		if !ss.done {
			name, value := cpair(p.data)
			r = ss.call("header", func() Response { return ss.f.Header(name, value) })
		}
		noReply = ss.protocol&ProtoNRHeader != 0
	case cmdEOH:
		r = ss.call("eoh", func() Response { return ss.f.EndOfHeaders(&ss.macros) })
		noReply = ss.protocol&ProtoNREOH != 0
	case cmdBody:
		if !ss.done {
			r = ss.call("body", func() Response { return ss.f.Body(p.data) })
		}
		noReply = ss.protocol&ProtoNRBody != 0
	case cmdEOB:
		mod := &ss.mod
		mod.actions, mod.out = ss.actions, mod.out[:0]
		r = ss.call("eom", func() Response { return ss.f.EndOfMessage(&ss.macros, mod) })
		ss.macros.endMessage()
		ss.done, ss.replied = false, true
	case cmdUnknown:
		r, noReply = Continue, ss.protocol&ProtoNRUnknown != 0
	default:
		return true, fmt.Errorf("unknown command %q", p.cmd)
	}
	if r.code == 0 {
		r = Continue
	}
	// A final answer ends the message, except at RCPT: there it refuses
	// that recipient only (libmilter's xxfi_envrcpt) and the MTA goes on
	// with the others, whose header and body the filter must still see.
	if r.Final() && p.cmd != cmdRcpt {
		ss.done = true
	}
	if noReply {
		return false, nil
	}
	if p.cmd == cmdEOB {
		// The changes and the reply in one write, however large: the
		// writer passes what it cannot hold straight to the connection.
		ss.mod.out = appendReply(ss.mod.out, r)
		_, err := ss.w.Write(ss.mod.out)
		return false, err
	}
	return false, ss.reply(r)
}

func parseConnect(b []byte) (Conn, error) {
	i := 0
	for i < len(b) && b[i] != 0 {
		i++
	}
	if i >= len(b)-1 {
		return Conn{}, errors.New("short connect packet")
	}
	c := Conn{Hostname: string(b[:i])}
	fam := b[i+1]
	rest := b[i+2:]
	switch fam {
	case 'U':
		c.Family = "unknown"
		return c, nil
	case 'L':
		c.Family = "unix"
		return c, nil
	case '4', '6':
		c.Family = string(fam)
	default:
		return Conn{}, fmt.Errorf("unknown address family %q", fam)
	}
	if len(rest) < 2 {
		return Conn{}, errors.New("short connect packet")
	}
	c.Port = binary.BigEndian.Uint16(rest[:2])
	addr := strings.TrimSuffix(string(rest[2:]), "\x00")
	addr = strings.TrimPrefix(addr, "IPv6:")
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return Conn{}, fmt.Errorf("connect address %q: %w", addr, err)
	}
	c.Addr = ip.Unmap()
	return c, nil
}

// Stats are the server's counters: sessions served, filter panics, and
// connections closed before negotiating to make room for others.
type Stats struct{ Sessions, Panics, Evicted uint64 }

// Stats returns the counters.
func (s *Server) Stats() Stats { return Stats{s.sessions.Load(), s.panics.Load(), s.evicted.Load()} }

// ListenerStats sums the counters of the listeners Serve guards
// (internal/netguard): connections open, accept errors retried,
// evictions, per-peer refusals.
func (s *Server) ListenerStats() netguard.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st netguard.Stats
	for _, l := range s.listeners {
		if g, ok := l.(*netguard.Listener); ok {
			st = st.Add(g.Stats())
		}
	}
	return st
}
