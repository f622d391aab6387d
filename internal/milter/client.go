package milter

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Client plays the MTA's side, for tests and benchmarks.
type Client struct {
	conn     net.Conn
	raw      syscall.RawConn // for TCP_QUICKACK; nil on unix sockets
	r        *bufio.Reader
	w        *bufio.Writer
	Actions  uint32 // as negotiated
	Protocol uint32
}

// Modification is a change the filter asked for at end of message.
type Modification struct {
	Kind  byte // 'h' add, 'i' insert, 'm' change/delete, 'q' quarantine
	Index uint32
	Name  string
	Value string
}

// Dial connects and negotiates, offering every action and protocol flag
// Postfix offers.
func Dial(network, addr string, timeout time.Duration) (*Client, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		c.raw, _ = tc.SyscallConn()
	}
	offerActions := ActAddHeader | ActChangeBody | ActAddRcpt | ActDelRcpt | ActChangeHeader | ActQuarantine | ActChangeFrom
	offerProto := uint32(0x1fffff)
	writePacket(c.w, cmdOptNeg, u32(Version), u32(offerActions), u32(offerProto))
	if err := c.w.Flush(); err != nil {
		conn.Close()
		return nil, err
	}
	c.quickAck()
	p, err := readPacket(c.r)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if p.cmd != cmdOptNeg || len(p.data) < 12 {
		conn.Close()
		return nil, fmt.Errorf("milter client: bad negotiation reply %q", p.cmd)
	}
	c.Actions = binary.BigEndian.Uint32(p.data[4:8])
	c.Protocol = binary.BigEndian.Uint32(p.data[8:12])
	return c, nil
}

// Close says QUIT and closes.
func (c *Client) Close() error {
	writePacket(c.w, cmdQuit)
	c.w.Flush()
	return c.conn.Close()
}

// Conn is the connection underneath, for a caller that must misbehave on
// purpose (fault tests) or set deadlines.
func (c *Client) Conn() net.Conn { return c.conn }

// Macro sends macros for a stage command (such as 'C', 'M').
func (c *Client) Macro(stage byte, pairs ...string) error {
	writePacket(c.w, cmdMacro, []byte{stage}, cstr(pairs...))
	return nil
}

// Reply is the filter's answer: the response code and text.
type Reply struct {
	Code byte   // 'c' continue, 'a' accept, 'r' reject, 't' tempfail, 'd' discard, 'y' reply code
	Text string // for 'y'
}

func (r Reply) String() string {
	if r.Code == replyReplyCode {
		return r.Text
	}
	return Response{code: r.Code}.String()
}

// skipFlags are the protocol flags by which a filter asks not to be sent
// a stage at all. Postfix leaves those stages out (milter8.c), so the
// client does too: OpenDMARC, for one, asks for no body.
var skipFlags = map[byte]uint32{
	cmdConnect: ProtoNoConnect,
	cmdHelo:    ProtoNoHelo,
	cmdMail:    ProtoNoMail,
	cmdRcpt:    ProtoNoRcpt,
	cmdData:    ProtoNoData,
	cmdHeader:  ProtoNoHeaders,
	cmdEOH:     ProtoNoEOH,
	cmdBody:    ProtoNoBody,
	cmdUnknown: ProtoNoUnknown,
}

// send writes a command and, unless the protocol says no reply comes,
// reads the reply. A stage the filter asked to skip is not sent.
func (c *Client) send(cmd byte, noReplyFlag uint32, data ...[]byte) (Reply, error) {
	if c.Protocol&skipFlags[cmd] != 0 {
		return Reply{Code: replyContinue}, nil
	}
	if err := writePacket(c.w, cmd, data...); err != nil {
		return Reply{}, err
	}
	if noReplyFlag != 0 && c.Protocol&noReplyFlag != 0 {
		// Like Postfix, hold commands that get no reply until one that
		// does ("send multiple headers in one VSTREAM transaction",
		// milter8.c), or until the buffer fills: a filter that asked for
		// no replies gets the message in a few writes, not one a header.
		return Reply{Code: replyContinue}, nil
	}
	if err := c.w.Flush(); err != nil {
		return Reply{}, err
	}
	return c.readReply(nil)
}

// Flush sends the commands the client holds (those that get no reply
// wait for the next that does), for a caller that then misbehaves on
// purpose.
func (c *Client) Flush() error { return c.w.Flush() }

func (c *Client) readReply(mods *[]Modification) (Reply, error) {
	for {
		c.quickAck()
		p, err := readPacket(c.r)
		if err != nil {
			return Reply{}, err
		}
		switch p.cmd {
		case replyContinue, replyAccept, replyReject, replyTempFail, replyDiscard, replySkip:
			return Reply{Code: p.cmd}, nil
		case replyReplyCode:
			return Reply{Code: p.cmd, Text: firstString(p.data)}, nil
		case replyProgress:
			continue
		case replyAddHeader, replyQuarantine:
			if mods != nil {
				s := cstrings(p.data)
				m := Modification{Kind: p.cmd}
				if len(s) > 0 {
					m.Name = s[0]
				}
				if len(s) > 1 {
					m.Value = s[1]
				}
				*mods = append(*mods, m)
			}
		case replyInsHeader, replyChgHeader:
			if mods != nil && len(p.data) >= 4 {
				s := cstrings(p.data[4:])
				m := Modification{Kind: p.cmd, Index: binary.BigEndian.Uint32(p.data[:4])}
				if len(s) > 0 {
					m.Name = s[0]
				}
				if len(s) > 1 {
					m.Value = s[1]
				}
				*mods = append(*mods, m)
			}
		default:
			return Reply{}, fmt.Errorf("milter client: unexpected reply %q", p.cmd)
		}
	}
}

// quickAck turns off delayed ACKs before a read (Linux re-enables them
// after each ACK). libmilter writes a reply as several small segments; with
// Nagle on its side and delayed ACKs on ours every message would wait about
// 40 ms. Postfix's own milter client has the same problem to face; a
// benchmark must not measure it.
func (c *Client) quickAck() {
	if c.raw == nil || c.r.Buffered() > 0 {
		return
	}
	c.raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
}

func firstString(b []byte) string {
	if s := cstrings(b); len(s) > 0 {
		return s[0]
	}
	return ""
}

// Connect sends the client's address.
func (c *Client) Connect(hostname string, addr netip.Addr, port uint16) (Reply, error) {
	fam := byte('4')
	if addr.Is6() && !addr.Is4In6() {
		fam = '6'
	}
	p := make([]byte, 2)
	binary.BigEndian.PutUint16(p, port)
	return c.send(cmdConnect, ProtoNRConn, cstr(hostname), []byte{fam}, p, cstr(addr.Unmap().String()))
}

// Helo sends the HELO name.
func (c *Client) Helo(name string) (Reply, error) { return c.send(cmdHelo, ProtoNRHelo, cstr(name)) }

// Mail sends MAIL FROM (with the angle brackets, as Postfix sends it).
func (c *Client) Mail(from string, args ...string) (Reply, error) {
	return c.send(cmdMail, ProtoNRMail, cstr(append([]string{from}, args...)...))
}

// Rcpt sends RCPT TO.
func (c *Client) Rcpt(to string, args ...string) (Reply, error) {
	return c.send(cmdRcpt, ProtoNRRcpt, cstr(append([]string{to}, args...)...))
}

// Header sends one header field (value as it follows the colon).
func (c *Client) Header(name, value string) (Reply, error) {
	if c.Protocol&ProtoHeaderSpace == 0 && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return c.send(cmdHeader, ProtoNRHeader, cstr(name, value))
}

// Data sends the DATA command (milter protocol 4 and later).
func (c *Client) Data() (Reply, error) { return c.send(cmdData, ProtoNRData) }

// EndOfHeaders sends EOH.
func (c *Client) EndOfHeaders() (Reply, error) { return c.send(cmdEOH, ProtoNREOH) }

// Body sends the body in chunks of at most 64 KiB, and stops early when
// the filter answers a chunk with skip (it has seen enough) or a verdict.
func (c *Client) Body(body []byte) (Reply, error) {
	for len(body) > 0 {
		n := min(len(body), 65535)
		r, err := c.send(cmdBody, ProtoNRBody, body[:n])
		if err != nil || r.Code != replyContinue {
			return r, err
		}
		body = body[n:]
	}
	return Reply{Code: replyContinue}, nil
}

// EndOfMessage ends the message and returns the changes and the answer.
func (c *Client) EndOfMessage() ([]Modification, Reply, error) {
	writePacket(c.w, cmdEOB)
	if err := c.w.Flush(); err != nil {
		return nil, Reply{}, err
	}
	var mods []Modification
	r, err := c.readReply(&mods)
	return mods, r, err
}

// Abort ends the message; the connection goes on.
func (c *Client) Abort() error {
	writePacket(c.w, cmdAbort)
	return c.w.Flush()
}

// ErrRejected is returned by helpers when the filter answered with a
// final reply before the end.
var ErrRejected = errors.New("milter: message answered early")
