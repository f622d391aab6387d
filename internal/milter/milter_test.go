package milter

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Filter that writes down what it is given and answers as
// told.
type recorder struct {
	mu      *sync.Mutex
	events  *[]string
	heloAns Response
	rcptAns map[string]Response // answers by recipient; Continue when absent
	panicAt string
}

func (r *recorder) log(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.events = append(*r.events, strings.TrimSpace(strings.Join(append([]string{format}, toStrings(args)...), " ")))
}

func toStrings(a []any) []string {
	var out []string
	for _, x := range a {
		out = append(out, fmtAny(x))
	}
	return out
}

func fmtAny(x any) string {
	switch v := x.(type) {
	case string:
		return v
	case []string:
		return "[" + strings.Join(v, ",") + "]"
	}
	return ""
}

func (r *recorder) maybePanic(stage string) {
	if r.panicAt == stage {
		panic("bug at " + stage)
	}
}

func (r *recorder) Connect(c Conn, m *Macros) Response {
	r.log("connect", c.Hostname, c.Family, c.Addr.String(), "j="+m.Get("j"))
	return Continue
}
func (r *recorder) Helo(name string, m *Macros) Response {
	r.maybePanic("helo")
	r.log("helo", name)
	if r.heloAns.code != 0 {
		return r.heloAns
	}
	return Continue
}
func (r *recorder) MailFrom(from string, args []string, m *Macros) Response {
	r.log("mail", from, args, "auth="+m.Get("{auth_authen}"), "j="+m.Get("j"))
	return Continue
}
func (r *recorder) RcptTo(rcpt string, args []string, m *Macros) Response {
	r.log("rcpt", rcpt)
	if a, ok := r.rcptAns[rcpt]; ok {
		return a
	}
	return Continue
}
func (r *recorder) Header(name, value string) Response {
	r.log("header", name+":"+value)
	return Continue
}
func (r *recorder) EndOfHeaders(m *Macros) Response { r.log("eoh"); return Continue }
func (r *recorder) Body(chunk []byte) Response {
	r.log("body", string(chunk))
	return Continue
}
func (r *recorder) EndOfMessage(m *Macros, mod *Modifier) Response {
	r.maybePanic("eom")
	r.log("eom", "i="+m.Get("i"), "auth="+m.Get("auth_authen"))
	mod.InsertHeader(0, "Authentication-Results", " mx.example.test; none")
	mod.DeleteHeader(1, "Authentication-Results")
	mod.Quarantine("held for review")
	return Accept
}
func (r *recorder) Abort() { r.log("abort") }
func (r *recorder) Close() { r.log("close") }

func startServer(t *testing.T, f func() Filter) string {
	t.Helper()
	return serveOn(t, &Server{NewFilter: f, Actions: ActAddHeader | ActChangeHeader | ActQuarantine, Log: slog.New(slog.DiscardHandler)})
}

// serveOn runs s on a loopback port until the test ends and returns the
// address.
func serveOn(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(s.Shutdown)
	return ln.Addr().String()
}

func newRecorder() (*recorder, func() []string) {
	var mu sync.Mutex
	var ev []string
	r := &recorder{mu: &mu, events: &ev}
	return r, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), ev...) }
}

func TestSession(t *testing.T) {
	rec, events := newRecorder()
	addr := startServer(t, func() Filter { return rec })
	c, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Actions != ActAddHeader|ActChangeHeader|ActQuarantine {
		t.Errorf("actions %#x", c.Actions)
	}
	if c.Protocol != wanted {
		t.Errorf("protocol %#x, want %#x", c.Protocol, wanted)
	}
	must := func(r Reply, err error) {
		t.Helper()
		if err != nil || r.Code != 'c' {
			t.Fatalf("reply %v %v", r, err)
		}
	}
	c.Macro('C', "j", "mx.example.test", "{daemon_name}", "smtpd")
	must(c.Connect("client.example.org", netip.MustParseAddr("192.0.2.7"), 4321))
	must(c.Helo("client.example.org"))
	for msg := 1; msg <= 2; msg++ {
		if msg == 1 {
			c.Macro('M', "{auth_authen}", "alice", "i", "ABC123")
		}
		must(c.Mail("<alice@example.test>", "SIZE=100"))
		must(c.Rcpt("<bob@example.org>"))
		must(c.Header("From", " Alice <alice@example.test>"))
		must(c.Header("Subject", " folded\n\tsubject"))
		must(c.EndOfHeaders())
		must(c.Body([]byte("hello\r\n")))
		mods, r, err := c.EndOfMessage()
		if err != nil || r.Code != 'a' {
			t.Fatalf("eom: %v %v", r, err)
		}
		if len(mods) != 3 || mods[0].Kind != 'i' || mods[0].Index != 0 || mods[0].Name != "Authentication-Results" ||
			mods[1].Kind != 'm' || mods[1].Value != "" || mods[2].Kind != 'q' || mods[2].Name != "held for review" {
			t.Errorf("modifications %+v", mods)
		}
	}
	c.Close()
	time.Sleep(50 * time.Millisecond)
	want := []string{
		"connect client.example.org 4 192.0.2.7 j=mx.example.test",
		"helo client.example.org",
		"mail <alice@example.test> [SIZE=100] auth=alice j=mx.example.test",
		"rcpt <bob@example.org>",
		"header From: Alice <alice@example.test>",
		"header Subject: folded\n\tsubject",
		"eoh", "body hello", "eom i=ABC123 auth=alice",
		// The second message: the connection's macros stay, the message's go.
		"mail <alice@example.test> [SIZE=100] auth= j=mx.example.test",
		"rcpt <bob@example.org>",
		"header From: Alice <alice@example.test>",
		"header Subject: folded\n\tsubject",
		"eoh", "body hello", "eom i= auth=",
		"close",
	}
	got := events()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A refusal at RCPT refuses that recipient only (libmilter's
// xxfi_envrcpt): Postfix goes on with the others, and the filter must
// still see the message's header and body.
func TestRefusedRecipientKeepsMessage(t *testing.T) {
	rec, events := newRecorder()
	rec.rcptAns = map[string]Response{"<new@example.org>": ReplyCode("450 4.7.1 Greylisted")}
	addr := startServer(t, func() Filter { return rec })
	c, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
	c.Helo("client.example.org")
	c.Mail("<alice@example.test>")
	if r, err := c.Rcpt("<new@example.org>"); err != nil || r.Code != 'y' {
		t.Fatalf("refused rcpt: %+v %v", r, err)
	}
	if r, err := c.Rcpt("<bob@example.org>"); err != nil || r.Code != 'c' {
		t.Fatalf("second rcpt: %+v %v", r, err)
	}
	c.Header("From", " Alice <alice@example.test>")
	c.EndOfHeaders()
	c.Body([]byte("hello\r\n"))
	if _, r, err := c.EndOfMessage(); err != nil || r.Code != 'a' {
		t.Fatalf("eom: %+v %v", r, err)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond)
	got := strings.Join(events(), "|")
	for _, want := range []string{"header From: Alice <alice@example.test>", "body hello"} {
		if !strings.Contains(got, want) {
			t.Errorf("after a refused recipient the filter missed %q: %s", want, got)
		}
	}
}

func TestRejectAtHelo(t *testing.T) {
	rec, _ := newRecorder()
	rec.heloAns = ReplyCode("554 5.7.1 <desctrl.com>: Helo command rejected: Access denied")
	addr := startServer(t, func() Filter { return rec })
	c, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
	r, err := c.Helo("desctrl.com")
	if err != nil || r.Code != 'y' || r.Text != "554 5.7.1 <desctrl.com>: Helo command rejected: Access denied" {
		t.Errorf("reply %+v %v", r, err)
	}
}

func TestPanicGivesTempFailAndServerLives(t *testing.T) {
	rec, _ := newRecorder()
	rec.panicAt = "eom"
	addr := startServer(t, func() Filter { return rec })
	for range 2 {
		c, err := Dial("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
		c.Helo("x.example")
		c.Mail("<a@example.test>")
		c.Rcpt("<b@example.org>")
		c.EndOfHeaders()
		_, r, err := c.EndOfMessage()
		if err != nil || r.Code != 't' {
			t.Errorf("after a panic: %+v %v, want tempfail", r, err)
		}
		c.Close()
	}
}

func TestAbortAndGarbage(t *testing.T) {
	rec, events := newRecorder()
	addr := startServer(t, func() Filter { return rec })
	c, _ := Dial("tcp", addr, time.Second)
	c.Connect("x", netip.MustParseAddr("2001:db8::1"), 25)
	c.Mail("<a@example.test>")
	c.Abort()
	c.Mail("<b@example.test>")
	c.Close()
	time.Sleep(50 * time.Millisecond)
	got := strings.Join(events(), "|")
	if !strings.Contains(got, "connect x 6 2001:db8::1") || !strings.Contains(got, "abort|mail <b@example.test>") {
		t.Errorf("events %s", got)
	}
	// A peer that sends garbage is dropped; the server keeps serving.
	conn, _ := net.Dial("tcp", addr)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<30)
	conn.Write(hdr[:])
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := io.Copy(io.Discard, conn); err != nil || n != 0 {
		t.Errorf("garbage peer got %d bytes, %v", n, err)
	}
	conn.Close()
	c2, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("server gone after garbage: %v", err)
	}
	c2.Close()
}

func TestNoReplyStages(t *testing.T) {
	rec, events := newRecorder()
	addr := serveOn(t, &Server{NewFilter: func() Filter { return rec }, NoReply: ProtoNRConn | ProtoNRMail | ProtoNRRcpt | ProtoNREOH, Log: slog.New(slog.DiscardHandler)})
	c, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Protocol&(ProtoNRConn|ProtoNRMail|ProtoNRRcpt|ProtoNREOH) != ProtoNRConn|ProtoNRMail|ProtoNRRcpt|ProtoNREOH || c.Protocol&ProtoNRHelo != 0 {
		t.Fatalf("protocol %#x", c.Protocol)
	}
	// The client sends without waiting; the filter still sees every stage,
	// in order, and the HELO answer still comes back.
	c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
	if r, err := c.Helo("x.example"); err != nil || r.Code != 'c' {
		t.Fatalf("helo %v %v", r, err)
	}
	c.Mail("<a@example.test>")
	c.Rcpt("<b@example.org>")
	c.EndOfHeaders()
	if _, r, err := c.EndOfMessage(); err != nil || r.Code != 'a' {
		t.Fatalf("eom %v %v", r, err)
	}
	got := strings.Join(events(), "|")
	if !strings.HasPrefix(got, "connect x 4 192.0.2.1 j=|helo x.example|mail <a@example.test> [] auth= j=|rcpt <b@example.org>|eoh|eom") {
		t.Errorf("events %s", got)
	}
}

// TestClientSkipsStages: a filter that negotiates SMFIP_NOHELO and
// SMFIP_NOBODY (OpenDMARC asks for no body) is not sent those stages, as
// Postfix would not send them; the commands it does get are recorded.
func TestClientSkipsStages(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer conn.Close()
		r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
		var cmds []byte
		for {
			p, err := readPacket(r)
			if err != nil {
				got <- string(cmds) + " " + err.Error()
				return
			}
			cmds = append(cmds, p.cmd)
			switch p.cmd {
			case cmdOptNeg:
				writePacket(w, cmdOptNeg, u32(Version), u32(ActAddHeader), u32(ProtoNoHelo|ProtoNoBody))
			case cmdQuit:
				got <- string(cmds)
				return
			default:
				writePacket(w, replyContinue)
			}
			w.Flush()
		}
	}()
	c, err := Dial("tcp", ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
	if r, err := c.Helo("x.example"); err != nil || r.Code != 'c' {
		t.Fatalf("helo %v %v", r, err)
	}
	c.Mail("<a@example.test>")
	c.Header("Subject", "x")
	c.EndOfHeaders()
	if r, err := c.Body([]byte("body\r\n")); err != nil || r.Code != 'c' {
		t.Fatalf("body %v %v", r, err)
	}
	if _, r, err := c.EndOfMessage(); err != nil || r.Code != 'c' {
		t.Fatalf("eom %v %v", r, err)
	}
	c.Close()
	// O negotiate, C connect, M mail, L header, N end of headers, E end of
	// body, Q quit: no H, no B.
	if cmds := <-got; cmds != "OCMLNEQ" {
		t.Errorf("filter got commands %q, want OCMLNEQ", cmds)
	}
}

// afterRecorder is a recorder whose after-reply work waits to hear that
// the client has its end-of-message reply, and may panic.
type afterRecorder struct {
	*recorder
	replied chan struct{} // closed by the test once it has the reply
	ran     chan bool     // whether the reply had come first
	panics  bool
}

func (a *afterRecorder) EndOfMessageSent() {
	select {
	case <-a.replied:
		a.ran <- true
	case <-time.After(2 * time.Second):
		a.ran <- false
	}
	if a.panics {
		panic("bug after the reply")
	}
}

// TestAfterReply: EndOfMessageSent runs once the end-of-message reply is
// on its way, not before; a panic there is caught and the connection
// goes on.
func TestAfterReply(t *testing.T) {
	for _, panics := range []bool{false, true} {
		rec, _ := newRecorder()
		f := &afterRecorder{recorder: rec, ran: make(chan bool, 2), panics: panics}
		addr := startServer(t, func() Filter { return f })
		c, err := Dial("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
		c.Helo("x.example")
		for range 2 {
			f.replied = make(chan struct{})
			c.Mail("<a@example.test>")
			c.Rcpt("<b@example.org>")
			c.EndOfHeaders()
			if _, r, err := c.EndOfMessage(); err != nil || r.Code != 'a' {
				t.Fatalf("panics=%v: eom %+v %v", panics, r, err)
			}
			close(f.replied)
			if !<-f.ran {
				t.Fatalf("panics=%v: EndOfMessageSent ran before the reply was sent", panics)
			}
		}
		c.Close()
	}
}

// quietRecorder is a recorder that chooses its connection's no-reply
// stages (NoReplier).
type quietRecorder struct {
	*recorder
	noReply uint32
}

func (q *quietRecorder) NoReply() uint32 { return q.noReply }

// TestNoReplier: a filter's own NoReply stands for the server's on its
// connection; at a stage so negotiated nothing is written back, even a
// refusal, so the next reply the MTA reads is the next stage's.
func TestNoReplier(t *testing.T) {
	rec, events := newRecorder()
	rec.heloAns = ReplyCode("554 5.7.1 not sent")
	addr := serveOn(t, &Server{NewFilter: func() Filter { return &quietRecorder{rec, ProtoNRConn | ProtoNRHelo} }, NoReply: ProtoNRMail, Log: slog.New(slog.DiscardHandler)})
	c, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Protocol&(ProtoNRConn|ProtoNRHelo|ProtoNRMail) != ProtoNRConn|ProtoNRHelo {
		t.Fatalf("protocol %#x, want the filter's NRConn|NRHelo and not the server's NRMail", c.Protocol)
	}
	c.Connect("x", netip.MustParseAddr("192.0.2.1"), 25)
	c.Helo("x.example")
	if r, err := c.Mail("<a@example.test>"); err != nil || r.Code != 'c' {
		t.Fatalf("mail: %+v %v, want continue (a HELO reply read in its place?)", r, err)
	}
	if got := strings.Join(events(), "|"); !strings.Contains(got, "helo x.example|mail <a@example.test>") {
		t.Errorf("events %s", got)
	}
}

// TestIdleWorkers checks that a connection after another is served by the
// goroutine that served the first, and that Shutdown does not wait out
// the idle goroutines' WorkerIdle.
func TestIdleWorkers(t *testing.T) {
	rec, _ := newRecorder()
	s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler)}
	addr := serveOn(t, s)
	for range 5 {
		heloSession(t, addr).Close()
		waitIdle(t, s, 1)
	}
	if n := s.workers.Load(); n != 1 {
		t.Errorf("%d goroutines started for 5 sessions one after another, want 1", n)
	}
	// Two at once need two goroutines.
	c1, c2 := heloSession(t, addr), heloSession(t, addr)
	c1.Close()
	c2.Close()
	waitIdle(t, s, 2)
	if n := s.workers.Load(); n != 2 {
		t.Errorf("%d goroutines started, want 2", n)
	}
	start := time.Now()
	s.Shutdown()
	if d := time.Since(start); d > WorkerIdle/2 {
		t.Errorf("Shutdown took %v: it waited for idle goroutines", d)
	}
}

// TestIdleWorkerEnds checks that an idle goroutine ends after its wait and
// the next connection is served by a new one.
func TestIdleWorkerEnds(t *testing.T) {
	rec, _ := newRecorder()
	s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler), idleFor: 20 * time.Millisecond}
	addr := serveOn(t, s)
	for range 2 {
		heloSession(t, addr).Close()
		waitIdle(t, s, 0) // the goroutine ended after its wait
	}
	if n := s.workers.Load(); n != 2 {
		t.Errorf("%d goroutines started, want 2: one per session, the first having ended", n)
	}
}

// waitIdle waits until every session on s has ended and idle goroutines
// wait for the next.
func waitIdle(t *testing.T, s *Server, idle int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		done := len(s.conns) == 0 && len(s.idle) == idle
		s.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions did not end, or not %d goroutines idle", idle)
		}
	}
}

// heloSession opens a session on addr and sends a HELO, which the
// server answers.
func heloSession(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Helo("mail.example.test"); err != nil || r.Code != 'c' {
		t.Fatalf("HELO: %v %v", r, err)
	}
	return c
}
