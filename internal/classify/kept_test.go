package classify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"mailwall/internal/benchmsg"
	"mailwall/internal/cputime"
	"mailwall/internal/dkim"
)

// classifyKept is Classify that also returns what a verdict keeps of
// msg (Kept).
func (c *Classifier) classifyKept(msg *Message) (Result, []byte) {
	return c.classifyKeptFor(msg, 0, RecipientOptions{})
}

// TestKept: what a verdict keeps reads back as the message's key and
// hashes, learns as the message itself does, and anything else is
// refused.
func TestKept(t *testing.T) {
	raw := []byte("From: a@example.test\r\nMessage-ID: <k@example.test>\r\nSubject: hello\r\n\r\nverify your account now\r\n")
	fields, body := ParseMessage(raw)
	msg := &Message{Fields: fields, Body: body}
	v := NewExtractor().Extract(msg).Clone()
	kept := Kept(keptKey(msg), v)
	key, back, err := ParseKept(kept)
	top := make([]uint64, len(v.Hashes))
	for i, h := range v.Hashes {
		top[i] = h &^ (1<<(64-keptBits) - 1)
	}
	slices.Sort(top)
	if err != nil || key != keptKey(msg) || !slices.Equal(slices.Sorted(slices.Values(back.Hashes)), top) {
		t.Fatalf("ParseKept: %q %v %v", key, back, err)
	}
	if len(kept) >= 4+16+4*len(v.Hashes) {
		t.Errorf("%d octets kept for %d features", len(kept), len(v.Hashes))
	}
	if bytes.Contains(kept, []byte("verify")) {
		t.Error("the text is kept")
	}
	// The analyzer keeps the same, and the message as the milter gets
	// it (CRLF) has the key of its Maildir file (LF), which the Junk
	// watcher and mailwall learn read.
	c := NewClassifier(NewBayes(16), nil)
	_, k2 := c.classifyKept(msg)
	if !bytes.Equal(k2, kept) {
		t.Error("classifyKept keeps other bytes than Kept")
	}
	lf := []byte(strings.ReplaceAll(string(raw), "\r\n", "\n"))
	lfFields, lfBody := ParseMessage(lf)
	if k, _, _ := ParseKept(k2); k != MessageKey(&Message{Fields: lfFields, Body: lfBody}, lf) {
		t.Error("the milter's message and its Maildir file have different keys")
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"no magic":    v.AppendHashes(make([]byte, 20)),
		"old magic":   append([]byte("mwf1"), kept[4:]...),
		"short":       kept[:10],
		"cut off":     kept[:len(kept)-3],
		"octet more":  append(slices.Clone(kept), 0),
		"too many":    binary.AppendUvarint(slices.Clone(kept[:20]), MaxFeatures+1),
		"hashes only": v.AppendHashes(nil),
		"old, odd":    append([]byte("mwf2"), make([]byte, 16+4*3+1)...),
	} {
		if _, _, err := ParseKept(b); err == nil {
			t.Errorf("%s: read", name)
		}
	}
	if Kept("not hex", v) != nil {
		t.Error("a key not MessageKey's was kept")
	}

	// Learnt from what was kept, a message counts as if learnt whole.
	st := newMemCounts()
	whole := &Learner{St: st, Name: "a"}
	if _, err := whole.Learn(context.Background(), raw, msg, "spam"); err != nil {
		t.Fatal(err)
	}
	fromKept := &Learner{St: st, Name: "b"}
	if err := fromKept.AddKept(context.Background(), kept, "spam"); err != nil {
		t.Fatal(err)
	}
	if _, err := fromKept.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !st.same("a", "b") {
		t.Error("learning the kept features differs from learning the message")
	}
	if err := fromKept.AddKept(context.Background(), kept, "eggs"); err == nil {
		t.Error("class eggs accepted")
	}
}

// TestKeptOldForms: the forms verdicts kept before 2026-12 (mwf2, and
// mwf3 with a recipient's salt: each hash's top 32 bits, little-endian)
// still read, and learn as the new forms of the same message do.
func TestKeptOldForms(t *testing.T) {
	raw := []byte("From: a@example.test\r\nMessage-ID: <old@example.test>\r\nSubject: hello\r\n\r\nverify your account now\r\n")
	fields, body := ParseMessage(raw)
	msg := &Message{Fields: fields, Body: body}
	v := NewExtractor().Extract(msg).Clone()
	k, _ := hex.DecodeString(keptKey(msg))
	salt := RecipientSalt("bob@example.test")
	// What KeptFor wrote until 2026-12.
	old := func(salt uint64) []byte {
		b := append([]byte("mwf2"), k...)
		if salt != 0 {
			b = binary.LittleEndian.AppendUint64(append([]byte("mwf3"), k...), salt)
		}
		for _, h := range v.Hashes {
			b = binary.LittleEndian.AppendUint32(b, uint32(h>>32))
		}
		return b
	}
	top32 := make([]uint64, len(v.Hashes))
	for i, h := range v.Hashes {
		top32[i] = h &^ (1<<32 - 1)
	}
	for _, s := range []uint64{0, salt} {
		key, back, gotSalt, err := ParseKeptFor(old(s))
		if err != nil || key != keptKey(msg) || gotSalt != s || !slices.Equal(back.Hashes, top32) {
			t.Fatalf("salt %x: ParseKeptFor of the old form: %q %x %v", s, key, gotSalt, err)
		}
		st := newMemCounts()
		for name, kept := range map[string][]byte{"old": old(s), "new": KeptFor(keptKey(msg), v, s)} {
			l := &Learner{St: st, Name: name, Bits: maxBits}
			if err := l.AddKept(context.Background(), kept, "spam"); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if !st.same("old", "new") {
			t.Errorf("salt %x: the old form learns other buckets than the new", s)
		}
	}
}

// TestKeptRoundTrip: any hashes, however many (none to MaxFeatures),
// however near (the same top bits, neighbours, 0 and the highest), read
// back as their top bits (in no particular order), each as often as
// it came; with a salt, their top 32 bits.
func TestKeptRoundTrip(t *testing.T) {
	const key = "000102030405060708090a0b0c0d0e0f"
	rnd := rand.New(rand.NewPCG(1, 2))
	spread := func(n int, shift uint) []uint64 {
		hs := make([]uint64, n)
		for i := range hs {
			hs[i] = rnd.Uint64() >> shift << shift
		}
		return hs
	}
	cases := map[string][]uint64{
		"none":            nil,
		"one":             {1 << 63},
		"zero and top":    {0, 1<<64 - 1},
		"same top bits":   {5 << 40, 5<<40 | 1, 5<<40 | 1<<37, 7 << 40},
		"neighbours":      {1 << 38, 2 << 38, 3 << 38, 4 << 38},
		"ten":             spread(10, 0),
		"a hundred":       spread(100, 0),
		"MaxFeatures":     spread(MaxFeatures, 0),
		"close together":  spread(500, 0)[:0],
		"few top buckets": spread(300, 60),
	}
	for i := range 500 {
		cases["close together"] = append(cases["close together"], uint64(i)<<38|rnd.Uint64()>>40)
	}
	for name, hs := range cases {
		for _, salt := range []uint64{0, 0x1234} {
			width := keptBits
			if salt != 0 {
				width = keptRcptBits
			}
			want := make([]uint64, len(hs))
			for i, h := range hs {
				want[i] = h >> (64 - width) << (64 - width)
			}
			slices.Sort(want)
			var scratch keptScratch
			kept := appendKept(key, hs, salt, &scratch)
			if !bytes.Equal(kept, KeptFor(key, &Vector{Hashes: hs}, salt)) {
				t.Errorf("%s, salt %x: appendKept and KeptFor differ", name, salt)
			}
			if len(scratch.counts) > 2*len(hs)+2 {
				t.Errorf("%s, salt %x: %d high parts counted for %d hashes", name, salt, len(scratch.counts), len(hs))
			}
			k, v, s, err := ParseKeptFor(kept)
			if err != nil || k != key || s != salt || !slices.Equal(slices.Sorted(slices.Values(v.Hashes)), want) {
				t.Errorf("%s, salt %x: %d octets read as %q, %x, %v", name, salt, len(kept), k, s, err)
			}
			if len(hs) >= 100 && len(kept) >= 4+16+8+4*len(hs) {
				t.Errorf("%s, salt %x: %d octets for %d hashes", name, salt, len(kept), len(hs))
			}
		}
	}
}

// memCounts is a CountStore in memory, enough for TestKept: counts per
// model and bucket, no keys.
type memCounts struct{ buckets map[string]map[uint32]int64 }

func newMemCounts() *memCounts { return &memCounts{buckets: map[string]map[uint32]int64{}} }

func (m *memCounts) LearnCounts(_ context.Context, name string, _ int, items []Learning) ([]Learnt, error) {
	if m.buckets[name] == nil {
		m.buckets[name] = map[uint32]int64{}
	}
	for _, it := range items {
		for _, b := range it.Buckets {
			m.buckets[name][b]++
		}
	}
	return make([]Learnt, len(items)), nil
}

func (m *memCounts) AddCounts(context.Context, string, int, int64, int64, []BucketCount) error {
	return nil
}

func (m *memCounts) ModelCounts(context.Context, string, int64, func(BucketCount)) (ModelState, error) {
	return ModelState{}, nil
}

func (m *memCounts) same(a, b string) bool {
	if len(m.buckets[a]) == 0 || len(m.buckets[a]) != len(m.buckets[b]) {
		return false
	}
	for k, n := range m.buckets[a] {
		if m.buckets[b][k] != n {
			return false
		}
	}
	return true
}

// TestKeptSizeCorpus measures what verdicts keep for the dashboard's
// clicks on the development corpus (../shared/corpus): the figures in
// Kept's comment, printed with -v. The bound is the layout's: 4 octets
// a feature, so a verdict never keeps more than 16 KB.
func TestKeptSizeCorpus(t *testing.T) {
	x := NewExtractor()
	var sizes []int
	eachCorpusMessage(t, nil, func(_ Labelled, m *Message) {
		sizes = append(sizes, len(Kept(MessageKey(m, nil), x.Extract(m))))
	})
	slices.Sort(sizes)
	sum := 0
	for _, n := range sizes {
		sum += n
	}
	mean, most := sum/len(sizes), sizes[len(sizes)-1]
	t.Logf("%d messages: kept octets mean %d, median %d, 99th percentile %d, most %d", len(sizes), mean, sizes[len(sizes)/2], sizes[len(sizes)*99/100], most)
	if most > len(keptMagic)+keptKeyLen+4*MaxFeatures || mean > 2<<10 {
		t.Errorf("kept octets: mean %d, most %d; want a mean under 2 KB and at most %d", mean, most, len(keptMagic)+keptKeyLen+4*MaxFeatures)
	}
}

// TestKeptSizeBenchMessage: what a verdict keeps of bench/milter's small
// message (2 KiB body), as the analyzer keeps it; the figure in Kept's
// comment, printed with -v.
func TestKeptSizeBenchMessage(t *testing.T) {
	fields, body := ParseMessage([]byte(benchmsg.Header + benchmsg.Body(2<<10, true)))
	msg := &Message{Fields: fields, Body: body}
	v := NewExtractor().Extract(msg)
	_, kept := NewClassifier(NewBayes(16), nil).classifyKept(msg)
	old := len(keptMagic32) + keptKeyLen + 4*len(v.Hashes)
	t.Logf("%d features: %d octets kept, %d in the 32-bit form", len(v.Hashes), len(kept), old)
	if len(kept) > old*3/4 {
		t.Errorf("%d octets kept for %d features, %d in the 32-bit form", len(kept), len(v.Hashes), old)
	}
}

// BenchmarkClassifyKept: what keeping a verdict's features (the key's
// SHA-256 over the body, 4 octets a feature) adds to the classifier's
// analyzer, beside classifying alone.
func BenchmarkClassifyKept(b *testing.B) {
	msgs, ls := benchMessages(b, 300)
	c := trainedClassifier(b, NewBayes(DefaultBits), msgs, ls)
	b.Run("classify", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c.Classify(msgs[i%len(msgs)])
		}
	})
	b.Run("classify+kept", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c.classifyKept(msgs[i%len(msgs)])
		}
	})
	// The difference alone, which the two above measure in their noise.
	vs := make([]*Vector, len(msgs))
	x := NewExtractor()
	for i, m := range msgs {
		vs[i] = x.Extract(m).Clone()
	}
	b.Run("kept", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			Kept(MessageKey(msgs[i%len(msgs)], nil), vs[i%len(vs)])
		}
	})
}

// TestMessageKeyLineEndsAndPrefix: the key reads CRLF as LF (milter and
// Maildir copies are one message), hashes the body's first 64 KiB and
// its length: a longer body or another Message-ID is another key.
func TestMessageKeyLineEndsAndPrefix(t *testing.T) {
	key := func(id, body string) string {
		return MessageKey(&Message{Fields: []dkim.Field{{Name: "Message-ID", Raw: "Message-ID: " + id}}, Body: []byte(body)}, nil)
	}
	long := strings.Repeat("line of text\r\n", 10000) // past the prefix
	cases := []struct {
		a, b string
		same bool
	}{
		{key("<a@x>", "one\r\ntwo\r\n"), key("<a@x>", "one\ntwo\n"), true},
		{key("<a@x>", long), key("<a@x>", strings.ReplaceAll(long, "\r\n", "\n")), true},
		{key("<a@x>", long), key("<a@x>", long+"more\r\n"), false},
		{key("<a@x>", "one\n"), key("<b@x>", "one\n"), false},
		{key("<a@x>", "one\n"), key("<a@x>", "two\n"), false},
	}
	for i, c := range cases {
		if (c.a == c.b) != c.same {
			t.Errorf("case %d: same %v, want %v", i, c.a == c.b, c.same)
		}
	}
}

// BenchmarkMessageKey1MB: the key of a 1 MB CRLF body (a verdict's,
// for a later click), which hashes its first 64 KiB and counts the rest.
func BenchmarkMessageKey1MB(b *testing.B) {
	msg := &Message{Fields: []dkim.Field{{Name: "Message-ID", Raw: "Message-ID: <big@example.test>"}},
		Body: []byte(strings.Repeat("a line of some seventy octets of text, as a long message has them...\r\n", 1<<20/72))}
	b.SetBytes(int64(len(msg.Body)))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, t0 := 0, cputime.Thread()
	for b.Loop() {
		keptKey(msg)
		n++
	}
	b.ReportMetric(float64(cputime.Thread()-t0)/float64(n)/float64(time.Microsecond), "cpu-µs/op")
}

// BenchmarkMessageKeySmall: the key of bench/milter's small message
// (2 KB of CRLF lines), which it hashes whole.
func BenchmarkMessageKeySmall(b *testing.B) {
	msg := &Message{Fields: []dkim.Field{{Name: "Message-ID", Raw: "Message-ID: <bench@example.test>\r\n"}},
		Body: []byte(benchmsg.Body(2<<10, true))}
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, t0 := 0, cputime.Thread()
	for b.Loop() {
		keptKey(msg)
		n++
	}
	b.ReportMetric(float64(cputime.Thread()-t0)/float64(n), "cpu-ns/op")
}

// TestMessageKeyDefinition: MessageKey is the digest of the Message-ID,
// a zero octet, the first keyBodyPrefix octets of the body with each
// CRLF read as LF, and the length of the body without its CRs (the LF
// body's for one without a bare CR): line ends of every kind, at and
// across the prefix's end.
func TestMessageKeyDefinition(t *testing.T) {
	def := func(id string, body []byte) string {
		lf := bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
		h := sha256.New()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write(lf[:min(len(lf), keyBodyPrefix)])
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(body)-bytes.Count(body, []byte{'\r'}))))
		return hex.EncodeToString(h.Sum(nil)[:16])
	}
	line := "a line of text\r\n"
	filler := strings.Repeat(line, keyBodyPrefix/len(line))
	bodies := []string{"", "\r\n", "\n", "\r", "no line end", "one\r\ntwo\r\n", "bare\nlf\r\nand\rcr\r\r\n\n\r", "\r\r\n\n\r\n"}
	for cut := -3; cut <= 3; cut++ {
		// CRLFs and bare ends at and around the prefix's end.
		pre := filler[:len(filler)+cut-16]
		for _, tail := range []string{"xxxxxxxxxxxxxx\r\n", "xxxxxxxxxxxxxxx\r\n", "xxxxxxxxxxxxx\n\r\n", "xxxxxxxxxxxxxxxx\r", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"} {
			bodies = append(bodies, pre+tail, pre+tail+"after\nthe\r\nprefix\r\n", pre+tail+filler)
		}
	}
	// Each as a Maildir keeps it too (LF only, past the prefix as well).
	for _, b := range slices.Clone(bodies) {
		bodies = append(bodies, strings.ReplaceAll(b, "\r\n", "\n"))
	}
	bodies = append(bodies, strings.Repeat("a line\n", 2*keyBodyPrefix/7), strings.Repeat("a line\n", keyBodyPrefix/7)+"x\r\n")
	for i, b := range bodies {
		msg := &Message{Fields: []dkim.Field{{Name: "Message-Id", Raw: "Message-Id: <k@example.test>\r\n"}}, Body: []byte(b)}
		if got, want := MessageKey(msg, nil), def("<k@example.test>", []byte(b)); got != want {
			t.Errorf("body %d (%d octets, ends %q): key %s, by definition %s", i, len(b), b[max(0, len(b)-20):], got, want)
		}
	}
}

// TestMessageKeyKeptBefore: for a body without a bare CR the key is the
// one MessageKey gave before its length dropped every CR (2026-12), so
// verdicts kept then still meet their messages' copies: the keys here
// are the old code's.
func TestMessageKeyKeptBefore(t *testing.T) {
	for _, c := range []struct{ body, key string }{
		{"", "749383a6027133e78b9d430add8546af"},
		{"one line\r\n", "77413d5bd494bccd5dbd3b9ca7883ed8"},
		{strings.Repeat("a line of text\r\n", 10000), "beefe8c43ed990e1f1cd41aae3cc6d2e"},
		{strings.Repeat("a line of text\n", 10000), "beefe8c43ed990e1f1cd41aae3cc6d2e"},
	} {
		msg := &Message{Fields: []dkim.Field{{Name: "Message-ID", Raw: "Message-ID: <golden@example.test>\r\n"}}, Body: []byte(c.body)}
		if got := MessageKey(msg, nil); got != c.key {
			t.Errorf("body of %d octets: key %s, before %s", len(c.body), got, c.key)
		}
	}
}

// TestAppendLF: appendLF's pieces, of every size, put together are the
// source with each CRLF read as LF, whatever line ends it has and
// wherever a piece ends (inside a CRLF too).
func TestAppendLF(t *testing.T) {
	for _, src := range []string{"", "a", "\r\n", "\n", "\r", "ab\r\ncd\r\n", "bare\nlf\r\nand\rcr\r\r\n\n\r", "\r\r\n\n\r\n", "no end", "x\r\n\r\n\r\ny"} {
		want := strings.ReplaceAll(src, "\r\n", "\n")
		for limit := 1; limit <= len(src)+1; limit++ {
			var got []byte
			for rest := []byte(src); len(rest) > 0; {
				piece, read := appendLF(nil, rest, limit)
				if len(piece) > limit || read == 0 {
					t.Fatalf("%q, limit %d: %q, %d read", src, limit, piece, read)
				}
				got, rest = append(got, piece...), rest[read:]
			}
			if string(got) != want {
				t.Errorf("%q, limit %d: %q, want %q", src, limit, got, want)
			}
		}
	}
}

// BenchmarkKeptEncode: keeping a verdict's features without the key's
// hash (appendKept with the Extractor's scratch, as the analyzer does),
// for bench/milter's small message and for the corpus's messages, in
// CPU time of the thread; and "-mwf2", the layout of before 2026-12
// (4 octets a hash, as KeptFor wrote it), for comparison.
func BenchmarkKeptEncode(b *testing.B) {
	const key = "000102030405060708090a0b0c0d0e0f"
	fields, body := ParseMessage([]byte(benchmsg.Header + benchmsg.Body(2<<10, true)))
	small := NewExtractor().Extract(&Message{Fields: fields, Body: body}).Clone()
	msgs, _ := benchMessages(b, 300)
	x := NewExtractor()
	vs := make([]*Vector, len(msgs))
	for i, m := range msgs {
		vs[i] = x.Extract(m).Clone()
	}
	mwf2 := func(key string, hashes []uint64) []byte {
		k, _ := hex.DecodeString(key)
		b := make([]byte, 0, 4+keptKeyLen+4*len(hashes))
		b = append(append(b, "mwf2"...), k...)
		for _, h := range hashes {
			b = binary.LittleEndian.AppendUint32(b, uint32(h>>32))
		}
		return b
	}
	var s keptScratch
	for _, c := range []struct {
		name string
		vs   []*Vector
		keep func([]uint64) []byte
	}{
		{"2KiB", []*Vector{small}, func(h []uint64) []byte { return appendKept(key, h, 0, &s) }},
		{"2KiB-mwf2", []*Vector{small}, func(h []uint64) []byte { return mwf2(key, h) }},
		{"corpus", vs, func(h []uint64) []byte { return appendKept(key, h, 0, &s) }},
		{"corpus-mwf2", vs, func(h []uint64) []byte { return mwf2(key, h) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			n, t0 := 0, cputime.Thread()
			for b.Loop() {
				c.keep(c.vs[n%len(c.vs)].Hashes)
				n++
			}
			b.ReportMetric(float64(cputime.Thread()-t0)/float64(n), "cpu-ns/op")
		})
	}
}
