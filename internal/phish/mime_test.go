package phish

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// TestExtractBrokenParts: what phishing sends broken on purpose is read
// as a client shows it, and each break is reported.
func TestExtractBrokenParts(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, raw string
		links     []string
		problem   bool
	}{
		{"stray = in quoted-printable", "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nPay =ZZ now at=\n http://evil.example/=3Fid=3D1\n", []string{"http://evil.example/?id=1"}, true},
		{"base64 padded in the middle", "Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n" + b64("<p>Hi</p>") + "\n" + b64(`<a href="http://evil.example/">www.paypal.com</a>`) + "\n", []string{"http://evil.example/|www.paypal.com"}, false},
		{"base64 with junk and a cut byte", "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + b64("see http://evil.example/ ") + "!!*\nQ\n", []string{"http://evil.example/"}, true},
		{"no closing boundary", "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nhttp://first.example/\n--b\nContent-Type: text/plain\n\nhttp://last.example/\n", []string{"http://first.example/", "http://last.example/"}, true},
		{"HTML attachment", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee the attached invoice.\n--b\nContent-Type: application/octet-stream; name=\"invoice.html\"\nContent-Disposition: attachment; filename=\"invoice.html\"\nContent-Transfer-Encoding: base64\n\n" + b64(`<form action="http://evil.example/post"></form><a href="http://evil.example/login">Sign in</a>`) + "\n--b--\n", []string{"http://evil.example/login|Sign in"}, false},
		{"text attachment still skipped", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=log.txt\n\nhttp://log.example/\n--b--\n", nil, false},
		{"Content-Type without a semicolon", "Content-Type: TEXT/HTML charset=US-ASCII\n\n<a href=\"http://evil.example/\">x</a>\n", []string{"http://evil.example/|x"}, true},
		{"entities and invisible characters in link text", "Content-Type: text/html\n\n<a href=\"http://evil.example/\">www.pay&#x200B;pal&period;com</a>\n", []string{"http://evil.example/|www.pay\u200bpal.com"}, false},
		{"calendar invitation attached", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee the invitation.\n--b\nContent-Type: text/calendar; method=REQUEST\nContent-Disposition: attachment; filename=invite.ics\n\nBEGIN:VCALENDAR\nDESCRIPTION:Review the document at https://evil.example/doc\nEND:VCALENDAR\n--b--\n", []string{"https://evil.example/doc"}, false},
		{"AMP part", "Content-Type: text/x-amp-html\n\n<a href=\"http://evil.example/\">www.amazon.co.jp</a>\n", []string{"http://evil.example/|www.amazon.co.jp"}, false},
		{"hidden text inside link text", "Content-Type: text/html\n\n<a href=\"http://evil.example/\">www.pay<span style=\"display: none !important\">xq</span>pal.com</a>\n", []string{"http://evil.example/|www.paypal.com"}, false},
		{"relative link under <base>", "Content-Type: text/html\n\n<html><head><base href=\"http://evil.example/kit/\"></head><a href=\"login.php?a=b:c\">Sign in</a> <a href=\"https://ok.example/\">ok</a>\n", []string{"http://evil.example/kit/login.php?a=b:c|Sign in", "https://ok.example/|ok"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields, body := msg(t, tc.raw)
			c := Extract(fields, body)
			if got := linkStrings(c.Links); !slices.Equal(got, tc.links) {
				t.Errorf("links %q, want %q (problems %q)", got, tc.links, c.Problems)
			}
			if (len(c.Problems) > 0) != tc.problem {
				t.Errorf("problems %q, want some: %v", c.Problems, tc.problem)
			}
		})
	}
}

// linkStrings writes each link as its href, then "|" and its text when
// it has one, for comparing with a test's expectation.
func linkStrings(links []Link) []string {
	var out []string
	for _, l := range links {
		s := l.Href
		if l.Text != "" {
			s += "|" + l.Text
		}
		out = append(out, s)
	}
	return out
}

func TestDecodeBounded(t *testing.T) {
	big := strings.Repeat("QUFB", maxPartBytes) // 6 MB of 'A's decoded
	out, _ := decodeBase64([]byte(big), maxDecoded)
	if len(out) != maxDecoded {
		t.Errorf("base64: %d octets out, want the cap %d", len(out), maxDecoded)
	}
	out, _ = decodeQP([]byte(strings.Repeat("=41", maxPartBytes)), maxDecoded)
	if len(out) != maxDecoded {
		t.Errorf("quoted-printable: %d octets out, want the cap %d", len(out), maxDecoded)
	}
	for _, in := range []string{"", "=", "Q", "QQ==QQ", "====", "QUFB=QUFB"} {
		decodeBase64([]byte(in), maxDecoded) // no panic
	}
}

// TestHiddenHTMLText: text a client does not show is not read, and the
// element that hid it ends where it ends, nested or not.
func TestHiddenHTMLText(t *testing.T) {
	raw := "Content-Type: text/html\n\n<p>Your <div style=\"font-size:0px\">lorem <div>ipsum</div> dolor</div>account <span hidden>sit</span>is <font style='opacity:0'>amet</font>locked." +
		"<div style=\"max-height:0;overflow:hidden\">filler</div><span style=\"font-size:0.9em\">Read</span> <img style=\"display:none\" src=x>more</p>\n"
	fields, body := msg(t, raw)
	c := Extract(fields, body)
	if got := strings.Join(strings.Fields(c.Text), " "); got != "Your account is locked. Read more" {
		t.Errorf("text %q", got)
	}
	if want := len("lorem ipsum dolorsitametfiller"); c.Hidden != want {
		t.Errorf("hidden %d octets, want %d", c.Hidden, want)
	}
}

// TestScanBounds: of each part, links are read in the first textScan
// octets of text and rawScan of HTML, the line (tag) that crosses the
// bound whole; what is past is not read; each part has its own bounds.
func TestScanBounds(t *testing.T) {
	// filler and html are about n octets of text and of markup, lines
	// ending in CRLF as msg writes them.
	filler := func(n int) string { return strings.Repeat("filler line of text\n", n/21) }
	b64 := func(s string) string {
		e := base64.StdEncoding.EncodeToString([]byte(s))
		var b strings.Builder
		for len(e) > 76 {
			b.WriteString(e[:76] + "\n")
			e = e[76:]
		}
		return b.String() + e + "\n"
	}
	utf16le := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			b.WriteByte(s[i])
			b.WriteByte(0)
		}
		return b.String()
	}
	html := func(n int) string { return strings.Repeat("<p>filler</p>\n", n/15) }
	for _, tc := range []struct {
		name, raw string
		links     []string
	}{
		{"plain within", "Content-Type: text/plain\n\n" + filler(textScan-40) + "see https://a.test/within and more text here\n" + filler(1000),
			[]string{"https://a.test/within"}},
		{"plain line across the bound", "Content-Type: text/plain\n\n" + filler(textScan-20) + "the text goes on and on, https://a.test/across\n",
			[]string{"https://a.test/across"}},
		{"plain past", "Content-Type: text/plain\n\n" + filler(textScan+scanSlack+100) + "https://a.test/past\n", nil},
		{"plain 1 MB", "Content-Type: text/plain\n\nhttps://a.test/first\n" + filler(1<<20) + "https://a.test/last\n", []string{"https://a.test/first"}},
		{"plain no line end", "Content-Type: text/plain\n\n" + strings.Repeat("x ", textScan/2) + "https://a.test/cut " + strings.Repeat("y", 2*scanSlack),
			[]string{"https://a.test/cut"}},
		{"plain base64", "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + b64(filler(textScan-2000)+"https://a.test/b64\n"+filler(1<<20)+"https://a.test/late\n"),
			[]string{"https://a.test/b64"}},
		{"plain utf-16", "Content-Type: text/plain; charset=utf-16le\nContent-Transfer-Encoding: base64\n\n" + b64(utf16le(filler(textScan-2000)+"https://a.test/16\n"+filler(1<<17))),
			[]string{"https://a.test/16"}},
		{"html anchor within", "Content-Type: text/html\n\n" + html(rawScan-200) + `<a href="https://a.test/anchor">x</a>` + html(1000),
			[]string{"https://a.test/anchor|x"}},
		{"html anchor past", "Content-Type: text/html\n\n" + html(rawScan+scanSlack+100) + `<a href="https://a.test/anchor">x</a>`, nil},
		{"html text past textScan", "Content-Type: text/html\n\n" + html(textScan*15/6+1000) + "<p>https://a.test/text</p>" + `<a href="https://a.test/anchor">x</a>`,
			[]string{"https://a.test/anchor|x"}},
		{"html base64", "Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n" + b64(`<a href="https://a.test/b64">x</a>`+html(2*rawScan)+`<a href="https://a.test/late">x</a>`),
			[]string{"https://a.test/b64|x"}},
		{"each part its own", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n" + filler(1<<20) + "https://a.test/1\n" +
			"--b\nContent-Type: text/plain\n\nhttps://a.test/2\n--b\nContent-Type: text/html\n\n" + html(textScan) + `<a href="https://a.test/3">x</a>` + "\n--b--\n",
			[]string{"https://a.test/2", "https://a.test/3|x"}},
	} {
		fields, body := msg(t, tc.raw)
		c := Extract(fields, body)
		if got := linkStrings(c.Links); !slices.Equal(got, tc.links) {
			t.Errorf("%s: links %q, want %q", tc.name, got, tc.links)
		}
	}
}

// urlsByPattern are the URLs urlPattern finds in text, as findURLs
// reported them before nextURL.
func urlsByPattern(text []byte) []string {
	var out []string
	for _, u := range urlPattern.FindAll(text, maxLinks) {
		out = append(out, trimURL(string(u)))
	}
	return out
}

func urlsFound(text []byte) []string {
	var c extraction
	c.findURLs(text)
	var out []string
	for _, l := range c.Links {
		out = append(out, l.Href)
	}
	return out
}

// TestNextURL: the hand-written matcher finds what urlPattern finds.
func TestNextURL(t *testing.T) {
	for _, s := range urlSeeds {
		if got, want := urlsFound([]byte(s)), urlsByPattern([]byte(s)); !slices.Equal(got, want) {
			t.Errorf("%q: %q, the pattern finds %q", s, got, want)
		}
	}
}

var urlSeeds = []string{
	"", "http://a", "see https://a.test/x?y=1#z, then", "HTTPS://A.TEST/", "WwW.a.test.", "httpſ://a.test/", "httpſs://a.test/",
	"xhttp://a.test/ _www.a.test 9www.a.test éwww.a.test", "http:///a", "www.", "www./a", "www.ア", "http://例え.jp/パス",
	"\xffhttp://a\xff/b", "http://a\x00b c", "www.a\u3000b", "https://a.test/x) (https://b.test/y)", "http://a.test\thttp://b.test",
	"<http://a.test/>", "\"http://a.test\"", "'www.a.test'", "http://a.test:8080/p\x7f", "http://a\xe3\x81", "www.\xe3\x81\x82",
	"http://user:pw@a.test/", "https://a.test/" + strings.Repeat("x", 300), "htt://a.test ftp://a.test https:/a.test https//a.test",
	"http://ａ.test/ http://a.ｔｅｓｔ", "www.a.test\fwww.b.test\vwww.c.test", "http://a.test/\u00a0x", "http://\u017ftest",
	"http://0\"\u017f", "http://a/\u212a\u017fx", "www.a\u212a",
}

// FuzzNextURL holds nextURL to urlPattern on any text.
func FuzzNextURL(f *testing.F) {
	for _, s := range urlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		if got, want := urlsFound(text), urlsByPattern(text); !slices.Equal(got, want) {
			t.Errorf("%q: %q, the pattern finds %q", text, got, want)
		}
	})
}

// TestDecodeHeaderPlain: the shortcut for a plain value gives what the
// decoding gives.
func TestDecodeHeaderPlain(t *testing.T) {
	decoded := func(v string) string {
		v = strings.Join(strings.Fields(v), " ")
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
		return strings.ToValidUTF8(v, "\uFFFD")
	}
	for _, v := range []string{"", "benchmark", "Your statement is ready", "a  b", " a", "a ", "a\tb", "a\r\n b", "=?utf-8?q?caf=C3=A9?=",
		"x =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?= y", "a=?b", "a=b?", "=", "café", "\xff", "a\vb", "a\fb"} {
		if got, want := decodeHeader(v), decoded(v); got != want {
			t.Errorf("decodeHeader(%q) = %q, want %q", v, got, want)
		}
	}
}

var styleSeeds = []string{"", "display:none", "DISPLAY : None !important", "margin:0", "font-size:0px", "font-size:.", "font-size:0.9em",
	"opacity:0;", "max-height:0;overflow:hidden", "max-height:0", "visibility:hidden", "vis ibility:hid den", "display:block;display:none",
	"font-size:0%", "color:red;;font-size:0", "display:nоne", "dİsplay:none", "display:\u00a0none", "font-size:\t0\r\npx"}

// TestHiddenStyle: the ASCII reading of a style is the general one's.
func TestHiddenStyle(t *testing.T) {
	for _, v := range styleSeeds {
		if got, want := hiddenStyle([]byte(v)), hiddenStyleOf([]byte(v)); got != want {
			t.Errorf("hiddenStyle(%q) = %v, want %v", v, got, want)
		}
	}
}

// FuzzHiddenStyle holds the ASCII reading to the general one.
func FuzzHiddenStyle(f *testing.F) {
	for _, v := range styleSeeds {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if len(v) > 1024 {
			v = v[:1024]
		}
		if got, want := hiddenStyle(v), hiddenStyleOf(v); got != want {
			t.Errorf("hiddenStyle(%q) = %v, want %v", v, got, want)
		}
	})
}

var htmlSeeds = []string{
	`<p style="margin:0">Your <a href="https://a.test/x">account</a> is <span hidden>x</span>locked.</p>`,
	`<DIV STYLE="display:none">filler</DIV><A HREF="http://b.test">B</A><br/><P>text</P>`,
	`<base href="https://base.test/dir/"><a href="rel">relative</a><my-tag style="font-size:0">x</my-tag>done`,
	`<div style="display:none"><div>nested</div> still hidden</div> shown <img style="display:none" src=x>after`,
	"<a href=\"x\x00y\">nul</a><di\x00v style=\"display:none\">n</di\x00v>text <script>var a = '<a href=x>';</script> https://t.test/",
	`<table><tr><td hidden>h</td></tr></table><a href='https://c.test' title=hidden>c</a><font style='opacity:0'>o</font>`,
	`<a href="https://d.test">unclosed <b>bold</b>`, `</p></a><p/><a/>text`, `<svg><a href="https://svg.test">s</a></svg><!-- <a href="https://comment.test">c</a> -->`,
}

// FuzzHTMLTags: names read from the raw tags and attributes read only
// when one html reads may be there give the Content that asking the
// tokenizer for every tag's gives.
func FuzzHTMLTags(f *testing.F) {
	for _, s := range htmlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, copied := extraction{}, extraction{copiedTags: true}
		fast.html(b)
		copied.html(b)
		if fast.text.String() != copied.text.String() || fast.Hidden != copied.Hidden || !slices.Equal(fast.Links, copied.Links) {
			t.Errorf("%q: text %q hidden %d links %q; every tag asked: text %q hidden %d links %q", b,
				fast.text.String(), fast.Hidden, fast.Links, copied.text.String(), copied.Hidden, copied.Links)
		}
	})
}
