package classify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// What a verdict keeps of a classified message so that a later "spam"
// or "not spam" click on the dashboard can be learnt without the
// message: its key (MessageKey, so that the click is learnt once, and a
// second click of the other class takes the first back) and its feature
// hashes, never its text; and, when it was classified for its one
// recipient's statistics (RecipientSalt), that recipient's salt, so that
// the click teaches the recipient too.
//
// Of each hash only its top bits are kept: a model's bucket is the
// hash's top bits, at most maxBits (26) of them, so learning needs no
// more; a recipient's salted buckets mix the top 32 (saltHash), so
// with a salt 32 are kept. Learning adds a message's buckets up, in any
// order, each as often as it comes (two features in one bucket count
// twice there): the top bits are kept sorted, each as often as it
// comes, as the gaps between them in a Golomb-Rice code (Rice
// parameter r: a gap g is g>>r in unary, ones ended by a zero, then
// its r low bits, first bit the octet's highest), which takes about
// log2(2^bits/n)+1.5 bits a hash where the 4 octets of the top 32 bits
// took 32. Of benchmsg's small message (90 features) a verdict keeps
// 258 octets where it kept 380; of the shared corpus's 3,500 messages
// 1.5 KB on average (2.7 before), at most 8 KB (16; TestKeptSize*).
//
// Layout: keptMagic, the 16 octets of the key, the number of hashes
// (uvarint), r (one octet), the code, its last octet filled with zero
// bits; with a recipient, keptRcptMagic, the key, the salt (8 octets,
// little-endian), then the same with 32 bits a hash. The forms kept
// before 2026-12 (keptMagic32, keptRcptMagic32: each hash's top 32 bits,
// little-endian, in the vector's order) are still read.
var (
	keptMagic       = []byte("mwf4")
	keptRcptMagic   = []byte("mwf5")
	keptMagic32     = []byte("mwf2")
	keptRcptMagic32 = []byte("mwf3")
)

const (
	keptKeyLen = 16
	// keptBits is how many top bits of a hash keptMagic's form keeps,
	// keptRcptBits keptRcptMagic's.
	keptBits     = maxBits
	keptRcptBits = 32
)

// classifyKept is Classify that also returns what a verdict keeps of
// msg (Kept).
func (c *Classifier) classifyKept(msg *Message) (Result, []byte) {
	return c.classifyKeptFor(msg, 0, RecipientOptions{})
}

// classifyKeptFor is classifyKept for the one recipient of salt
// (ClassifyVectorFor; 0: none), whose salt the kept features carry.
func (c *Classifier) classifyKeptFor(msg *Message, salt uint64, o RecipientOptions) (Result, []byte) {
	x := c.pool.Get().(*Extractor)
	defer c.pool.Put(x)
	v := x.Extract(msg)
	r := c.classifyVectorFor(v, salt, o, x)
	var kept []byte
	kept, x.kept = appendKept(keptKey(msg), v.Hashes, salt, x.kept)
	return r, kept
}

// keptKey is MessageKey of msg as a mailbox keeps it: the milter gets
// lines ending in CRLF, a Maildir file (which the Junk watcher and
// mailwall learn read) ends them in LF, and the same message must have
// the same key, so that a click on its verdict and a move into Junk
// count once.
func keptKey(msg *Message) string {
	return MessageKey(msg, nil) // CRLF read as LF there
}

// Kept encodes key (MessageKey's hex) and v's hashes for the store;
// nil when key is not MessageKey's form.
func Kept(key string, v *Vector) []byte { return KeptFor(key, v, 0) }

// KeptFor is Kept for a message classified for the one recipient of
// salt (0: none, Kept's form).
func KeptFor(key string, v *Vector, salt uint64) []byte {
	b, _ := appendKept(key, v.Hashes, salt, nil)
	return b
}

// appendKept is KeptFor with scratch for the sorted top bits, which it
// returns (grown if it had to be) for the next message.
func appendKept(key string, hashes []uint64, salt uint64, scratch []uint32) ([]byte, []uint32) {
	var k [keptKeyLen]byte
	if len(key) != 2*keptKeyLen {
		return nil, scratch
	}
	if _, err := hex.Decode(k[:], []byte(key)); err != nil {
		return nil, scratch
	}
	magic, width := keptMagic, keptBits
	if salt != 0 {
		magic, width = keptRcptMagic, keptRcptBits
	}
	top := slices.Grow(scratch[:0], len(hashes))
	for _, h := range hashes {
		top = append(top, uint32(h>>(64-width)))
	}
	slices.Sort(top)
	r, nbits := riceParameter(top)
	b := make([]byte, 0, len(magic)+keptKeyLen+8+binary.MaxVarintLen64+1+(nbits+7)/8)
	b = append(append(b, magic...), k[:]...)
	if salt != 0 {
		b = binary.LittleEndian.AppendUint64(b, salt)
	}
	b = append(binary.AppendUvarint(b, uint64(len(top))), byte(r))
	w := bitWriter{b: b}
	prev := uint32(0)
	for _, t := range top {
		g := t - prev
		prev = t
		q := uint(g >> r)
		for ; q >= 32; q -= 32 {
			w.write(1<<32-1, 32)
		}
		// q ones, a zero, then the r low bits: at most 31+1+32 bits.
		w.write((1<<q-1)<<1, q+1)
		w.write(uint64(g)&(1<<r-1), r)
	}
	return w.flush(), top
}

// riceParameter returns the Rice parameter that codes the gaps between
// sorted in the fewest bits, and how many. For gaps of a geometric
// spread of mean m the best is within one of log2(m)-0.53, so
// floor(log2(m)) and its neighbours are tried.
func riceParameter(sorted []uint32) (r uint, nbits int) {
	n := len(sorted)
	if n == 0 {
		return 0, 0
	}
	mean := uint64(sorted[n-1]) / uint64(n)
	k0 := bits.Len64(mean) // floor(log2(mean))+1; 0 for a mean of 0
	nbits = math.MaxInt
	for k := max(k0-2, 0); k <= min(k0, 32); k++ {
		size, prev := n*(k+1), uint32(0)
		for _, t := range sorted {
			size += int((t - prev) >> k)
			prev = t
		}
		if size < nbits {
			r, nbits = uint(k), size
		}
	}
	return r, nbits
}

// bitWriter appends bits to b, the first the highest of its octet.
type bitWriter struct {
	b   []byte
	acc uint64 // its low n bits are those not yet appended
	n   uint
}

// write appends the low n (at most 32) bits of v, the highest first.
func (w *bitWriter) write(v uint64, n uint) {
	w.acc = w.acc<<n | v
	w.n += n
	for w.n >= 8 {
		w.n -= 8
		w.b = append(w.b, byte(w.acc>>w.n))
	}
}

// flush appends the bits left, filled with zeros to an octet.
func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.b = append(w.b, byte(w.acc<<(8-w.n)))
		w.n = 0
	}
	return w.b
}

// ParseKept decodes what Kept wrote: the message's key and its
// features, each hash with its top bits only (keptBits, or 32 for the
// forms of before 2026-12 and with a recipient; the rest zero), which
// is all a model's buckets take, in no particular order, and without
// names. A blob that is not Kept's, or holds more than MaxFeatures
// hashes, is refused.
func ParseKept(b []byte) (key string, v *Vector, err error) {
	key, v, _, err = ParseKeptFor(b)
	return key, v, err
}

// ParseKeptFor is ParseKept that also returns the recipient's salt
// KeptFor kept (0: none).
func ParseKeptFor(b []byte) (key string, v *Vector, salt uint64, err error) {
	var rcpt, old bool
	switch {
	case bytes.HasPrefix(b, keptMagic):
	case bytes.HasPrefix(b, keptRcptMagic):
		rcpt = true
	case bytes.HasPrefix(b, keptMagic32):
		old = true
	case bytes.HasPrefix(b, keptRcptMagic32):
		rcpt, old = true, true
	default:
		return "", nil, 0, fmt.Errorf("classify: kept features: %d octets, not in the kept form", len(b))
	}
	n := len(keptMagic) + keptKeyLen
	if rcpt {
		n += 8
	}
	if len(b) < n {
		return "", nil, 0, fmt.Errorf("classify: kept features: %d octets, not in the kept form", len(b))
	}
	b = b[len(keptMagic):]
	key, b = hex.EncodeToString(b[:keptKeyLen]), b[keptKeyLen:]
	if rcpt {
		salt, b = binary.LittleEndian.Uint64(b), b[8:]
		if salt == 0 {
			return "", nil, 0, fmt.Errorf("classify: kept features: a recipient's salt of 0")
		}
	}
	var hashes []uint64
	switch {
	case old:
		hashes, err = parseKept32(b)
	case rcpt:
		hashes, err = parseKeptRice(b, keptRcptBits)
	default:
		hashes, err = parseKeptRice(b, keptBits)
	}
	if err != nil {
		return "", nil, 0, err
	}
	return key, &Vector{Hashes: hashes, ends: make([]uint32, len(hashes))}, salt, nil
}

// parseKept32 reads the hashes of the forms of before 2026-12: each
// one's top 32 bits, little-endian.
func parseKept32(b []byte) ([]uint64, error) {
	if len(b)%4 != 0 || len(b)/4 > MaxFeatures {
		return nil, fmt.Errorf("classify: kept features: %d octets of hashes", len(b))
	}
	hashes := make([]uint64, len(b)/4)
	for i := range hashes {
		hashes[i] = uint64(binary.LittleEndian.Uint32(b[4*i:])) << 32
	}
	return hashes, nil
}

// parseKeptRice reads the hashes appendKept coded with width top bits
// each. Its work is bounded by b's length: at most MaxFeatures hashes,
// each at least r+1 bits, none past 2^width (which bounds a gap's
// unary part), every bit of b read once; and only appendKept's
// encoding is read (no octet more, zero bits to fill the last).
func parseKeptRice(b []byte, width int) ([]uint64, error) {
	n, m := binary.Uvarint(b)
	if m <= 0 || n > MaxFeatures || len(b) < m+1 {
		return nil, fmt.Errorf("classify: kept features: no count of hashes, or over %d", MaxFeatures)
	}
	r := uint(b[m])
	b = b[m+1:]
	if r > uint(width) || uint64(len(b))*8 < n*uint64(r+1) {
		return nil, fmt.Errorf("classify: kept features: %d hashes in %d octets, Rice parameter %d", n, len(b), r)
	}
	hashes := make([]uint64, n)
	limit := uint64(1) << width
	pos, end := uint(0), uint(len(b))*8
	bit := func() uint64 { // pos < end
		v := uint64(b[pos>>3]>>(7-pos&7)) & 1
		pos++
		return v
	}
	var t uint64
	for i := range hashes {
		var q uint64
		for {
			if pos >= end {
				return nil, fmt.Errorf("classify: kept features: hash %d cut off", i)
			}
			if bit() == 0 {
				break
			}
			if q++; q > limit>>r {
				return nil, fmt.Errorf("classify: kept features: hash %d past 2^%d", i, width)
			}
		}
		if end-pos < r {
			return nil, fmt.Errorf("classify: kept features: hash %d cut off", i)
		}
		g := q << r
		for j := r; j > 0; j-- {
			g |= bit() << (j - 1)
		}
		if t += g; t >= limit {
			return nil, fmt.Errorf("classify: kept features: hash %d past 2^%d", i, width)
		}
		hashes[i] = t << (64 - width)
	}
	if end-pos >= 8 || (pos < end && b[len(b)-1]<<(pos&7) != 0) {
		return nil, fmt.Errorf("classify: kept features: %d octets after the hashes", len(b)-int(pos+7)/8)
	}
	return hashes, nil
}

// FeatureHashes is what a verdict keeps of the message this Report is
// of (Kept's form); nil when none was made.
func (r *Report) FeatureHashes() []byte { return r.kept }

// AddKept queues a message kept as Kept wrote it to be learnt as class,
// as Add does for a message: "spam" or "phish" (junk), "ham", "" to
// forget it. The key kept with it makes the learning idempotent: a
// message learnt as spam and then as ham is unlearnt as spam first.
// Features kept with a recipient's salt (KeptFor) are learnt for that
// recipient too, as AddFor does.
func (l *Learner) AddKept(ctx context.Context, kept []byte, class string) error {
	key, v, salt, err := ParseKeptFor(kept)
	if err != nil {
		return err
	}
	c := ""
	switch class {
	case "spam", "phish", "junk":
		c = "junk"
	case "ham":
		c = "ham"
	case "":
	default:
		return fmt.Errorf("classify: class %q (spam, ham)", class)
	}
	if l.Bits == 0 {
		st, err := l.St.ModelCounts(ctx, l.Name, math.MaxInt64, func(BucketCount) {})
		if err != nil {
			return fmt.Errorf("classify: learn into %s: %w", l.Name, err)
		}
		l.Bits = cmp.Or(st.Bits, DefaultBits)
	}
	buckets := make([]uint32, len(v.Hashes), 2*len(v.Hashes)+recipientCounts)
	for i, h := range v.Hashes {
		buckets[i] = uint32(h >> (64 - l.Bits))
	}
	if salt != 0 {
		key, buckets = recipientKey(key, salt), saltedBuckets(buckets, v.Hashes, salt, l.Bits)
	}
	l.batch = append(l.batch, Learning{Key: key, Class: c, Buckets: buckets})
	return nil
}

// AddFor is Add for a message to recipient rcpt: its features are
// learnt as they are and salted for the recipient (RecipientSalt), and
// the message is known by its key and the recipient, so each recipient
// of a message delivered to several learns it once. An empty rcpt is
// Add.
func (l *Learner) AddFor(ctx context.Context, raw []byte, msg *Message, class, rcpt string) error {
	salt := RecipientSalt(rcpt)
	if err := l.Add(ctx, raw, msg, class); err != nil || salt == 0 {
		return err
	}
	// Add extracted msg with l.x: its vector is the one just queued.
	it := &l.batch[len(l.batch)-1]
	it.Key = recipientKey(it.Key, salt)
	it.Buckets = saltedBuckets(it.Buckets, l.x.v.Hashes, salt, l.Bits)
	return nil
}

// LearnFor is Learn for a message to recipient rcpt (AddFor).
func (l *Learner) LearnFor(ctx context.Context, raw []byte, msg *Message, class, rcpt string) (LearnOutcome, error) {
	if err := l.AddFor(ctx, raw, msg, class, rcpt); err != nil {
		return LearnOutcome{}, err
	}
	out, err := l.Flush(ctx)
	if err != nil {
		return LearnOutcome{}, err
	}
	return out[0], nil
}

// MessageKey identifies a message for the guard against learning it
// twice: a hash of its Message-ID and its body, so the same message
// delivered to two folders (or copied back) is one, while a
// Message-ID reused by a bulk sender for different text is not. No
// text is kept, only the hash.
//
// The body is read with LF line ends (the milter sees CRLF, a Maildir
// copy LF: one message, one key), and only its first keyBodyPrefix
// octets and its length are hashed: the classifier reads no more, and
// hashing a 1 MB body whole cost as much as classifying it. The length
// is the body's without any CR, counted by one bytes.Count (SIMD; a
// look for LF a line took 0.1 ms for 1 MB): for a body whose CRs all
// end lines, the LF body's length, which the key held until 2026-12,
// so the keys learnt and kept before stay. A body with a bare CR (RFC
// 5322 §2.3 allows none) has another key than before: such a message
// in a Junk folder is learnt once more at the watcher's first pass
// after the change, and a click on its verdict kept before counts once
// more.
func MessageKey(msg *Message, raw []byte) string {
	var id string
	for _, f := range msg.Fields {
		if strings.EqualFold(f.Name, "Message-ID") {
			id = strings.TrimSpace(f.Value())
			break
		}
	}
	body := msg.Body
	if len(msg.Fields) == 0 {
		body = raw
	}
	n := len(body) - bytes.Count(body, []byte{'\r'})
	// The first keyBodyPrefix octets with LF line ends, gathered into
	// buf: SHA-256 written a line at a time took half as long again.
	// (The hash and buf stay on the stack: sha256.New is devirtualized.)
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	buf := make([]byte, 0, keyWriteBuf)
	for rest, left := body, keyBodyPrefix; left > 0 && len(rest) > 0; {
		var read int
		buf, read = appendLF(buf[:0], rest, min(left, cap(buf)))
		h.Write(buf)
		rest, left = rest[read:], left-len(buf)
	}
	h.Write(binary.LittleEndian.AppendUint64(buf[:0], uint64(n)))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var key [2 * keptKeyLen]byte
	hex.Encode(key[:], sum[:keptKeyLen])
	return string(key[:])
}

// appendLF appends to dst at most limit octets of src with each CRLF read
// as LF (a bare CR or LF stays), one look for LF a line, and says how
// much of src it read.
func appendLF(dst, src []byte, limit int) ([]byte, int) {
	read := 0
	for limit > 0 && read < len(src) {
		rest := src[read:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			m := min(len(rest), limit)
			return append(dst, rest[:m]...), read + m
		}
		line, end := rest[:i+1], i+1 // a bare LF: the line as it is
		if i > 0 && rest[i-1] == '\r' {
			line = rest[:i-1] // a CRLF: the line, then LF
		}
		m := min(len(line), limit)
		dst, limit, read = append(dst, line[:m]...), limit-m, read+m
		if m < len(line) || limit == 0 {
			return dst, read // the CR of a CRLF cut off is read next time
		}
		if len(line) < end { // the LF for the CRLF
			dst, limit, read = append(dst, '\n'), limit-1, read-len(line)+end
		}
	}
	return dst, read
}

// keyBodyPrefix is how much of a body MessageKey hashes.
const keyBodyPrefix = 64 << 10

// keyWriteBuf is how much of a body MessageKey gathers for one write.
const keyWriteBuf = 4 << 10
