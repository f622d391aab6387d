package labtest

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// Sink is an SMTP server on loopback that keeps every message it accepts,
// for tests of what mailwall sends. A message counts once its data has
// fully arrived (the final "."): a client that dies before leaves nothing.
type Sink struct {
	srv *smtp.Server
	ln  net.Listener

	mu   sync.Mutex
	msgs []SinkMessage
	// Refuse, when set, answers RCPT TO for an address with an error
	// (an *smtp.SMTPError for a chosen code), or nil to accept.
	refuse func(rcpt string) error
	// stall, when set, is called at each RCPT TO, before the answer: a
	// test blocks in it to kill the sender mid-transaction.
	stall func()
}

// SinkMessage is one accepted message.
type SinkMessage struct {
	From string
	To   []string
	Data []byte
}

// NewSink starts a sink; it stops when the test ends.
func NewSink(tb testing.TB) *Sink {
	s := &Sink{}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink.test"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = 64 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.ln = ln
	go s.srv.Serve(ln)
	tb.Cleanup(func() { s.srv.Shutdown(context.Background()); s.srv.Close() })
	return s
}

// Addr is the sink's host:port.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Messages returns a copy of the messages accepted so far.
func (s *Sink) Messages() []SinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SinkMessage(nil), s.msgs...)
}

// Refuse sets the RCPT TO answer (nil function: accept all).
func (s *Sink) Refuse(f func(rcpt string) error) {
	s.mu.Lock()
	s.refuse = f
	s.mu.Unlock()
}

// Stall sets a function called at RCPT TO (nil: none).
func (s *Sink) Stall(f func()) {
	s.mu.Lock()
	s.stall = f
	s.mu.Unlock()
}

type sinkBackend struct{ s *Sink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct {
	s    *Sink
	from string
	to   []string
}

func (x *sinkSession) Reset()        { x.from, x.to = "", nil }
func (x *sinkSession) Logout() error { return nil }
func (x *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	refuse, stall := x.s.refuse, x.s.stall
	x.s.mu.Unlock()
	if stall != nil {
		stall()
	}
	if refuse != nil {
		if err := refuse(to); err != nil {
			return err
		}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *sinkSession) Data(r io.Reader) error {
	var buf bytes.Buffer
	// A sender that dies mid-DATA makes this read fail: nothing is taken.
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, SinkMessage{From: x.from, To: x.to, Data: buf.Bytes()})
	x.s.mu.Unlock()
	return nil
}
