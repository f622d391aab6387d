package milter

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// pieces reads from r in pieces of random sizes, up to max octets: a
// connection's reads return what has arrived.
type pieces struct {
	r   io.Reader
	rnd *rand.Rand
	max int
}

func (p *pieces) Read(b []byte) (int, error) {
	return p.r.Read(b[:min(len(b), 1+p.rnd.IntN(p.max))])
}

// TestPacketReader: packets of every size up to maxPacket, arriving in
// pieces of any size, are read as written, back to back, whatever the
// reader's buffer holds; the end of the stream between packets is
// io.EOF, within one io.ErrUnexpectedEOF.
func TestPacketReader(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var stream bytes.Buffer
	w := bufio.NewWriter(&stream)
	var sent [][]byte
	for i := range 300 {
		var n int
		switch {
		case i%50 == 49:
			n = maxKeptPacket + rnd.IntN(maxPacket-maxKeptPacket) // own buffer
		case i%10 == 9:
			n = 60<<10 + rnd.IntN(6<<10) // body chunks
		default:
			n = rnd.IntN(300)
		}
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rnd.IntN(256))
		}
		sent = append(sent, data)
		writePacket(w, byte('A'+i%26), data)
	}
	w.Flush()
	for _, max := range []int{1, 7, 1500, 64 << 10, 1 << 20} {
		r := newPacketReader(&pieces{r: bytes.NewReader(stream.Bytes()), rnd: rnd, max: max})
		for i, want := range sent {
			p, err := r.read()
			if err != nil {
				t.Fatalf("pieces of %d: packet %d: %v", max, i, err)
			}
			if p.cmd != byte('A'+i%26) || !bytes.Equal(p.data, want) {
				t.Fatalf("pieces of %d: packet %d: %q and %d octets, want %q and %d", max, i, p.cmd, len(p.data), byte('A'+i%26), len(want))
			}
		}
		if _, err := r.read(); err != io.EOF {
			t.Errorf("pieces of %d: at the end: %v, want io.EOF", max, err)
		}
		if len(r.buf) > maxKeptPacket+4 {
			t.Errorf("pieces of %d: the buffer grew to %d octets, past %d", max, len(r.buf), maxKeptPacket+4)
		}
	}
	for _, cut := range []int{2, 4, 5, 100, 70 << 10} {
		r := newPacketReader(bytes.NewReader(stream.Bytes()[:cut]))
		var err error
		for err == nil {
			_, err = r.read()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

// TestPacketReaderBounded: the server's reader refuses a packet past
// maxPacket, holds no buffer of an announced large packet's size, and
// keeps no buffer past maxKeptPacket for the next session.
func TestPacketReaderBounded(t *testing.T) {
	var hdr [4]byte
	hdr[0], hdr[1] = 0x00, 0x20 // 2 MiB
	if _, err := newPacketReader(strings.NewReader(string(hdr[:]) + "L")).read(); !errors.Is(err, errPacketTooLarge) {
		t.Errorf("2 MiB packet: %v, want errPacketTooLarge", err)
	}
	announced := string([]byte{0x00, 0x10, 0x00, 0x00}) + "Lname\x00" // 1 MiB announced, a few octets sent
	var ms1, ms2 runtimeMem
	ms1.read()
	for range 100 {
		if _, err := newPacketReader(strings.NewReader(announced)).read(); err == nil {
			t.Fatal("a short packet was read whole")
		}
	}
	ms2.read()
	if grew := ms2.alloc - ms1.alloc; grew > 10<<20 {
		t.Errorf("100 announced 1 MiB packets of a few octets allocated %d MB", grew>>20)
	}
	// A chunk of maxKeptPacket grows the buffer to it; reset keeps that
	// room, and nothing larger is ever there to keep.
	n := maxKeptPacket
	data := "B" + strings.Repeat("b", n-1)
	r := newPacketReader(strings.NewReader(string([]byte{0, byte(n >> 16), byte(n >> 8), byte(n)}) + data))
	if p, err := r.read(); err != nil || len(p.data) != n-1 {
		t.Fatalf("a chunk of %d octets: %v, %d read", n, err, len(p.data))
	}
	r.reset(nil)
	if len(r.buf) != maxKeptPacket+4 || r.r != 0 || r.w != 0 {
		t.Errorf("after reset: %d octets kept, at %d:%d", len(r.buf), r.r, r.w)
	}
}
