package classify

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Word limits: shorter words say little, longer ones are encoded data
// or hashes, each seen once.
const (
	minWordRunes = 2
	maxWordRunes = 24
	// osbWindow is how many words before a word pair with it: distances
	// one to three, as "a b", "a _ b", "a _ _ b" (tokenizer.shift and
	// pairGap are written out for three).
	osbWindow = 3
)

// maxTokenText bounds the text one run of the tokenizer reads (the
// message's decoded text, its subject, a display name): what is past it
// is not read, so 1 MB of text costs what 64 KiB does. SpamAssassin's
// body rules read the first 50,000 octets of a text part
// (body_part_scan_size, since 3.4.3); rspamd's statistics start skipping
// a part's words after 600 (words_decay). The content extraction cuts
// the text it decodes at the same 64 KiB (internal/phish), so within it
// the features are those of the whole text; MaxFeatures stops a varied
// text sooner.
const maxTokenText = 64 << 10

// fnvPrime and fnvOffset are 64-bit FNV-1a's (hashFeature).
const (
	fnvPrime  = 1099511628211
	fnvOffset = 14695981039346656037
)

// fnv continues the FNV-1a hash h over s.
func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

// ASCII classes for the tokenizer: wordByte[c] is what byte c adds to a
// word (lower case, a digit as '0'), 0 when it ends one; chunkClass[c]
// says what c means to the split into chunks between white space.
var wordByte, chunkClass = func() (w, k [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		w[c], w[c-'a'+'A'] = byte(c), byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		w[c] = '0'
	}
	for _, c := range " \n\t\r\f\v" {
		k[c] = clsSpace
	}
	k[':'], k['@'] = clsColon, clsAt
	for c := 0x80; c < 0x100; c++ {
		k[c] = clsHigh
	}
	return w, k
}()

const (
	clsSpace = 1 << iota // ASCII white space: ends the chunk
	clsColon             // the chunk may be a link ("://")
	clsAt                // the chunk may be an address
	clsHigh              // a byte of a UTF-8 sequence: the chunk is not ASCII
)

// tokenizer splits text into words, word pairs and CJK bigrams. It keeps
// its buffers between messages.
type tokenizer struct {
	word  []byte // the word being read, lower-cased
	runes int    // its length in runes
	h     uint64 // FNV-1a of kind, ':' and word: the word's hash before mix
	kh    uint64 // FNV-1a of kind and ':'
	// The words before it, prev[0] the nearest: their hashes, and
	// the indexes of their features in the vector, which name them.
	prevH   [osbWindow]uint64
	prevI   [osbWindow]uint16
	nprev   int
	cjkPrev rune // the previous CJK character of the current run, or 0
	cjkRun  int  // length of the current CJK run
	pair    []byte

	x                     *Extractor
	kind, kindColon, cjks string

	// Text that repeats itself (a line over and over, a signature
	// block) costs a look-up a word, not four inserts: after a word
	// whose features were all in the vector already (dup), the
	// tokenizer remembers its window in repeats, and a word with the
	// same window later adds nothing either: the features of a word
	// and its pairs are those of its hash and its window's, and the
	// vector only grows (or is full) within a run.
	dup     bool
	runs    uint64 // runs so far: an entry of repeats is this run's
	repeats [1 << repeatBits]repeat
}

// run adds the features of text under kind ("word", "subject", ...):
// its words as kind, word pairs as "kind pair", CJK bigrams as
// "kind cjk". It reads the first maxTokenText octets of text.
//
// Text is read a chunk between white space at a time (chunk). An ASCII
// chunk of words, the common case, is read here in one pass: its words
// are hashed as they are read and held back (pend) until the chunk's
// end shows it is no link or address, then added from their hashes and
// the text itself (flushASCII), with no copy of a word. A chunk with a
// colon, an '@', a non-ASCII octet or more than pendingWords words is
// read again by chunk, which reads it as any chunk.
func (t *tokenizer) run(x *Extractor, kind, text string) {
	t.x, t.kind = x, kind
	t.kindColon, t.cjks = kindNames(kind)
	kh := fnv(fnv(fnvOffset, kind), ":")
	t.kh = kh
	t.nprev, t.cjkPrev, t.cjkRun = 0, 0, 0
	t.prevH, t.dup = [osbWindow]uint64{}, false
	t.runs++
	t.word, t.runes, t.h = t.word[:0], 0, t.kh
	if len(text) > maxTokenText {
		// Cut at the start of a character, not inside one.
		n := maxTokenText
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
	}
	var pend [pendingWords]pendingWord
	for i := 0; i < len(text) && !x.full(); {
		if chunkClass[text[i]] == clsSpace {
			i++
			continue
		}
		// An ASCII chunk: its words and their running hashes.
		start, np, slow := i, 0, false
		for i < len(text) {
			b := text[i]
			if wordByte[b] == 0 {
				if k := chunkClass[b]; k != 0 {
					// White space ends the chunk; anything else of
					// chunkClass may make it a link or an address.
					slow = k != clsSpace
					break
				}
				i++
				continue
			}
			ws := i
			var h uint64
			i, h = hashWord(text, i, kh)
			if np == len(pend) {
				slow = true
				break
			}
			pend[np] = pendingWord{h: h, start: ws, end: i}
			np++
		}
		switch {
		case slow:
			i = start + t.chunk(text[start:])
		case text[start]|0x20 == 'w' && hasPrefixFold(text[start:i], "www."):
			// A link (chunk).
		default:
			for _, p := range pend[:np] {
				// A word read before in the same window, as most
				// of a text that repeats itself: nothing is added
				// (addWord, inlined).
				if n := p.end - p.start; t.dup && n >= minWordRunes && n <= maxWordRunes && x.rcpt.lens&(1<<n) == 0 {
					if e := t.repeat(p.h); e.run == t.runs && e.rh == p.h && e.prev == t.prevH {
						t.shift(e.h, e.wi)
						continue
					}
				}
				t.flushASCII(p.h, text[p.start:p.end])
			}
		}
	}
	t.flush()
	t.endCJK()
}

// hashWord continues the running hash h over the word octets of text
// from i (wordByte), and returns where they end and the hash.
func hashWord(text string, i int, h uint64) (int, uint64) {
	for ; i < len(text); i++ {
		c := wordByte[text[i]]
		if c == 0 {
			break
		}
		h = (h ^ uint64(c)) * fnvPrime
	}
	return i, h
}

// kindNames are "kind:" and "kind cjk", without a concatenation for
// the kinds Extract reads.
func kindNames(kind string) (colon, cjk string) {
	switch kind {
	case "word":
		return "word:", "word cjk"
	case "subject":
		return "subject:", "subject cjk"
	case "from-name":
		return "from-name:", "from-name cjk"
	}
	return kind + ":", kind + " cjk"
}

// pendingWords bounds the words of an ASCII chunk that run holds back
// until the chunk's end.
const pendingWords = 16

// pendingWord is a word of an ASCII chunk: its running hash (before
// mix) and where it is in the text.
type pendingWord struct {
	h          uint64
	start, end int
}

// chunk reads the chunk at the start of text (up to white space) and
// returns how much of text it read, the white space after it included.
func (t *tokenizer) chunk(text string) int {
	i, cls := 0, byte(0)
	for i < len(text) {
		k := chunkClass[text[i]]
		if k&clsHigh == 0 {
			if k&clsSpace != 0 {
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
		cls |= clsHigh
		i += n
	}
	chunk, read := text[:i], i
	if i < len(text) {
		_, n := utf8.DecodeRuneInString(text[i:])
		read += n
	}
	if chunk == "" {
		return read
	}
	switch {
	case cls&clsColon != 0 && strings.Contains(chunk, "://") || chunk[0]|0x20 == 'w' && hasPrefixFold(chunk, "www."):
		// Links have features of their own.
	case cls&clsAt != 0 && strings.IndexByte(chunk, '@') > 0:
		t.address(chunk)
	case cls&clsHigh == 0:
		t.asciiWords(chunk)
	default:
		t.words(chunk)
	}
	return read
}

// asciiWords is words for a chunk of ASCII: a word is its letters and
// digits (hashWord), added from its hash and the chunk (flushASCII), as
// run's fast path adds them. A chunk starts with no word and no CJK
// run: the one before it ended them.
func (t *tokenizer) asciiWords(chunk string) {
	for i := 0; i < len(chunk); {
		if wordByte[chunk[i]] == 0 {
			i++
			continue
		}
		start := i
		var h uint64
		i, h = hashWord(chunk, i, t.kh)
		t.flushASCII(h, chunk[start:i])
	}
}

// appendRune appends r to the word being read.
func (t *tokenizer) appendRune(r rune) {
	if t.runes <= maxWordRunes {
		n := len(t.word)
		t.word = utf8.AppendRune(t.word, r)
		for _, c := range t.word[n:] {
			t.h = (t.h ^ uint64(c)) * fnvPrime
		}
	}
	t.runes++
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// address adds an address in the text: the recipient's own, one in the
// recipient's domain, or another's registered domain.
func (t *tokenizer) address(chunk string) {
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
	case r.domain(domain) || r.domain(t.x.registered(domain)):
		t.x.addString("address", "recipient's domain")
	default:
		t.x.addString("address-domain", t.x.registered(domain))
	}
}

// words splits a chunk into words and CJK runs.
func (t *tokenizer) words(chunk string) {
	for _, r := range chunk {
		if r < 0x80 {
			switch c := byte(r); {
			case wordByte[c] != 0:
				t.endCJK()
				t.appendRune(rune(wordByte[c]))
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
		case isCJK(r):
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

// isCJK reports whether r is written without spaces between words.
func isCJK(r rune) bool {
	return r >= 0x2E80 && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r) || r == 'ー')
}

// cjk adds the bigram of r and the character before it.
func (t *tokenizer) cjk(r rune) {
	if t.cjkPrev != 0 {
		t.pair = utf8.AppendRune(utf8.AppendRune(t.pair[:0], t.cjkPrev), r)
		t.x.add(t.cjks, t.pair)
	}
	t.cjkPrev = r
	t.cjkRun++
}

// endCJK ends a CJK run; a run of one character is a feature of its own.
func (t *tokenizer) endCJK() {
	if t.cjkRun == 1 {
		t.pair = utf8.AppendRune(t.pair[:0], t.cjkPrev)
		t.x.add(t.cjks, t.pair)
	}
	t.cjkPrev, t.cjkRun = 0, 0
}

// flush ends the current word: adds it and its pairs with the words
// before it.
func (t *tokenizer) flush() {
	w, n, h := t.word, t.runes, t.h
	t.word, t.runes, t.h = t.word[:0], 0, t.kh
	if n < minWordRunes {
		return
	}
	if n > maxWordRunes {
		t.x.addString(t.kind, "(long word)")
		return
	}
	if r := &t.x.rcpt; r.lens&(1<<(len(w)%64)) != 0 {
		switch {
		case containsBytes(r.locals, w):
			w = append(w[:0], "(recipient)"...)
			h = fnv(t.kh, "(recipient)")
		case containsBytes(r.labels, w):
			w = append(w[:0], "(recipient's domain)"...)
			h = fnv(t.kh, "(recipient's domain)")
		}
	}
	t.addWord(h, w, "")
	t.word = w[:0]
}

// flushASCII is flush for a word of an ASCII chunk: raw is the word as
// the text writes it (its letters in either case, its digits), h its
// running hash over wordByte of each octet. A word of more than
// maxWordRunes octets is "(long word)", whatever its hash.
func (t *tokenizer) flushASCII(h uint64, raw string) {
	n := len(raw)
	if n < minWordRunes {
		return
	}
	if n > maxWordRunes {
		t.x.addString(t.kind, "(long word)")
		return
	}
	if r := &t.x.rcpt; r.lens&(1<<(n%64)) != 0 {
		// Perhaps the recipient's (flush).
		as := ""
		switch {
		case containsMapped(r.locals, raw):
			as = "(recipient)"
		case containsMapped(r.labels, raw):
			as = "(recipient's domain)"
		}
		if as != "" {
			t.word = append(t.word[:0], as...)
			t.addWord(fnv(t.kh, as), t.word, "")
			t.word = t.word[:0]
			return
		}
	}
	t.addWord(h, nil, raw)
}

// addWord adds the word of running hash rh (hashFeature(t.kind, w)
// before mix) and its pairs with the words before it, and moves the
// window on. The word is w, or when raw is not "", wordByte of each
// octet of raw.
func (t *tokenizer) addWord(rh uint64, w []byte, raw string) {
	x := t.x
	var e *repeat
	if t.dup {
		// Text that repeats itself: the word and its window may have
		// been read before, all four features already in the vector.
		// (The window's hashes, never 0, tell its length too.)
		e = t.repeat(rh)
		if e.run == t.runs && e.rh == rh && e.prev == t.prevH {
			t.shift(e.h, e.wi)
			return
		}
	}
	h := mix(rh)
	wi, added := x.insertIndex(h)
	// (The slices are appended to in locals, stored back once.)
	names, ends := x.v.names, x.v.ends
	if added {
		names = append(names, t.kindColon...)
		if raw != "" {
			for i := 0; i < len(raw); i++ {
				names = append(names, wordByte[raw[i]])
			}
		} else {
			names = append(names, w...)
		}
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
			e = t.repeat(rh)
		}
		*e = repeat{run: t.runs, rh: rh, h: h, prev: t.prevH, wi: wi}
	}
	t.dup = dup
	t.shift(h, wi)
}

// repeat is the entry of repeats for the word of running hash rh in
// the window.
func (t *tokenizer) repeat(rh uint64) *repeat {
	k := rh ^ t.prevH[0]*0x9e3779b97f4a7c15 ^ t.prevH[1]*0xbf58476d1ce4e5b9 ^ t.prevH[2]*0x94d049bb133111eb
	return &t.repeats[k>>(64-repeatBits)]
}

// shift moves the window on by the word of hash h and feature index wi.
func (t *tokenizer) shift(h uint64, wi int) {
	// Shift the window. (A word not in the vector, which was full,
	// is in no pair: nothing more is added.)
	t.prevH[2], t.prevH[1], t.prevH[0] = t.prevH[1], t.prevH[0], h
	t.prevI[2], t.prevI[1], t.prevI[0] = t.prevI[1], t.prevI[0], uint16(wi)
	t.nprev = min(t.nprev+1, osbWindow)
}

// repeatBits sizes tokenizer.repeats: 256 entries of 56 octets, so that
// the words of a line repeated (a dozen or two) seldom take each
// other's entry.
const repeatBits = 8

// repeat is a word whose features and pairs were all in the vector: its
// running hash and window (the key), its hash and feature index.
type repeat struct {
	run   uint64
	rh, h uint64
	prev  [osbWindow]uint64
	wi    int
}

// pairGap is what stands between the words of a pair at distance d+1
// in its name.
var pairGap = [osbWindow]string{" ", " _ ", " _ _ "}

// containsMapped is containsBytes for wordByte of each octet of raw.
func containsMapped(list []string, raw string) bool {
next:
	for _, s := range list {
		if len(s) != len(raw) {
			continue
		}
		for i := 0; i < len(s); i++ {
			if wordByte[raw[i]] != s[i] {
				continue next
			}
		}
		return true
	}
	return false
}

// containsBytes is contains for a word in a buffer.
func containsBytes(list []string, w []byte) bool {
	for _, s := range list {
		if s == string(w) {
			return true
		}
	}
	return false
}
