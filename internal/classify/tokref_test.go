package classify

// tokref_test.go is tokenize.go as it was at commit 1f77738, before
// its ASCII fast path, every name prefixed "ref": the reference the
// tokenizer is compared with (TestTokenizerReference).

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Word limits: shorter words say little, longer ones are encoded data
// or hashes, each seen once.
const (
	refMinWordRunes = 2
	refMaxWordRunes = 24
	// refOsbWindow is how many words before a word pair with it: distances
	// one to three, as "a b", "a _ b", "a _ _ b" (refTokenizer.shift and
	// pairGap are written out for three).
	refOsbWindow = 3
)

// refMaxTokenText bounds the text one run of the refTokenizer reads (the
// message's decoded text, its subject, a display name): what is past it
// is not read, so 1 MB of text costs what 64 KiB does. SpamAssassin's
// body rules read the first 50,000 octets of a text part
// (body_part_scan_size, since 3.4.3); rspamd's statistics start skipping
// a part's words after 600 (words_decay). The content extraction cuts
// the text it decodes at the same 64 KiB (internal/phish), so within it
// the features are those of the whole text; MaxFeatures stops a varied
// text sooner.
const refMaxTokenText = 64 << 10

// refFnvPrime and refFnvOffset are 64-bit FNV-1a's (hashFeature).
const (
	refFnvPrime  = 1099511628211
	refFnvOffset = 14695981039346656037
)

// refFnv continues the FNV-1a hash h over s.
func refFnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * refFnvPrime
	}
	return h
}

// ASCII classes for the refTokenizer: refWordByte[c] is what byte c adds to a
// word (lower case, a digit as '0'), 0 when it ends one; refChunkClass[c]
// says what c means to the split into chunks between white space.
var refWordByte, refChunkClass = func() (w, k [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		w[c], w[c-'a'+'A'] = byte(c), byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		w[c] = '0'
	}
	for _, c := range " \n\t\r\f\v" {
		k[c] = refClsSpace
	}
	k[':'], k['@'] = refClsColon, refClsAt
	for c := 0x80; c < 0x100; c++ {
		k[c] = refClsHigh
	}
	return w, k
}()

const (
	refClsSpace = 1 << iota // ASCII white space: ends the chunk
	refClsColon             // the chunk may be a link ("://")
	refClsAt                // the chunk may be an address
	refClsHigh              // a byte of a UTF-8 sequence: the chunk is not ASCII
)

// refTokenizer splits text into words, word pairs and CJK bigrams. It keeps
// its buffers between messages.
type refTokenizer struct {
	word  []byte // the word being read, lower-cased
	runes int    // its length in runes
	h     uint64 // FNV-1a of kind, ':' and word: the word's hash before mix
	kh    uint64 // FNV-1a of kind and ':'
	// The words before it, prev[0] the nearest: their hashes, and
	// the indexes of their features in the vector, which name them.
	prevH   [refOsbWindow]uint64
	prevI   [refOsbWindow]uint16
	nprev   int
	cjkPrev rune // the previous CJK character of the current run, or 0
	cjkRun  int  // length of the current CJK run
	pair    []byte

	x                     *Extractor
	kind, kindColon, cjks string

	// Text that repeats itself (a line over and over, a signature
	// block) costs a look-up a word, not four inserts: after a word
	// whose features were all in the vector already (dup), the
	// refTokenizer remembers its window in repeats, and a word with the
	// same window later adds nothing either: the features of a word
	// and its pairs are those of its hash and its window's, and the
	// vector only grows (or is full) within a run.
	dup     bool
	runs    uint64 // runs so far: an entry of repeats is this run's
	repeats [1 << refRepeatBits]refRepeat
}

// run adds the features of text under kind ("word", "subject", ...):
// its words as kind, word pairs as "kind pair", CJK bigrams as
// "kind cjk". It reads the first refMaxTokenText octets of text.
func (t *refTokenizer) run(x *Extractor, kind, text string) {
	t.x, t.kind, t.kindColon, t.cjks = x, kind, kind+":", kind+" cjk"
	t.kh = refFnv(refFnv(refFnvOffset, kind), ":")
	t.nprev, t.cjkPrev, t.cjkRun = 0, 0, 0
	t.prevH, t.dup = [refOsbWindow]uint64{}, false
	t.runs++
	t.word, t.runes, t.h = t.word[:0], 0, t.kh
	if len(text) > refMaxTokenText {
		// Cut at the start of a character, not inside one.
		n := refMaxTokenText
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
	}
	for len(text) > 0 && !x.full() {
		// One chunk between white space at a time.
		i, cls := 0, byte(0)
		for i < len(text) {
			k := refChunkClass[text[i]]
			if k&refClsHigh == 0 {
				if k&refClsSpace != 0 {
					break
				}
				cls |= k
				i++
				continue
			}
			r, n := utf8.DecodeRuneInString(text[i:])
			if unicode.IsSpace(r) {
				break
			}
			cls |= refClsHigh
			i += n
		}
		chunk := text[:i]
		text = text[i:]
		if len(text) > 0 {
			_, n := utf8.DecodeRuneInString(text)
			text = text[n:]
		}
		if chunk == "" {
			continue
		}
		switch {
		case cls&refClsColon != 0 && strings.Contains(chunk, "://") || chunk[0]|0x20 == 'w' && refHasPrefixFold(chunk, "www."):
			// Links have features of their own.
		case cls&refClsAt != 0 && strings.IndexByte(chunk, '@') > 0:
			t.address(chunk)
		case cls&refClsHigh == 0:
			t.asciiWords(chunk)
		default:
			t.words(chunk)
		}
	}
	t.flush()
	t.endCJK()
}

// asciiWords is words for a chunk of ASCII: a word is its letters and
// digits, hashed as they are read.
func (t *refTokenizer) asciiWords(chunk string) {
	// A chunk starts with no word and no CJK run: the one before it
	// ended them. The word is built in locals, kept in t for flush.
	w, h, n := t.word, t.h, t.runes
	for i := 0; i < len(chunk); i++ {
		c := refWordByte[chunk[i]]
		if c == 0 {
			if n > 0 {
				t.word, t.h, t.runes = w, h, n
				t.flush()
				w, h, n = t.word, t.h, 0
			}
			continue
		}
		if n <= refMaxWordRunes {
			// (Past refMaxWordRunes the word is "(long word)", whatever
			// it says.)
			w = append(w, c)
			h = (h ^ uint64(c)) * refFnvPrime
		}
		n++
	}
	t.word, t.h, t.runes = w, h, n
	t.flush()
}

// appendRune appends r to the word being read.
func (t *refTokenizer) appendRune(r rune) {
	if t.runes <= refMaxWordRunes {
		n := len(t.word)
		t.word = utf8.AppendRune(t.word, r)
		for _, c := range t.word[n:] {
			t.h = (t.h ^ uint64(c)) * refFnvPrime
		}
	}
	t.runes++
}

func refHasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// address adds an address in the text: the recipient's own, one in the
// recipient's domain, or another's registered domain.
func (t *refTokenizer) address(chunk string) {
	a := strings.ToLower(strings.Trim(chunk, "<>()[],;:.!?\"'"))
	local, domain, ok := strings.Cut(a, "@")
	if !ok || local == "" || domain == "" {
		t.words(chunk)
		return
	}
	r := &t.x.rcpt
	switch {
	case contains(r.addrs, a):
		t.x.addString("address", "recipient")
	case r.domain(domain) || r.domain(registered(domain)):
		t.x.addString("address", "recipient's domain")
	default:
		t.x.addString("address-domain", registered(domain))
	}
}

// words splits a chunk into words and CJK runs.
func (t *refTokenizer) words(chunk string) {
	for _, r := range chunk {
		if r < 0x80 {
			switch c := byte(r); {
			case refWordByte[c] != 0:
				t.endCJK()
				t.appendRune(rune(refWordByte[c]))
			default:
				t.flush()
				t.endCJK()
			}
			continue
		}
		if r >= 0xFF01 && r <= 0xFF5E {
			r -= 0xFEE0 // full-width ASCII reads as ASCII
		}
		switch {
		case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Mn, r):
			// Zero-width and format characters, combining marks: read
			// through them, so that they cannot split a word unseen.
		case refIsCJK(r):
			t.flush()
			t.cjk(r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			t.endCJK()
			if unicode.IsDigit(r) {
				r = '0'
			} else {
				r = unicode.ToLower(r)
			}
			t.appendRune(r)
		default:
			t.flush()
			t.endCJK()
		}
	}
	t.flush()
	t.endCJK()
}

// refIsCJK reports whether r is written without spaces between words.
func refIsCJK(r rune) bool {
	return r >= 0x2E80 && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r) || r == 'ー')
}

// cjk adds the bigram of r and the character before it.
func (t *refTokenizer) cjk(r rune) {
	if t.cjkPrev != 0 {
		t.pair = utf8.AppendRune(utf8.AppendRune(t.pair[:0], t.cjkPrev), r)
		t.x.add(t.cjks, t.pair)
	}
	t.cjkPrev = r
	t.cjkRun++
}

// endCJK ends a CJK run; a run of one character is a feature of its own.
func (t *refTokenizer) endCJK() {
	if t.cjkRun == 1 {
		t.pair = utf8.AppendRune(t.pair[:0], t.cjkPrev)
		t.x.add(t.cjks, t.pair)
	}
	t.cjkPrev, t.cjkRun = 0, 0
}

// flush ends the current word: adds it and its pairs with the words
// before it.
func (t *refTokenizer) flush() {
	w, n, h := t.word, t.runes, t.h
	t.word, t.runes, t.h = t.word[:0], 0, t.kh
	if n < refMinWordRunes {
		return
	}
	if n > refMaxWordRunes {
		t.x.addString(t.kind, "(long word)")
		return
	}
	if r := &t.x.rcpt; r.lens&(1<<(len(w)%64)) != 0 {
		switch {
		case refContainsBytes(r.locals, w):
			w = append(w[:0], "(recipient)"...)
			h = refFnv(t.kh, "(recipient)")
		case refContainsBytes(r.labels, w):
			w = append(w[:0], "(recipient's domain)"...)
			h = refFnv(t.kh, "(recipient's domain)")
		}
	}
	x := t.x
	h = mix(h) // hashFeature(t.kind, w)
	var e *refRepeat
	if t.dup {
		// Text that repeats itself: the word and its window may have
		// been read before, all four features already in the vector.
		e = t.repeat(h)
		if e.run == t.runs && e.h == h && e.prev == t.prevH && e.nprev == t.nprev {
			t.shift(h, e.wi)
			t.word = w[:0]
			return
		}
	}
	wi, added := x.insertIndex(h)
	// (The slices are appended to in locals, stored back once.)
	names, ends := x.v.names, x.v.ends
	if added {
		names = append(names, t.kindColon...)
		names = append(names, w...)
		ends = append(ends, uint32(len(names)))
	}
	dup := !added
	if wi >= 0 {
		for d := 0; d < t.nprev; d++ {
			// A pair's hash is made of its words' hashes, not of its
			// name, which is written only when the pair is new, and
			// then as a pairName.
			if !x.insert(mix(t.prevH[d]*0x9e3779b97f4a7c15 ^ h ^ uint64(d+1)*0xbf58476d1ce4e5b9)) {
				continue
			}
			dup = false
			p := t.prevI[d]
			names = append(names, pairMark, byte(d), byte(p), byte(p>>8), byte(wi), byte(wi>>8))
			ends = append(ends, uint32(len(names)))
		}
	}
	x.v.names, x.v.ends = names, ends
	if dup {
		if e == nil {
			e = t.repeat(h)
		}
		*e = refRepeat{run: t.runs, h: h, prev: t.prevH, nprev: t.nprev, wi: wi}
	}
	t.dup = dup
	t.shift(h, wi)
	t.word = w[:0]
}

// refRepeat is the entry of repeats for the word of hash h in the window.
func (t *refTokenizer) repeat(h uint64) *refRepeat {
	k := h ^ t.prevH[0]*0x9e3779b97f4a7c15 ^ t.prevH[1]*0xbf58476d1ce4e5b9 ^ t.prevH[2]*0x94d049bb133111eb
	return &t.repeats[k>>(64-refRepeatBits)]
}

// shift moves the window on by the word of hash h and feature index wi.
func (t *refTokenizer) shift(h uint64, wi int) {
	// Shift the window. (A word not in the vector, which was full,
	// is in no pair: nothing more is added.)
	t.prevH[2], t.prevH[1], t.prevH[0] = t.prevH[1], t.prevH[0], h
	t.prevI[2], t.prevI[1], t.prevI[0] = t.prevI[1], t.prevI[0], uint16(wi)
	t.nprev = min(t.nprev+1, refOsbWindow)
}

// refRepeatBits sizes refTokenizer.repeats.
const refRepeatBits = 6

// refRepeat is a word whose features and pairs were all in the vector.
type refRepeat struct {
	run   uint64
	h     uint64
	prev  [refOsbWindow]uint64
	nprev int
	wi    int
}

// refContainsBytes is contains for a word in a buffer.
func refContainsBytes(list []string, w []byte) bool {
	for _, s := range list {
		if s == string(w) {
			return true
		}
	}
	return false
}
