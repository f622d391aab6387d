package labtest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// LineSink is an SMTP server on loopback that says yes to everything and
// keeps every command line as it arrived, ESMTP parameters and all: what
// a relay would have been asked, whether or not a real one took it.
// Sink parses commands and so cannot show what was smuggled into one.
type LineSink struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

// NewLineSink starts a line sink; it stops when the test ends.
func NewLineSink(tb testing.TB) *LineSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &LineSink{ln: ln}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

// Addr is the sink's host:port.
func (s *LineSink) Addr() string { return s.ln.Addr().String() }

func (s *LineSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "220 sink.test ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		switch verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0]); {
		case verb == "QUIT":
			fmt.Fprintf(c, "221 bye\r\n")
			return
		case verb == "DATA":
			fmt.Fprintf(c, "354 go on\r\n")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
			}
			fmt.Fprintf(c, "250 queued\r\n")
		default:
			fmt.Fprintf(c, "250 ok\r\n")
		}
	}
}

// Rcpts returns the RCPT TO command lines so far.
func (s *LineSink) Rcpts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if strings.HasPrefix(strings.ToUpper(l), "RCPT TO:") {
			out = append(out, l)
		}
	}
	return out
}
