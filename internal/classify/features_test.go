package classify

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"mailwall/internal/phish"
)

// parse makes a Message of a raw message with LF line ends.
func parse(raw string, rcpts ...string) *Message {
	fields, body := ParseMessage([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
	return &Message{Fields: fields, Body: body, Recipients: rcpts}
}

func names(v *Vector) []string {
	out := make([]string, len(v.Hashes))
	for i := range v.Hashes {
		out[i] = v.Name(i)
	}
	return out
}

func TestExtract(t *testing.T) {
	const head = "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hello\nDate: Mon, 1 Dec 2026 10:00:00 +0000\nMessage-ID: <1@example.com>\n"
	const plain = head + "\n"
	tests := []struct {
		name      string
		msg       *Message
		want, not []string
	}{
		{"words, digits as 0, pairs at distances 1 to 3",
			parse(plain + "Verify your ACCOUNT 1234 now\n"),
			[]string{"word:verify", "word:account", "word:0000", "word pair:verify your", "word pair:verify _ account",
				"word pair:verify _ _ 0000", "word pair:your account", "subject:hello"},
			[]string{"word pair:verify _ _ _ now", "header:no date", "header:no message-id"}},
		{"Japanese: character bigrams, full-width ASCII as ASCII",
			parse(plain + "お客様のアカウントを確認 ＡＢＣ\n"),
			[]string{"word cjk:お客", "word cjk:客様", "word cjk:様の", "word cjk:確認", "word:abc"}, nil},
		{"zero-width characters do not split a word",
			parse(plain + "pa\u200byp\u00adal login\n"),
			[]string{"word:paypal", "word pair:paypal login"}, []string{"word:pa"}},
		{"the recipient's address, local part and domain",
			parse(plain+"Dear phishing, your pot mailbox is full: phishing@pot admin@pot\n", "phishing@pot"),
			[]string{"word:(recipient)", "word:(recipient's domain)", "address:recipient", "address:recipient's domain",
				"word pair:(recipient) _ (recipient's domain)"},
			[]string{"word:phishing", "word:pot"}},
		{"links: host, registered domain, suffix; an IP address",
			parse(plain + "Log in at https://login.secure.example.co.uk/wp-admin/verify.php?a=1 or http://192.0.2.1/\n"),
			[]string{"host:login.secure.example.co.uk", "domain:example.co.uk", "tld:co.uk", "url-word:wp-admin", "url-word:verify", "url-word:php", "link:ip address", "link:http",
				"link:path", "link:query", "links:2+", "links:none in from's domain"},
			[]string{"word:login", "word:secure"}},
		{"header shape: missing fields, unreadable From, Reply-To elsewhere",
			parse("From: Microsoft account team ,_<no-reply@x.test>\nReply-To: r@y.test\nX-Mailer: Microsoft Outlook 16.0\nSubject: a\n\nhi\n"),
			[]string{"header:no date", "header:no message-id", "from:unparsed", "from:comma", "from-domain:x.test",
				"reply-to:other domain", "reply-to-domain:y.test", "mailer:microsoft", "header-order:from>reply-to>x-mailer>subject",
				"header-pair:from>reply-to"}, nil},
		{"MIME tree, attachment type and extension, charsets",
			parse(head + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=iso-2022-jp\n\nhi\n--b\nContent-Type: application/octet-stream; name=\"invoice.html\"\nContent-Disposition: attachment; filename=\"invoice.html\"\nContent-Transfer-Encoding: base64\n\nPGh0bWw+\n--b--\n"),
			[]string{"mime-tree:mixed(plain,html)", "attachment-ext:.html", "attachment-type:application/octet-stream",
				"mime-charset:iso-2022-jp", "mime-part:multipart/mixed", "mime-cte:application/octet-stream base64"},
			[]string{"mime-charset:utf-8"}},
		{"outside signals",
			&Message{Extra: []string{"dmarc=fail", "rule=brand_from_domain"}},
			[]string{"extra:dmarc=fail", "extra:rule=brand_from_domain", "from:missing"}, nil},
	}
	x := NewExtractor()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(x.Extract(tt.msg))
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("no %q in %q", w, got)
				}
			}
			for _, w := range tt.not {
				if slices.Contains(got, w) {
					t.Errorf("%q in %q", w, got)
				}
			}
		})
	}
}

// TestExtractBounded: a long text of distinct words stops at
// MaxFeatures, each hash once.
func TestExtractBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: x\n\n")
	for i := range 50000 {
		b.WriteString("w")
		for n := i; n > 0; n /= 26 {
			b.WriteByte(byte('a' + n%26))
		}
		b.WriteString(" ")
	}
	v := NewExtractor().Extract(parse(b.String()))
	if len(v.Hashes) != MaxFeatures {
		t.Fatalf("%d features, want %d", len(v.Hashes), MaxFeatures)
	}
	seen := map[uint64]bool{}
	for _, h := range v.Hashes {
		if seen[h] {
			t.Fatalf("hash %x twice", h)
		}
		seen[h] = true
	}
}

// TestExtractReuse: an Extractor gives the same features for the same
// message whatever it read before.
func TestExtractReuse(t *testing.T) {
	m := parse("From: a@b.test\nSubject: s\n\nsome words here https://x.test/\n")
	x := NewExtractor()
	first := names(x.Extract(m))
	x.Extract(parse("From: c@d.test\nSubject: other\n\nentirely different text お客様\n"))
	if again := names(x.Extract(m)); !slices.Equal(first, again) {
		t.Fatalf("%q, then %q", first, again)
	}
}

func TestParseMessageLenient(t *testing.T) {
	fields, body := ParseMessage([]byte("From: a@b.test\r\nnot a header line\r\nSubject: s\r\n continued\r\n\r\nbody\r\n"))
	if len(fields) != 2 || fields[1].Name != "Subject" || !strings.Contains(fields[1].Raw, "continued") || string(body) != "body\r\n" {
		t.Fatalf("fields %q body %q", fields, body)
	}
	fields, body = ParseMessage([]byte("From: a@b.test\r\n\r\nbody\r\n"))
	if len(fields) != 1 || string(body) != "body\r\n" {
		t.Fatalf("fields %q body %q", fields, body)
	}
}

// TestCountLetters: the eight-octets-at-a-time count is the count octet
// by octet, on every octet value at every position of a word.
func TestCountLetters(t *testing.T) {
	slow := func(s string) (letters, upper int) {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c >= 'a' && c <= 'z' {
				letters++
			} else if c >= 'A' && c <= 'Z' {
				letters++
				upper++
			}
		}
		return letters, upper
	}
	tests := []string{"", "a", "Hello, World!", "@AZ[`az{", "ÀÉÎõü caFÉ", "0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz"}
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	for off := range 8 {
		tests = append(tests, string(all[off:]), string(all[:256-off]))
	}
	// Longer than the 255 words that countLetters counts in lanes.
	long := strings.Repeat("Aa", 255*4) + string(all) + strings.Repeat("zZ", 5000)
	tests = append(tests, long, long[3:], long[:len(long)-5])
	for _, s := range tests {
		l, u := countLetters(s)
		if wl, wu := slow(s); l != wl || u != wu {
			t.Errorf("countLetters(%q) = %d, %d; want %d, %d", s, l, u, wl, wu)
		}
	}
}

// registered returns a domain's registered domain (its organizational
// domain), or the domain itself when it has none: phish.RegisteredSuffix
// without a memo, as the reference tokenizer (tokref_test.go) asks it;
// the extractor asks through its suffixMemo (Extractor.registered).
func registered(domain string) string {
	org, _ := phish.RegisteredSuffix(domain)
	return org
}

// TestRegistered: registered and phish.RegisteredSuffix read the public
// suffix list as publicsuffix.EffectiveTLDPlusOne and PublicSuffix do,
// on the name in lower case without its final dot (as the extractor's
// callers have it).
func TestRegistered(t *testing.T) {
	for _, d := range []string{"", ".", "..", "com", "com.", ".com", "example.com", "Example.COM", "example.com.", "example.com..",
		"a.b.example.co.uk", "co.uk", "x..com", "localhost", "192.0.2.1", "[::1]", "xn--pypal-4ve.test", "s3.amazonaws.com",
		"bucket.s3.amazonaws.com", "a.b.c.kawasaki.jp", "city.kawasaki.jp", "www.ck", "a.www.ck", "foo.blogspot.com"} {
		want := strings.ToLower(strings.TrimSuffix(d, "."))
		if r, err := publicsuffix.EffectiveTLDPlusOne(want); err == nil {
			want = r
		}
		wantSuffix, _ := publicsuffix.PublicSuffix(strings.ToLower(strings.TrimSuffix(d, ".")))
		if got := registered(d); got != want {
			t.Errorf("registered(%q) = %q, want %q", d, got, want)
		}
		if org, suffix := phish.RegisteredSuffix(d); org != want || suffix != wantSuffix {
			t.Errorf("RegisteredSuffix(%q) = %q, %q, want %q, %q", d, org, suffix, want, wantSuffix)
		}
	}
}

// TestTokenBound: the tokenizer reads the first maxTokenText octets of a
// text and nothing past them, and cuts no character in two.
func TestTokenBound(t *testing.T) {
	filler := strings.Repeat("filler ", maxTokenText/7+1)
	tests := []struct {
		name, text string
		want, not  []string
	}{
		{"within the bound", filler[:maxTokenText-100] + " zebra", []string{"word:zebra", "word:filler"}, nil},
		{"past the bound", filler + " zebra", []string{"word:filler"}, []string{"word:zebra"}},
		{"a character across the bound", filler[:maxTokenText-1] + "ééé zebra", nil, []string{"word:zebra", "word:é", "word:\ufffd"}},
	}
	x := NewExtractor()
	for _, tt := range tests {
		x.Extract(&Message{Content: &phish.Content{}}) // the extractor's state, then:
		x.tok.run(x, "word", tt.text)
		got := names(&x.v)
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: no %q", tt.name, w)
			}
		}
		for _, w := range tt.not {
			if slices.Contains(got, w) {
				t.Errorf("%s: %q", tt.name, w)
			}
		}
		for _, n := range got {
			if !utf8.ValidString(n) {
				t.Errorf("%s: feature %q is not UTF-8", tt.name, n)
			}
		}
	}
}

// tokenOracle is the tokenizer's definition read plainly, for ASCII
// text without links or addresses (no ':' or '@'): the hashes and names
// of kind's features of text, at most room of them. A chunk between
// white space that starts with "www." is a link, and not read.
func tokenOracle(kind, text string, room int) (hashes []uint64, names []string) {
	seen := map[uint64]bool{}
	add := func(h uint64, name string) bool {
		if seen[h] || len(hashes) >= room {
			return false
		}
		seen[h] = true
		hashes, names = append(hashes, h), append(names, name)
		return true
	}
	var prev []string // nearest first
	for _, chunk := range strings.FieldsFunc(text, func(r rune) bool { return strings.ContainsRune(" \n\t\r\f\v", r) }) {
		if len(chunk) >= 4 && strings.EqualFold(chunk[:4], "www.") {
			continue
		}
		for _, w := range strings.FieldsFunc(chunk, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			w = strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return '0'
				}
				return unicode.ToLower(r)
			}, w)
			switch {
			case len(w) < minWordRunes:
				continue
			case len(w) > maxWordRunes:
				add(hashFeature(kind, []byte("(long word)")), kind+":(long word)")
				continue
			}
			h := hashFeature(kind, []byte(w))
			add(h, kind+":"+w)
			for d, p := range prev {
				ph := hashFeature(kind, []byte(p))
				add(mix(ph*0x9e3779b97f4a7c15^h^uint64(d+1)*0xbf58476d1ce4e5b9), kind+" pair:"+p+pairGap[d]+w)
			}
			prev = append([]string{w}, prev[:min(len(prev), osbWindow-1)]...)
		}
	}
	return hashes, names
}

// TestTokenizerOracle: on ASCII text (no links, addresses or
// recipients), the tokenizer's features are those of the plain reading
// of its definition below, in the same order: words of 2 to 24 letters
// and digits, lower case, digits as 0, longer ones "(long word)"; each
// word paired with the three before it. Text that repeats itself, which
// the tokenizer reads through its memory of repeats, included, and text
// that fills the vector.
func TestTokenizerOracle(t *testing.T) {
	line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	var varied strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&varied, "w%c%c%c ", 'a'+i%26, 'a'+i/26%26, 'a'+i/676)
	}
	tests := []struct{ name, text string }{
		{"one line", line},
		{"a line over and over", strings.Repeat(line, 300)},
		{"repeats broken by new words", strings.Repeat(line+"then something new\n"+line+line, 20) + strings.Repeat("a b c a b c ab abc ", 50)},
		{"a short cycle", strings.Repeat("go stop ", 500) + "end"},
		{"long words and digits repeated", strings.Repeat("call 0123 456 now supercalifragilisticexpialidocious-ly now! ", 100)},
		{"a varied text that fills the vector, then repeats", varied.String() + strings.Repeat(line, 50)},
		{"repeats, then a varied text that fills the vector", strings.Repeat(line, 50) + varied.String()},
	}
	x := NewExtractor()
	for _, tt := range tests {
		x.Extract(&Message{Content: &phish.Content{}})
		before := len(x.v.Hashes)
		x.tok.run(x, "word", tt.text)
		wantH, wantN := tokenOracle("word", tt.text, MaxFeatures-before)
		gotN := names(&x.v)[before:]
		if !slices.Equal(x.v.Hashes[before:], wantH) || !slices.Equal(gotN, wantN) {
			t.Errorf("%s: %d features, the definition's %d", tt.name, len(gotN), len(wantN))
			for i := range min(len(gotN), len(wantN)) {
				if gotN[i] != wantN[i] || x.v.Hashes[before+i] != wantH[i] {
					t.Errorf("%s: first difference at %d: %q, the definition's %q", tt.name, i, gotN[i], wantN[i])
					break
				}
			}
		}
	}
}
