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
// the click teaches the recipient too. Only the top 32 bits of each hash are kept:
// a model's bucket is the hash's top bits, at most maxBits (26) of
// them, so learning needs no more, and a verdict keeps half as much (on
// the shared corpus's 3,500 messages: 2.7 KB on average, at most 16 KB,
// where whole hashes took 5.5 and 32 KB). Layout: keptMagic, the 16
// octets of the key, then each hash's top 32 bits, little-endian; with
// a recipient, keptRcptMagic, the key, the salt (8 octets,
// little-endian), then the hashes.
var (
	keptMagic     = []byte("mwf2")
	keptRcptMagic = []byte("mwf3")
)

const keptKeyLen = 16

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
	return r, KeptFor(keptKey(msg), v, salt)
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
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != keptKeyLen {
		return nil
	}
	b := make([]byte, 0, len(keptMagic)+keptKeyLen+8+4*len(v.Hashes))
	if salt == 0 {
		b = append(append(b, keptMagic...), k...)
	} else {
		b = binary.LittleEndian.AppendUint64(append(append(b, keptRcptMagic...), k...), salt)
	}
	for _, h := range v.Hashes {
		b = binary.LittleEndian.AppendUint32(b, uint32(h>>32))
	}
	return b
}

// ParseKept decodes what Kept wrote: the message's key and its
// features, each hash with its top 32 bits only (the rest zero), which
// is all a model's buckets take, and without names. A blob that is not
// Kept's, or holds more than MaxFeatures hashes, is refused.
func ParseKept(b []byte) (key string, v *Vector, err error) {
	key, v, _, err = ParseKeptFor(b)
	return key, v, err
}

// ParseKeptFor is ParseKept that also returns the recipient's salt
// KeptFor kept (0: none).
func ParseKeptFor(b []byte) (key string, v *Vector, salt uint64, err error) {
	n := len(keptMagic) + keptKeyLen
	rcpt := bytes.HasPrefix(b, keptRcptMagic)
	if rcpt {
		n += 8
	}
	if !(rcpt || bytes.HasPrefix(b, keptMagic)) || len(b) < n {
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
	if len(b)%4 != 0 || len(b)/4 > MaxFeatures {
		return "", nil, 0, fmt.Errorf("classify: kept features: %d octets of hashes", len(b))
	}
	v = &Vector{Hashes: make([]uint64, len(b)/4), ends: make([]uint32, len(b)/4)}
	for i := range v.Hashes {
		v.Hashes[i] = uint64(binary.LittleEndian.Uint32(b[4*i:])) << 32
	}
	return key, v, salt, nil
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
