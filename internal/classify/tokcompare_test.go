package classify

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"mailwall/internal/benchmsg"
	"mailwall/internal/cputime"
	"mailwall/internal/phish"
)

// tokCompare runs the tokenizer and the reference (refTokenizer, the
// tokenizer before its fast path) over the same texts, each in an
// extractor of its own that holds prefill features first, and reports
// the first difference in the vectors: hashes, names and their order.
func tokCompare(t *testing.T, name string, rcpts []string, prefill int, texts ...string) {
	t.Helper()
	xn, xr := NewExtractor(), NewExtractor()
	var ref refTokenizer
	for _, x := range []*Extractor{xn, xr} {
		x.Extract(&Message{Content: &phish.Content{}, Recipients: rcpts})
		for i := range prefill {
			x.addString("prefill", fmt.Sprint(i))
		}
	}
	for i, text := range texts {
		kind := []string{"word", "subject", "from-name"}[i%3]
		xn.tok.run(xn, kind, text)
		ref.run(xr, kind, text)
	}
	if !slices.Equal(xn.v.Hashes, xr.v.Hashes) || !slices.Equal(xn.v.ends, xr.v.ends) || string(xn.v.names) != string(xr.v.names) {
		gn, rn := names(&xn.v), names(&xr.v)
		for i := range max(len(gn), len(rn)) {
			if i >= len(gn) || i >= len(rn) || gn[i] != rn[i] || xn.v.Hashes[i] != xr.v.Hashes[i] {
				g, r := "(none)", "(none)"
				if i < len(gn) {
					g = gn[i]
				}
				if i < len(rn) {
					r = rn[i]
				}
				t.Errorf("%s: %d features, the reference's %d; first difference at %d: %q, the reference's %q", name, len(gn), len(rn), i, g, r)
				return
			}
		}
		t.Errorf("%s: vectors differ in their name buffers", name)
	}
}

// TestTokenizerReference: the tokenizer's features are the reference
// tokenizer's, hash for hash, name for name, in the same order: on every
// text, subject and display name of the corpus sample, and on hostile
// texts (words split by links, addresses, non-ASCII, Unicode white
// space, long words, many words in one chunk, the recipient's names,
// texts that fill the vector).
func TestTokenizerReference(t *testing.T) {
	rcpts := []string{"john.smith@rcpt.test", "Bob@Example.ORG"}
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	var varied strings.Builder
	for i := range 6000 {
		fmt.Fprintf(&varied, "w%c%c%c ", 'a'+i%26, 'a'+i/26%26, 'a'+i/676)
	}
	hostile := []string{
		"", " ", "a", "ab", line, strings.Repeat(line, 1000),
		"Dear john, your example mailbox at rcpt is full; JOHN EXAMPLE rcpt0 john2 Bob bob, BOB.",
		"see www.example.test/x and WWW.x.test, Www.y or wwwx.test now",
		"http://a.test/b c:d e://f g@h @i j@ k@l.test mailto:x@y.test <bob@example.org>, (john.smith@rcpt.test).",
		"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,aa,bb,cc,dd,ee,ff,gg,hh,ii,jj,kk,ll,mm,nn",
		"aa.bb.cc.dd.ee.ff.gg.hh.ii.jj.kk.ll.mm.nn.oo.pp.qq.rr.ss.tt.uu.vv.ww.xx.yy.zz:http://x",
		"aa.bb.cc.dd.ee.ff.gg.hh.ii.jj.kk.ll.mm.nn.oo.pp.qq.rr.ss.tt.uu.vv.ww.xx.yy.zz@rcpt.test",
		strings.Repeat("x", 24) + " " + strings.Repeat("y", 25) + " " + strings.Repeat("z", 300) + " ab" + strings.Repeat("Q", 30) + ",cd",
		"café naïve Straße ＡＢＣ１２３ お客様のアカウント 楽天カード pa\u200bypal e\u0301t\u00e9 x\u00a0y\u2003z\u3000w \u0085v",
		"mixed ascii then é then ascii again\x80\xff bad utf-8 \xe3\x81 cut",
		"tabs\tand\fform\vfeeds\r\nand\n\nlines",
		"0123 4567 a1b2c3 ABC abc AbC 99 l33t",
		strings.Repeat("go stop ", 3000) + "end",
		strings.Repeat(line+"then something new\n"+line+line, 50) + strings.Repeat("a b c a b c ab abc ", 200),
		varied.String(),
		strings.Repeat("filler ", maxTokenText/7-1) + "ééé zebra",
		strings.Repeat("ab:", 40) + " " + strings.Repeat("ab@", 40),
	}
	for i, text := range hostile {
		for _, prefill := range []int{0, MaxFeatures - 50, MaxFeatures} {
			tokCompare(t, fmt.Sprintf("hostile %d prefill %d", i, prefill), rcpts, prefill, text)
		}
	}
	tokCompare(t, "all hostile texts in turn", rcpts, 0, hostile...)

	// Random texts of the bytes that matter to the tokenizer.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "B", "z", "0", "9", " ", " ", "\n", "\r", "\t", ".", ",", ":", "/", "@", "w", "W", "www.", "://",
		"é", "Ｚ", "楽", "天", "\u00a0", "\u200b", "\xff", "john", "rcpt", "example", "again and"}
	for i := range 300 {
		var b strings.Builder
		for range rng.IntN(400) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		tokCompare(t, fmt.Sprintf("random %d", i), rcpts, []int{0, MaxFeatures - 20}[i%2], b.String())
	}

	// The corpus: each message's subject, display name and text.
	n := 0
	eachCorpusMessage(t, func(i, total int, l Labelled) bool { return i%7 == 0 }, func(l Labelled, m *Message) {
		c := phish.Extract(m.Fields, m.Body)
		var name string
		for _, f := range m.Fields {
			if strings.EqualFold(f.Name, "From") {
				name = decodeWords(f.Value())
			}
		}
		tokCompare(t, l.Path, m.Recipients, 0, c.Text, c.Subject, name)
		n++
	})
	t.Logf("%d corpus messages", n)
}

// FuzzTokenizerReference: on any text, the tokenizer's features are the
// reference tokenizer's (TestTokenizerReference).
func FuzzTokenizerReference(f *testing.F) {
	f.Add("The quick brown fox jumps over the lazy dog, again and again and again.\r\n", 20, 0)
	f.Add("a,b,c http://x.test/y www.z john@rcpt.test café 楽天 \u00a0x", 3, 4000)
	f.Fuzz(func(t *testing.T, text string, times, prefill int) {
		text = strings.Repeat(text, min(max(times, 1), 1<<16/max(len(text), 1)))
		tokCompare(t, "fuzz", []string{"john@rcpt.test"}, min(max(prefill, 0), MaxFeatures), text)
	})
}

// BenchmarkTokenizer: the tokenizer alone on bench/milter's text of 2
// KiB and 64 KiB (one sentence over and over), and on the corpus
// sample's texts in turn, in an extractor that holds a message's other
// features (µs of CPU a text, on the benchmark's thread).
func BenchmarkTokenizer(b *testing.B) {
	msgs, _ := benchMessages(b, 300)
	var corpus []string
	for _, m := range msgs {
		corpus = append(corpus, phish.Extract(m.Fields, m.Body).Text)
	}
	for _, bc := range []struct {
		name  string
		texts []string
	}{
		{"2KiB", []string{benchmsg.Body(2<<10, true)}},
		{"64KiB", []string{benchmsg.Body(64<<10, true)}},
		{"corpus", corpus},
	} {
		b.Run(bc.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			x := NewExtractor()
			m := &Message{Content: &phish.Content{}, Recipients: []string{"rcpt@rcpt.test"}}
			n, t0 := 0, cputime.Thread()
			for b.Loop() {
				x.Extract(m)
				x.tok.run(x, "word", bc.texts[n%len(bc.texts)])
				n++
			}
			b.ReportMetric(float64(cputime.Thread()-t0)/float64(n)/float64(time.Microsecond), "cpu-µs/op")
		})
	}
}
