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
// twice there): the top bits are kept each as often as it comes, in no
// particular order but that of their high parts, as in an Elias-Fano
// code: each value's r low bits as they are, its high part (the rest)
// as the step from the one before's, in unary (ones ended by a zero);
// with r chosen so that there are about as many high parts as values,
// a value takes about log2(2^bits/n)+2 bits where the 4 octets of the
// top 32 bits took 32 (a Golomb-Rice code of the gaps between them
// sorted is about 2% smaller, but sorting them whole made encoding take
// half as long again, by a counting and an insertion sort, or 4 times
// as long, by pdqsort). Of
// benchmsg's small message (90 features) a verdict keeps 263 octets
// where it kept 380; of the shared corpus's 3,500 messages 1.5 KB on
// average (2.7 before), at most 8 KB (16; TestKeptSize*). Encoding
// costs about 0.6 µs a small message where the 32-bit form took 0.16
// (BenchmarkKeptEncode).
//
// Layout: keptMagic, the 16 octets of the key, the number of values
// (uvarint), r (one octet), then each value's code, the bits of each
// octet highest first, the last octet filled with zero bits; with a
// recipient, keptRcptMagic, the key, the salt (8 octets,
// little-endian), then the same with 32 bits a value. The forms kept
// before 2026-12 (keptMagic32, keptRcptMagic32: each hash's top 32
// bits, little-endian, in the vector's order) are still read.
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

// classifyKeptFor is Classify for the one recipient of salt
// (ClassifyVectorFor; 0: none) that also returns what a verdict keeps
// of msg (KeptFor), whose salt the kept features carry.
func (c *Classifier) classifyKeptFor(msg *Message, salt uint64, o RecipientOptions) (Result, []byte) {
	x := c.pool.Get().(*Extractor)
	defer c.pool.Put(x)
	v := x.Extract(msg)
	r := c.classifyVectorFor(v, salt, o, x)
	return r, appendKept(keptKey(msg), v.Hashes, salt, &x.kept)
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
	return appendKept(key, v.Hashes, salt, nil)
}

// appendKept is KeptFor with scratch to group the top bits in (nil: its
// own).
func appendKept(key string, hashes []uint64, salt uint64, scratch *keptScratch) []byte {
	var k [keptKeyLen]byte
	if len(key) != 2*keptKeyLen {
		return nil
	}
	if _, err := hex.Decode(k[:], []byte(key)); err != nil {
		return nil
	}
	magic, width := keptMagic, keptBits
	if salt != 0 {
		magic, width = keptRcptMagic, keptRcptBits
	}
	if scratch == nil {
		scratch = &keptScratch{}
	}
	// r is chosen for values spread over all 2^width: with the highest
	// of the values it is seldom another, and is known before them.
	r := keptLowBits(len(hashes), width)
	top, most := scratch.group(hashes, width, r)
	nbits := int(most>>r) + len(top)*int(r+1)
	head := len(magic) + keptKeyLen + 8 + binary.MaxVarintLen64 + 1
	// 8 octets more: the code is written 4 at a time, the last 8 cut.
	b := make([]byte, 0, head+(nbits+7)/8+8)
	b = append(append(b, magic...), k[:]...)
	if salt != 0 {
		b = binary.LittleEndian.AppendUint64(b, salt)
	}
	b = append(binary.AppendUvarint(b, uint64(len(top))), byte(r))
	// The code's bits gather at the top of acc (n of them) and go out
	// 32 at a time; a hash's code (q ones, a zero, r low bits) is
	// added whole when it has at most 32 bits, as nearly all have
	// (written out here: with a closure acc and n were not registers).
	code := b[len(b) : len(b)+(nbits+7)/8+8]
	o, acc, n := 0, uint64(0), uint(0)
	high, mask := uint(0), uint64(1)<<r-1
	for _, t := range top {
		q := uint(t>>(r&31)) - high
		high += q
		// Each shift's count masked: the compiler then leaves out its
		// handling of counts past 63, which took half this loop's time.
		if c := q + 1 + r; c <= 32 {
			acc |= ((1<<(q&63)-1)<<((1+r)&63) | uint64(t)&mask) << ((64 - n - c) & 63)
			if n += c; n >= 32 {
				binary.BigEndian.PutUint32(code[o:], uint32(acc>>32))
				o, acc, n = o+4, acc<<32, n-32
			}
			continue
		}
		for ; q >= 32; q -= 32 {
			o, acc, n = putBits(code, o, acc, n, 1<<32-1, 32)
		}
		o, acc, n = putBits(code, o, acc, n, (1<<q-1)<<1, q+1)
		o, acc, n = putBits(code, o, acc, n, uint64(t)&mask, r)
	}
	binary.BigEndian.PutUint64(code[o:], acc)
	return b[:len(b)+(nbits+7)/8]
}

// putBits adds the low c (at most 32) bits of v to the c bits at the
// top of acc (n < 32 of them), writing them to code at o 32 at a time.
func putBits(code []byte, o int, acc uint64, n uint, v uint64, c uint) (int, uint64, uint) {
	acc |= v << (64 - n - c)
	if n += c; n >= 32 {
		binary.BigEndian.PutUint32(code[o:], uint32(acc>>32))
		o, acc, n = o+4, acc<<32, n-32
	}
	return o, acc, n
}

// keptLowBits returns how many low bits r of each of n values spread
// over 2^width to write as they are, leaving the fewest bits in all:
// the high parts' steps (2^width>>r in all, in unary) and n*(r+1). At
// the best r there are at most about 2n high parts (one more low bit
// would save more than n), which bounds appendKept's counts; none
// (n 0) is taken as one.
func keptLowBits(n, width int) uint {
	n = max(n, 1)
	r, least := uint(0), math.MaxInt
	for k := range width { // below width: t>>r of a uint32 is then t>>(r&31)
		if size := (1<<width-1)>>k + n*(k+1); size < least {
			r, least = uint(k), size
		}
	}
	return r
}

// keptScratch is what appendKept groups in, kept from one message to
// the next.
type keptScratch struct {
	a, b   []uint32
	counts []uint32
}

// group returns the top width bits of each of hashes in the order of
// their high parts (t>>r, r below 32), and the highest, by a counting sort: within
// a high part the order does not matter, so none is sorted further
// (keptMagic's comment says what sorting whole cost).
func (s *keptScratch) group(hashes []uint64, width int, r uint) ([]uint32, uint32) {
	n := len(hashes)
	if cap(s.a) < n {
		s.a, s.b = make([]uint32, n), make([]uint32, n)
	}
	highs := int((uint64(1)<<width-1)>>r) + 1
	if cap(s.counts) < highs {
		s.counts = make([]uint32, highs)
	}
	counts := s.counts[:highs]
	clear(counts)
	top, most := s.a[:n], uint32(0)
	for i, h := range hashes {
		t := uint32(h >> (64 - width))
		top[i], most = t, max(most, t)
		counts[t>>(r&31)]++
	}
	sum := uint32(0)
	for i, c := range counts[:most>>(r&31)+1] {
		counts[i], sum = sum, sum+c
	}
	dst := s.b[:n]
	for _, t := range top {
		j := &counts[t>>(r&31)]
		dst[*j] = t
		*j++
	}
	return dst, most
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
		hashes, err = parseKeptCode(b, keptRcptBits)
	default:
		hashes, err = parseKeptCode(b, keptBits)
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

// parseKeptCode reads the hashes appendKept coded with width top bits
// each. Its work is bounded by b's length: at most MaxFeatures hashes,
// each at least r+1 bits, none past 2^width (which bounds the high
// parts' steps), every bit of b read once; and only appendKept's
// encoding is read (no octet more, zero bits to fill the last).
func parseKeptCode(b []byte, width int) ([]uint64, error) {
	n, m := binary.Uvarint(b)
	if m <= 0 || n > MaxFeatures || len(b) < m+1 {
		return nil, fmt.Errorf("classify: kept features: no count of hashes, or over %d", MaxFeatures)
	}
	r := uint(b[m])
	b = b[m+1:]
	if r > uint(width) || uint64(len(b))*8 < n*uint64(r+1) {
		return nil, fmt.Errorf("classify: kept features: %d hashes in %d octets, %d low bits each", n, len(b), r)
	}
	hashes := make([]uint64, n)
	highest := (uint64(1)<<width - 1) >> r
	pos, end := uint(0), uint(len(b))*8
	bit := func() uint64 { // pos < end
		v := uint64(b[pos>>3]>>(7-pos&7)) & 1
		pos++
		return v
	}
	var high uint64
	for i := range hashes {
		for {
			if pos >= end {
				return nil, fmt.Errorf("classify: kept features: hash %d cut off", i)
			}
			if bit() == 0 {
				break
			}
			if high++; high > highest {
				return nil, fmt.Errorf("classify: kept features: hash %d past 2^%d", i, width)
			}
		}
		if end-pos < r {
			return nil, fmt.Errorf("classify: kept features: hash %d cut off", i)
		}
		t := high
		for range r {
			t = t<<1 | bit()
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
