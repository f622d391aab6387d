package milter

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// writeCounter is a listener whose connections count their writes.
type writeCounter struct {
	net.Listener
	writes atomic.Int64
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, n: &l.writes}, nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

// manyChanges adds header fields of 400 octets at end of message, more
// than the session's 1 KiB writer holds, numbered by message.
type manyChanges struct {
	nopFilter
	fields int
	msgs   *atomic.Int64
}

func (f manyChanges) EndOfMessage(_ *Macros, mod *Modifier) Response {
	n := f.msgs.Add(1)
	for i := range f.fields {
		mod.InsertHeader(uint32(i), fmt.Sprintf("X-Change-%d-%d", n, i), " "+strings.Repeat("v", 400))
	}
	mod.Quarantine(fmt.Sprintf("held %d", n))
	return Accept
}

// TestEndOfMessageOneWrite: the changes at end of message and the reply
// leave in one write, however many (the session's writer holds 1 KiB),
// and the room a session keeps for them carries nothing over to the
// next message or the next connection.
func TestEndOfMessageOneWrite(t *testing.T) {
	var msgs atomic.Int64
	s := &Server{NewFilter: func() Filter { return manyChanges{fields: 8, msgs: &msgs} },
		Actions: ActAddHeader | ActQuarantine, NoReply: ProtoNRConn | ProtoNRHelo | ProtoNRMail | ProtoNRRcpt | ProtoNREOH,
		Log: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wc := &writeCounter{Listener: ln}
	go s.Serve(wc)
	t.Cleanup(s.Shutdown)

	msg := int64(0)
	for conn := range 3 {
		before := wc.writes.Load()
		c, err := Dial("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			msg++
			c.Mail("<a@example.test>")
			c.Rcpt("<b@example.test>")
			c.Header("Subject", " hi")
			c.EndOfHeaders()
			c.Body([]byte("hello\r\n"))
			mods, r, err := c.EndOfMessage()
			if err != nil || r.Code != 'a' {
				t.Fatalf("connection %d: end of message: %v %v", conn, r, err)
			}
			if len(mods) != 9 {
				t.Fatalf("connection %d message %d: %d changes, want 9: %+v", conn, msg, len(mods), mods)
			}
			for i, m := range mods[:8] {
				if m.Kind != 'i' || m.Index != uint32(i) || m.Name != fmt.Sprintf("X-Change-%d-%d", msg, i) || len(m.Value) != 401 {
					t.Errorf("message %d change %d: %c %d %s (%d octets)", msg, i, m.Kind, m.Index, m.Name, len(m.Value))
				}
			}
			if m := mods[8]; m.Kind != 'q' || m.Name != fmt.Sprintf("held %d", msg) {
				t.Errorf("message %d: last change %+v", msg, m)
			}
		}
		c.Close()
		// Negotiation's reply, then one write a message.
		if got := wc.writes.Load() - before; got != 3 {
			t.Errorf("connection %d: %d writes for negotiation and 2 messages, want 3", conn, got)
		}
	}
}

// TestIdleTimeoutMovesWithCommands: the idle deadline, which the server
// moves lazily, still moves: a session that sends a command every
// quarter of IdleTimeout outlives it several times over.
func TestIdleTimeoutMovesWithCommands(t *testing.T) {
	rec, _ := newRecorder()
	s := &Server{NewFilter: func() Filter { return rec }, Log: slog.New(slog.DiscardHandler), IdleTimeout: 400 * time.Millisecond}
	c := heloSession(t, serveOn(t, s))
	defer c.Close()
	for range 12 { // 1.2 s, three times the idle timeout
		time.Sleep(100 * time.Millisecond)
		c.Macro('M', "i", "Q1")
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := c.Helo("mail.example.test"); err != nil || r.Code != 'c' {
		t.Fatalf("after 1.2 s of commands every 100 ms: HELO %v %v", r, err)
	}
}
