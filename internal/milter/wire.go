// Package milter speaks the Sendmail/Postfix mail filter protocol, version
// 6: a server that hands each SMTP stage to a Filter, and a client that
// plays the MTA for tests and benchmarks. Postfix's smtpd_milters and
// non_smtpd_milters connect to the server over TCP or a unix socket.
package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Commands the MTA sends (SMFIC_*).
const (
	cmdAbort   = 'A'
	cmdBody    = 'B'
	cmdConnect = 'C'
	cmdMacro   = 'D'
	cmdEOB     = 'E'
	cmdHelo    = 'H'
	cmdQuitNC  = 'K'
	cmdHeader  = 'L'
	cmdMail    = 'M'
	cmdEOH     = 'N'
	cmdOptNeg  = 'O'
	cmdQuit    = 'Q'
	cmdRcpt    = 'R'
	cmdData    = 'T'
	cmdUnknown = 'U'
)

// Replies the filter sends (SMFIR_*).
const (
	replyAddRcpt    = '+'
	replyDelRcpt    = '-'
	replyAccept     = 'a'
	replyReplBody   = 'b'
	replyContinue   = 'c'
	replyDiscard    = 'd'
	replyChgFrom    = 'e'
	replyAddHeader  = 'h'
	replyInsHeader  = 'i'
	replyChgHeader  = 'm'
	replyProgress   = 'p'
	replyQuarantine = 'q'
	replyReject     = 'r'
	replySkip       = 's'
	replyTempFail   = 't'
	replyReplyCode  = 'y'
)

// Action flags (SMFIF_*): what the filter may do to a message.
const (
	ActAddHeader    uint32 = 0x01
	ActChangeBody   uint32 = 0x02
	ActAddRcpt      uint32 = 0x04
	ActDelRcpt      uint32 = 0x08
	ActChangeHeader uint32 = 0x10
	ActQuarantine   uint32 = 0x20
	ActChangeFrom   uint32 = 0x40
)

// Protocol flags (SMFIP_*): stages skipped and replies left out.
const (
	ProtoNoConnect   uint32 = 0x1
	ProtoNoHelo      uint32 = 0x2
	ProtoNoMail      uint32 = 0x4
	ProtoNoRcpt      uint32 = 0x8
	ProtoNoBody      uint32 = 0x10
	ProtoNoHeaders   uint32 = 0x20
	ProtoNoEOH       uint32 = 0x40
	ProtoNRHeader    uint32 = 0x80
	ProtoNoUnknown   uint32 = 0x100
	ProtoNoData      uint32 = 0x200
	ProtoSkip        uint32 = 0x400
	ProtoNRConn      uint32 = 0x1000
	ProtoNRHelo      uint32 = 0x2000
	ProtoNRMail      uint32 = 0x4000
	ProtoNRRcpt      uint32 = 0x8000
	ProtoNRData      uint32 = 0x10000
	ProtoNRUnknown   uint32 = 0x20000
	ProtoNREOH       uint32 = 0x40000
	ProtoNRBody      uint32 = 0x80000
	ProtoHeaderSpace uint32 = 0x100000
)

// Version is the protocol version spoken.
const Version = 6

// maxPacket bounds one packet. Body chunks are at most 64 KiB (more only
// with SMFIP_MDS_256K or _1M, never offered); a header field is what the
// MTA keeps of one, 100 KiB by Postfix's header_size_limit; macros are a
// few hundred octets. Anything larger is a broken or hostile peer.
const maxPacket = 1 << 20

// maxKeptPacket bounds the buffer a session keeps for its next packets:
// a body chunk and its command fit. Larger packets get one of their own.
const maxKeptPacket = 80 << 10

var errPacketTooLarge = errors.New("milter: packet too large")

type packet struct {
	cmd  byte
	data []byte
}

// readPacket reads a packet, its data in a buffer of its own (the
// client's reads; the server's go through a packetReader).
func readPacket(r *bufio.Reader) (packet, error) {
	// Peek, not a read into an array of its own, which would escape
	// to the heap: a packet's length costs no allocation.
	hdr, err := r.Peek(4)
	if err != nil {
		if len(hdr) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // as io.ReadFull says
		}
		return packet{}, err
	}
	n := binary.BigEndian.Uint32(hdr)
	r.Discard(4)
	if n == 0 {
		return packet{}, errors.New("milter: empty packet")
	}
	if n > maxPacket {
		return packet{}, errPacketTooLarge
	}
	if n > maxKeptPacket {
		// Grow with what arrives: a peer announcing a large packet and
		// sending nothing holds no memory for it.
		var bb bytes.Buffer
		if _, err := bb.ReadFrom(io.LimitReader(r, int64(n))); err != nil {
			return packet{}, fmt.Errorf("milter: short packet: %w", err)
		}
		if bb.Len() < int(n) {
			return packet{}, fmt.Errorf("milter: short packet: %w", io.ErrUnexpectedEOF)
		}
		b := bb.Bytes()
		return packet{cmd: b[0], data: b[1:]}, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return packet{}, fmt.Errorf("milter: short packet: %w", err)
	}
	return packet{cmd: b[0], data: b[1:]}, nil
}

// packetReader reads the server's packets through one buffer that grows
// to hold a body chunk whole (up to maxKeptPacket): a read takes what
// the connection has, a chunk's end and the next packets' start alike,
// where a small bufio.Reader took a chunk in two reads or more (39
// reads a 1 MB message, in 64 KiB chunks, before).
type packetReader struct {
	rd   io.Reader
	buf  []byte // buf[r:w] is read and not yet taken
	r, w int
}

// minReadBuf is the room a packetReader starts with: a small message's
// packets up to its body, in one read.
const minReadBuf = 4 << 10

func newPacketReader(rd io.Reader) *packetReader {
	return &packetReader{rd: rd, buf: make([]byte, minReadBuf)}
}

// reset readies p for rd, keeping its buffer unless it grew past
// maxKeptPacket (a packet larger than that never goes through it).
func (p *packetReader) reset(rd io.Reader) {
	p.rd, p.r, p.w = rd, 0, 0
	if len(p.buf) > maxKeptPacket+4 {
		p.buf = make([]byte, minReadBuf)
	}
}

// fill reads until need octets are buffered; need is at most len(p.buf).
func (p *packetReader) fill(need int) error {
	if p.w-p.r >= need {
		return nil
	}
	if len(p.buf)-p.r < need {
		p.w = copy(p.buf, p.buf[p.r:p.w])
		p.r = 0
	}
	for p.w-p.r < need {
		n, err := p.rd.Read(p.buf[p.w:])
		p.w += n
		if err != nil {
			if p.w-p.r >= need {
				return nil
			}
			if errors.Is(err, io.EOF) && p.w > p.r {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// ready reports whether a whole packet is buffered: reading it needs
// nothing from the connection.
func (p *packetReader) ready() bool {
	if p.w-p.r < 4 {
		return false
	}
	n := int(binary.BigEndian.Uint32(p.buf[p.r:]))
	return n <= maxKeptPacket && p.w-p.r >= 4+n
}

// read reads a packet. Its data is valid until the next read.
func (p *packetReader) read() (packet, error) {
	if err := p.fill(4); err != nil {
		return packet{}, err
	}
	n := int(binary.BigEndian.Uint32(p.buf[p.r:]))
	switch {
	case n == 0:
		return packet{}, errors.New("milter: empty packet")
	case n > maxPacket:
		return packet{}, errPacketTooLarge
	case n > maxKeptPacket:
		// Grow with what arrives: a peer announcing a large packet and
		// sending nothing holds no memory for it.
		p.r += 4
		var bb bytes.Buffer
		bb.Write(p.buf[p.r:min(p.w, p.r+n)])
		p.r += bb.Len()
		if _, err := bb.ReadFrom(io.LimitReader(p.rd, int64(n-bb.Len()))); err != nil {
			return packet{}, fmt.Errorf("milter: short packet: %w", err)
		}
		if bb.Len() < n {
			return packet{}, fmt.Errorf("milter: short packet: %w", io.ErrUnexpectedEOF)
		}
		b := bb.Bytes()
		return packet{cmd: b[0], data: b[1:]}, nil
	}
	if len(p.buf) < 4+n {
		// Room to grow into: packets of a session come in rising sizes
		// (macros, then header fields, then body chunks).
		b := make([]byte, max(4+n, min(maxKeptPacket+4, 2*len(p.buf))))
		p.w = copy(b, p.buf[p.r:p.w])
		p.buf, p.r = b, 0
	}
	if err := p.fill(4 + n); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return packet{}, fmt.Errorf("milter: short packet: %w", err)
	}
	b := p.buf[p.r+4 : p.r+4+n]
	p.r += 4 + n
	if p.r == p.w {
		p.r, p.w = 0, 0 // the next read starts at the front
	}
	return packet{cmd: b[0], data: b[1:]}, nil
}

func writePacket(w *bufio.Writer, cmd byte, data ...[]byte) error {
	n := 1
	for _, d := range data {
		n += len(d)
	}
	// The length and command in the writer's own room: an array here
	// would escape to the heap.
	hdr := binary.BigEndian.AppendUint32(w.AvailableBuffer(), uint32(n))
	hdr = append(hdr, cmd)
	// bufio.Writer keeps its first error: the last write reports it.
	_, err := w.Write(hdr)
	for _, d := range data {
		_, err = w.Write(d)
	}
	return err
}

// appendPacket appends a packet of cmd to b: its data is prefix, then
// each of parts NUL-terminated.
func appendPacket(b []byte, cmd byte, prefix []byte, parts ...string) []byte {
	n := 1 + len(prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, cmd)
	b = append(b, prefix...)
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0)
	}
	return b
}

// cstrings splits NUL-terminated strings. They are substrings of one
// copy of b, in a slice made to size: two allocations a packet, where a
// copy each and the slice's growth were four for a header field.
func cstrings(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	n := bytes.Count(b, []byte{0})
	if b[len(b)-1] != 0 {
		n++
	}
	out := make([]string, 0, n)
	for s := string(b); len(s) > 0; {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return out
}

// cpair is the first two NUL-terminated strings of b (a header field's
// name and value), "" for those missing: one allocation.
func cpair(b []byte) (first, second string) {
	s := string(b)
	first, rest, _ := strings.Cut(s, "\x00")
	second, _, _ = strings.Cut(rest, "\x00")
	return first, second
}

func cstr(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b[:]
}
