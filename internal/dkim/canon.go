package dkim

import (
	"bytes"
	"encoding/binary"
	"hash"
	"math/bits"
	"strings"
)

// Canonicalization algorithms (RFC 6376 §3.4).
const (
	Simple  = "simple"
	Relaxed = "relaxed"
)

// canonHeader returns a header field canonicalized for hashing, CRLF
// included.
func canonHeader(f Field, canon string) string {
	if canon == Simple {
		return f.Raw
	}
	// relaxed (§3.4.2): lower-case name, unfold, runs of WSP to one SP,
	// no WSP at the end of the value or around the colon.
	name, value, _ := strings.Cut(f.Raw, ":")
	var b strings.Builder
	b.Grow(len(f.Raw))
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	wsp := false
	started := false
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch c {
		case '\r', '\n':
			continue
		case ' ', '\t':
			wsp = true
			continue
		}
		if wsp && started {
			b.WriteByte(' ')
		}
		wsp = false
		started = true
		b.WriteByte(c)
	}
	b.WriteString("\r\n")
	return b.String()
}

// bodyHasher canonicalizes a body as it streams by (RFC 6376 §3.4.3 and
// §3.4.4) and feeds at most limit octets of the result to a hash. Empty
// lines are held back until a non-empty line shows they are not trailing;
// in relaxed mode, white space is held back until a non-WSP octet shows it
// is not at the end of a line.
type bodyHasher struct {
	h       hash.Hash
	relaxed bool
	limit   int64 // -1: no l=
	written int64 // canonical octets produced (hashed or not)

	emptyLines int  // CRLFs held back
	wsp        bool // relaxed: white space held back
	lineUsed   bool // the current line has content
	cr         bool // the previous octet was a CR not yet known to end a line
	buf        []byte
}

func newBodyHasher(h hash.Hash, canon string, limit int64) *bodyHasher {
	// buf is made when first needed: most bodies go to the hash in place.
	return &bodyHasher{h: h, relaxed: canon == Relaxed, limit: limit}
}

// specialRelaxed and specialSimple mark the octets each canonicalization
// must look at one by one; runs of other octets are copied in bulk.
var (
	specialRelaxed = [256]bool{'\r': true, '\n': true, ' ': true, '\t': true}
	specialSimple  = [256]bool{'\r': true, '\n': true}
)

func (b *bodyHasher) Write(p []byte) (int, error) {
	special := &specialSimple
	if b.relaxed {
		special = &specialRelaxed
	}
	for i := 0; i < len(p); {
		// Fastest path: a run of whole lines that canonicalize to
		// themselves goes to the hash as it is, with no copy (most of the
		// body of most mail).
		if !b.lineUsed && !b.wsp && !b.cr && b.emptyLines == 0 {
			if n := selfCanonical(p[i:], b.relaxed); n > 0 {
				b.flush()
				b.direct(p[i : i+n])
				i += n
				continue
			}
		}
		// Fast path: a whole line that canonicalizes to itself is copied
		// in one piece.
		if !b.lineUsed && !b.wsp && !b.cr {
			if nl := bytes.IndexByte(p[i:], '\n'); nl > 0 {
				line := p[i : i+nl]
				if line[len(line)-1] == '\r' {
					line = line[:len(line)-1]
				}
				if len(line) > 0 && (!b.relaxed || plainRelaxed(line)) {
					b.run(line)
					b.endLine()
					i += nl + 1
					continue
				}
			}
		}
		c := p[i]
		if b.cr {
			b.cr = false
			if c == '\n' {
				b.endLine()
				i++
				continue
			}
			b.content('\r')
		}
		if !special[c] {
			// A run of text, single spaces between words included: relaxed
			// canonicalization leaves those as they are.
			j := i + 1
			for j < len(p) {
				if !special[p[j]] {
					j++
				} else if p[j] == ' ' && j+1 < len(p) && !special[p[j+1]] {
					j += 2
				} else {
					break
				}
			}
			b.run(p[i:j])
			i = j
			continue
		}
		switch c {
		case '\r':
			b.cr = true
		case '\n':
			b.endLine() // bare LF taken as CRLF
		default: // ' ', '\t'
			if b.relaxed {
				b.wsp = true
			} else {
				b.content(c)
			}
		}
		i++
	}
	b.flush()
	return len(p), nil
}

// selfCanonical returns the length of the longest prefix of p made of
// whole lines that the canonicalization leaves as they are: each ends in
// CRLF and is not empty (empty lines may be trailing, §3.4.3); in relaxed
// mode it has no tab and no space followed by white space or the line end
// (§3.4.4). p starts a line.
func selfCanonical(p []byte, relaxed bool) int {
	end := 0
	if wideScan && len(p) >= 64 && p[0] != '\r' && p[0] != '\n' {
		end = scanLinesAVX2(p, relaxed)
	}
	return end + selfCanonicalWords(p[end:], relaxed)
}

// selfCanonicalWords is selfCanonical with no vector instructions: eight
// octets are read at a time and tested with exact bit tricks, so plain
// text costs a few operations per word, not per octet.
func selfCanonicalWords(p []byte, relaxed bool) int {
	const (
		lows  = 0x7f7f7f7f7f7f7f7f
		highs = 0x8080808080808080
		low7  = 0x0080808080808080 // flags of a word's first seven octets
	)
	end, lineStart := 0, 0
	for i := 0; i < len(p); {
		// Windows overlap by one octet so that a pair of octets is always
		// inside one window.
		for i+8 <= len(p) {
			x := binary.LittleEndian.Uint64(p[i:])
			// High bit set in each octet below 0x20: (b&0x7f)+0x60 has
			// no high bit exactly when b&0x7f < 0x20, and never carries.
			ctl := ^((x&lows + 0x6060606060606060) | x) & highs
			m := ctl
			if relaxed {
				y := x ^ 0x2020202020202020
				sp := ^((y&lows + lows) | y) & highs // octets equal to ' '
				m |= sp & (sp>>8 | ctl>>8)           // ' ' before ' ' or a control octet
			}
			if m&low7 != 0 {
				i += bits.TrailingZeros64(m&low7) / 8
				break
			}
			i += 7
		}
		if i+8 > len(p) && i < len(p) && p[i] > ' ' {
			i++ // the tail, octet by octet
			continue
		}
		if i == len(p) {
			break
		}
		switch c := p[i]; {
		case c == '\r':
			if i == lineStart || i+1 == len(p) || p[i+1] != '\n' {
				return end
			}
			i += 2
			end, lineStart = i, i
		case c == '\n':
			return end // bare LF
		case relaxed && c == '\t':
			return end
		case relaxed && c == ' ' && (i+1 == len(p) || isWSPOrLineEnd(p[i+1])):
			return end // white space run, or at the line end
		default:
			i++
		}
	}
	return end
}

func isWSPOrLineEnd(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// direct hashes octets that are already canonical; b.buf is empty.
func (b *bodyHasher) direct(p []byte) {
	out := p
	if b.limit >= 0 {
		if room := b.limit - b.written; room < int64(len(out)) {
			out = out[:max(room, 0)]
		}
	}
	b.h.Write(out)
	b.written += int64(len(p))
}

// plainRelaxed reports whether relaxed canonicalization leaves a line
// (without its line end) unchanged: no tab, no CR, no two spaces in a row,
// no space at the end.
func plainRelaxed(line []byte) bool {
	// Three vectorized searches beat one branchy loop over the bytes.
	return line[len(line)-1] != ' ' && bytes.IndexByte(line, '\t') < 0 &&
		bytes.IndexByte(line, '\r') < 0 && !bytes.Contains(line, doubleSpace)
}

var doubleSpace = []byte("  ")

// run adds octets that are neither white space nor line ends.
func (b *bodyHasher) run(p []byte) {
	b.content(p[0])
	b.written += int64(len(p) - 1)
	b.grow()
	b.buf = append(b.buf, p[1:]...)
	if len(b.buf) >= 4096 {
		b.flush()
	}
}

func (b *bodyHasher) content(c byte) {
	if !b.lineUsed {
		for ; b.emptyLines > 0; b.emptyLines-- {
			b.emit('\r', '\n')
		}
		b.lineUsed = true
	}
	if b.wsp {
		b.wsp = false
		b.emit(' ')
	}
	b.emit(c)
}

func (b *bodyHasher) endLine() {
	b.wsp = false // relaxed: trailing white space is dropped
	if !b.lineUsed {
		b.emptyLines++
		return
	}
	b.lineUsed = false
	b.emit('\r', '\n')
}

func (b *bodyHasher) emit(cs ...byte) {
	b.written += int64(len(cs))
	b.grow()
	b.buf = append(b.buf, cs...)
	if len(b.buf) >= 4096 {
		b.flush()
	}
}

func (b *bodyHasher) grow() {
	if b.buf == nil {
		b.buf = make([]byte, 0, 4096)
	}
}

func (b *bodyHasher) flush() {
	if len(b.buf) == 0 {
		return
	}
	out := b.buf
	if b.limit >= 0 {
		hashed := b.written - int64(len(b.buf))
		if room := b.limit - hashed; room < int64(len(out)) {
			out = out[:max(room, 0)]
		}
	}
	b.h.Write(out)
	b.buf = b.buf[:0]
}

// Sum ends the body: a last line without CRLF gets one; a simple body that
// is empty canonicalizes to a single CRLF (§3.4.3).
func (b *bodyHasher) Sum() []byte {
	if b.cr {
		b.cr = false
		b.content('\r')
	}
	if b.lineUsed {
		b.endLine()
	}
	if !b.relaxed && b.written == 0 {
		b.emit('\r', '\n')
	}
	b.flush()
	return b.h.Sum(nil)
}
