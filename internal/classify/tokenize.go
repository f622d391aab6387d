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
	// one to three, as "a b", "a _ b", "a _ _ b".
	osbWindow = 3
)

// tokenizer splits text into words, word pairs and CJK bigrams. It keeps
// its buffers between messages.
type tokenizer struct {
	word    []byte            // the word being read, lower-cased
	runes   int               // its length in runes
	prev    [osbWindow][]byte // the words before it, prev[0] the nearest
	prevH   [osbWindow]uint64 // their hashes
	nprev   int
	cjkPrev rune // the previous CJK character of the current run, or 0
	cjkRun  int  // length of the current CJK run
	pair    []byte

	x                 *Extractor
	kind, pairs, cjks string
}

// run adds the features of text under kind ("word", "subject", ...):
// its words as kind, word pairs as "kind pair", CJK bigrams as
// "kind cjk".
func (t *tokenizer) run(x *Extractor, kind, text string) {
	t.x, t.kind, t.pairs, t.cjks = x, kind, kind+" pair", kind+" cjk"
	t.nprev, t.cjkPrev, t.cjkRun = 0, 0, 0
	t.word, t.runes = t.word[:0], 0
	for len(text) > 0 && !x.full() {
		// One chunk between white space at a time.
		i := 0
		for i < len(text) {
			if c := text[i]; c < 0x80 {
				if c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v' {
					break
				}
				i++
				continue
			}
			r, n := utf8.DecodeRuneInString(text[i:])
			if unicode.IsSpace(r) {
				break
			}
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
		case strings.Contains(chunk, "://") || hasPrefixFold(chunk, "www."):
			// Links have features of their own.
		case strings.IndexByte(chunk, '@') > 0:
			t.address(chunk)
		default:
			t.words(chunk)
		}
	}
	t.flush()
	t.endCJK()
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
	case r.domain(domain) || r.domain(registered(domain)):
		t.x.addString("address", "recipient's domain")
	default:
		t.x.addString("address-domain", registered(domain))
	}
}

// words splits a chunk into words and CJK runs.
func (t *tokenizer) words(chunk string) {
	for _, r := range chunk {
		if r < 0x80 {
			switch c := byte(r); {
			case c >= 'a' && c <= 'z':
				t.endCJK()
				t.word = append(t.word, c)
				t.runes++
			case c >= 'A' && c <= 'Z':
				t.endCJK()
				t.word = append(t.word, c+'a'-'A')
				t.runes++
			case c >= '0' && c <= '9':
				t.endCJK()
				t.word = append(t.word, '0')
				t.runes++
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
			t.word = utf8.AppendRune(t.word, r)
			t.runes++
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
	w, n := t.word, t.runes
	t.word, t.runes = t.word[:0], 0
	if n < minWordRunes {
		return
	}
	if n > maxWordRunes {
		t.x.addString(t.kind, "(long word)")
		return
	}
	if r := &t.x.rcpt; len(r.locals) > 0 {
		switch s := string(w); {
		case contains(r.locals, s):
			w = append(w[:0], "(recipient)"...)
		case contains(r.labels, s):
			w = append(w[:0], "(recipient's domain)"...)
		}
	}
	x := t.x
	h := hashFeature(t.kind, w)
	if x.insert(h) {
		x.v.names = append(x.v.names, t.kind...)
		x.v.names = append(x.v.names, ':')
		x.v.names = append(x.v.names, w...)
		x.v.ends = append(x.v.ends, uint32(len(x.v.names)))
	}
	for d := 0; d < t.nprev; d++ {
		// A pair's hash is made of its words' hashes, not of its name,
		// which is written only when the pair is new.
		if !x.insert(mix(t.prevH[d]*0x9e3779b97f4a7c15 ^ h ^ uint64(d+1)*0xbf58476d1ce4e5b9)) {
			continue
		}
		x.v.names = append(x.v.names, t.pairs...)
		x.v.names = append(x.v.names, ':')
		x.v.names = append(x.v.names, t.prev[d]...)
		x.v.names = append(x.v.names, ' ')
		for range d {
			x.v.names = append(x.v.names, '_', ' ')
		}
		x.v.names = append(x.v.names, w...)
		x.v.ends = append(x.v.ends, uint32(len(x.v.names)))
	}
	// Shift the window: the oldest buffer is reused for this word.
	last := t.prev[osbWindow-1]
	copy(t.prev[1:], t.prev[:osbWindow-1])
	t.prev[0] = append(last[:0], w...)
	copy(t.prevH[1:], t.prevH[:osbWindow-1])
	t.prevH[0] = h
	t.nprev = min(t.nprev+1, osbWindow)
	t.word = w[:0]
}
