package classify

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
)

// What a verdict keeps of a classified message so that a later "spam"
// or "not spam" click on the dashboard can be learnt without the
// message: its key (MessageKey, so that the click is learnt once, and a
// second click of the other class takes the first back) and its feature
// hashes, never its text. Only the top 32 bits of each hash are kept:
// a model's bucket is the hash's top bits, at most maxBits (26) of
// them, so learning needs no more, and a verdict keeps half as much (on
// the shared corpus's 3,500 messages: 2.7 KB on average, at most 16 KB,
// where whole hashes took 5.5 and 32 KB). Layout: keptMagic, the 16
// octets of the key, then each hash's top 32 bits, little-endian.
var keptMagic = []byte("mwf2")

const keptKeyLen = 16

// classifyKept is Classify that also returns what a verdict keeps of
// msg (Kept).
func (c *Classifier) classifyKept(msg *Message) (Result, []byte) {
	x := c.pool.Get().(*Extractor)
	defer c.pool.Put(x)
	v := x.Extract(msg)
	r := c.ClassifyVector(v)
	return r, Kept(keptKey(msg), v)
}

// keptKey is MessageKey of msg as a mailbox keeps it: the milter gets
// lines ending in CRLF, a Maildir file (which the Junk watcher and
// mailwall learn read) ends them in LF, and the same message must have
// the same key, so that a click on its verdict and a move into Junk
// count once.
func keptKey(msg *Message) string {
	if bytes.Contains(msg.Body, []byte("\r\n")) {
		m := *msg
		m.Body = bytes.ReplaceAll(msg.Body, []byte("\r\n"), []byte("\n"))
		msg = &m
	}
	return MessageKey(msg, nil)
}

// Kept encodes key (MessageKey's hex) and v's hashes for the store;
// nil when key is not MessageKey's form.
func Kept(key string, v *Vector) []byte {
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != keptKeyLen {
		return nil
	}
	b := make([]byte, 0, len(keptMagic)+keptKeyLen+4*len(v.Hashes))
	b = append(append(b, keptMagic...), k...)
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
	if !bytes.HasPrefix(b, keptMagic) || len(b) < len(keptMagic)+keptKeyLen {
		return "", nil, fmt.Errorf("classify: kept features: %d octets, not in the kept form", len(b))
	}
	b = b[len(keptMagic):]
	key, b = hex.EncodeToString(b[:keptKeyLen]), b[keptKeyLen:]
	if len(b)%4 != 0 || len(b)/4 > MaxFeatures {
		return "", nil, fmt.Errorf("classify: kept features: %d octets of hashes", len(b))
	}
	v = &Vector{Hashes: make([]uint64, len(b)/4), ends: make([]uint32, len(b)/4)}
	for i := range v.Hashes {
		v.Hashes[i] = uint64(binary.LittleEndian.Uint32(b[4*i:])) << 32
	}
	return key, v, nil
}

// FeatureHashes is what a verdict keeps of the message this Report is
// of (Kept's form); nil when none was made.
func (r *Report) FeatureHashes() []byte { return r.kept }

// AddKept queues a message kept as Kept wrote it to be learnt as class,
// as Add does for a message: "spam" or "phish" (junk), "ham", "" to
// forget it. The key kept with it makes the learning idempotent: a
// message learnt as spam and then as ham is unlearnt as spam first.
func (l *Learner) AddKept(ctx context.Context, kept []byte, class string) error {
	key, v, err := ParseKept(kept)
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
	buckets := make([]uint32, len(v.Hashes))
	for i, h := range v.Hashes {
		buckets[i] = uint32(h >> (64 - l.Bits))
	}
	l.batch = append(l.batch, Learning{Key: key, Class: c, Buckets: buckets})
	return nil
}
