package phish

import (
	"bufio"
	"context"
	"encoding/base64"
	"mime/quotedprintable"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"

	"mailwall/internal/dkim"
)

func encode(t *testing.T, enc encoding.Encoding, s string) string {
	t.Helper()
	out, err := enc.NewEncoder().String(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func qp(s string) string {
	var b strings.Builder
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

// msg splits a message into header fields and body.
func msg(t testing.TB, raw string) ([]dkim.Field, []byte) {
	t.Helper()
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	br := bufio.NewReader(strings.NewReader(raw))
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	br.WriteTo(&body)
	return fields, []byte(body.String())
}

func rules(r Report) []string {
	var out []string
	for _, h := range r.Hits {
		out = append(out, h.Rule)
	}
	slices.Sort(out)
	return out
}

func TestCheck(t *testing.T) {
	c, err := New(DefaultBrands(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sjisHTML := encode(t, japanese.ShiftJIS, `<html><body><p>Amazonプライムの更新に失敗しました。</p>
<p><a href="http://desctrl.com/ap/signin?id=1">https://www.amazon.co.jp/gp/css/homepage.html</a></p></body></html>`)
	isoText := encode(t, japanese.ISO2022JP, "お客様のアカウントを確認してください: http://www.yahoo.co:jp@hogehoge.com/login\r\n")
	tests := []struct {
		name  string
		raw   string
		in    Input
		want  []string
		brand string
	}{
		{
			name: "story: amazon look-alike local part, p=none, deceptive link, bare PTR",
			raw: "From: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("Amazon.co.jp")) + "?= <amozonjp-update-account@desctrl.com>\n" +
				"Subject: =?ISO-2022-JP?B?" + base64.StdEncoding.EncodeToString([]byte(encode(t, japanese.ISO2022JP, "アカウントの更新"))) + "?=\n" +
				"MIME-Version: 1.0\nContent-Type: text/html; charset=Shift_JIS\nContent-Transfer-Encoding: base64\n\n" +
				base64.StdEncoding.EncodeToString([]byte(sjisHTML)) + "\n",
			in:    Input{PTRName: "desctrl.com", IPRev: "pass", SPF: "pass", DKIMPass: []string{"desctrl.com"}, DMARC: "pass", DMARCPolicy: "none"},
			want:  []string{BrandDisplayName, BrandLocalPart, DMARCNoneBrand, PTRBareDomain, URLTextMismatch},
			brand: "amazon",
		},
		{
			name: "amazon.co.jp itself",
			raw: "From: Amazon.co.jp <store-news@amazon.co.jp>\nSubject: sale\nContent-Type: text/html\n\n" +
				`<a href="https://www.amazon.co.jp/deals?ref=x">https://www.amazon.co.jp/deals</a>` + "\n",
			in:   Input{PTRName: "a27-1.smtp-out.amazonses.com", IPRev: "pass", SPF: "pass", DKIMPass: []string{"amazon.co.jp"}, DMARC: "pass", DMARCPolicy: "quarantine"},
			want: nil,
		},
		{
			name: "userinfo trick in an ISO-2022-JP quoted-printable part",
			raw: "From: Yahoo! JAPAN <info@mail.example.net>\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b1\n\n--b1\n" +
				"Content-Type: text/plain; charset=ISO-2022-JP\nContent-Transfer-Encoding: quoted-printable\n\n" + qp(isoText) + "\n--b1--\n",
			in:    Input{SPF: "pass", DKIMPass: []string{"example.net"}, DMARC: "pass", DMARCPolicy: "reject"},
			want:  []string{BrandDisplayName, URLUserinfo},
			brand: "yahoo",
		},
		{
			name: "Cyrillic a in a punycode From domain and display name",
			raw:  "From: P\u0430yPal <service@xn--pypal-4ve.com>\nSubject: x\n\nhttp://198.51.100.7/webscr?cmd=login\n",
			in:   Input{SPF: "pass", DKIMPass: []string{"xn--pypal-4ve.com"}, DMARC: "pass", DMARCPolicy: "none"},
			want: []string{BrandDisplayName, BrandFromDomain, DMARCNoneBrand, IDNFromDomain, MixedScript, URLIPLiteral},
		},
		{
			name: "Reply-To elsewhere, display name with another address",
			raw:  "From: \"ceo@company.example\" <ceo.company@freemail.example>\nReply-To: <ceo@wire-transfer.example>\nSubject: urgent\n\nPlease pay today.\n",
			in:   Input{SPF: "pass", DKIMPass: []string{"freemail.example"}, DMARC: "pass", DMARCPolicy: "none"},
			want: []string{DisplayNameAddress, ReplyToOtherOrg},
		},
		{
			name: "link host imitating a brand, punycode link, Japanese brand name",
			raw: "From: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("楽天カード株式会社")) + "?= <info@card-notice.example>\n" +
				"Content-Type: text/plain; charset=UTF-8\n\nhttps://rakuten-card.co.jp.secure-login.example/ ご確認ください https://xn--80ak6aa92e.com/\n",
			in:   Input{SPF: "pass", DKIMPass: []string{"card-notice.example"}, DMARC: "pass", DMARCPolicy: "reject"},
			want: []string{BrandDisplayName, URLBrandLookalike, URLPunycode},
		},
		{
			name: "newsletter tracking its own links through a mail service",
			raw: "From: Shop News <news@shop.example>\nReply-To: support@shop.example\nContent-Type: text/html\n\n" +
				`<a href="https://click.esp.example/t/abc">https://www.shop.example/sale</a> <a href="https://click.esp.example/u">unsubscribe</a>` + "\n",
			in:   Input{PTRName: "o1.esp.example", IPRev: "pass", SPF: "pass", DKIMPass: []string{"shop.example"}, DMARC: "pass", DMARCPolicy: "none"},
			want: nil,
		},
		{
			name: "amazing deals are not amazon",
			raw:  "From: Amazing Deals <amazing-deals@shop.example>\n\nhi\n",
			in:   Input{SPF: "pass", DKIMPass: []string{"shop.example"}, DMARC: "pass", DMARCPolicy: "none"},
			want: nil,
		},
		{
			name: "unauthenticated, failing, dynamic client",
			raw:  "From: a@b.example\n\nhi\n",
			in:   Input{PTRName: "p1234-ipngn.dyn.example", S25R: true, IPRev: "fail", SPF: "softfail", DKIMFail: true, DMARC: "fail", DMARCPolicy: "none"},
			want: []string{AuthDKIMFail, AuthDMARCFail, AuthIPRevFail, AuthNone, AuthS25R, AuthSPFFail},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.ClientIP = netip.MustParseAddr("192.0.2.10")
			in.Fields, in.Body = msg(t, tc.raw)
			r := c.Check(context.Background(), in)
			if got := rules(r); !slices.Equal(got, tc.want) {
				t.Errorf("rules %v, want %v", got, tc.want)
				for _, h := range r.Hits {
					t.Logf("  %s (%d): %s", h.Rule, h.Weight, h.Detail)
				}
				t.Logf("links %+v problems %v", r.Content.Links, r.Problems)
			}
			sum := 0
			for _, h := range r.Hits {
				sum += h.Weight
				if h.Detail == "" {
					t.Errorf("%s without an explanation", h.Rule)
				}
			}
			if r.Score != sum {
				t.Errorf("score %d, weights add to %d", r.Score, sum)
			}
			if tc.brand != "" && !slices.Contains(r.Brands, tc.brand) {
				t.Errorf("brands %v, want %s", r.Brands, tc.brand)
			}
		})
	}
}

func TestWeightsFromConfig(t *testing.T) {
	c, err := New(DefaultBrands(), map[string]int{URLUserinfo: 0, ReplyToOtherOrg: 50})
	if err != nil {
		t.Fatal(err)
	}
	fields, body := msg(t, "From: a@a.example\nReply-To: b@b.example\n\nhttp://x.example@y.example/\n")
	r := c.Check(context.Background(), Input{Fields: fields, Body: body, SPF: "pass", DKIMPass: []string{"a.example"}})
	if got := rules(r); !slices.Equal(got, []string{ReplyToOtherOrg}) || r.Score != 50 {
		t.Errorf("rules %v score %d", got, r.Score)
	}
	if _, err := New(nil, map[string]int{"no_such_rule": 1}); err == nil {
		t.Error("unknown rule accepted")
	}
	if _, err := New([]Brand{{Name: "x"}}, nil); err == nil {
		t.Error("brand without domains accepted")
	}
}

func TestExtract(t *testing.T) {
	raw := "From: a@b.example\nSubject: =?Shift_JIS?B?" + base64.StdEncoding.EncodeToString([]byte(encode(t, japanese.ShiftJIS, "ご請求"))) + "?=\n" +
		"Content-Type: multipart/mixed; boundary=\"o\"\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n" +
		"Content-Type: text/plain; charset=EUC-JP\n\n" + encode(t, japanese.EUCJP, "詳細は https://example.com/a?b=c。") + "\n--i\n" +
		"Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
		qp(`<style>a{}</style><a href="https://x.example/">Click <b>here</b></a> www.plain.example/path).`) + "\n--i--\n" +
		"--o\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nhttps://attached.example/\n" +
		"--o\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/plain\n\nhttp://inner.example/\n--o--\n"
	fields, body := msg(t, raw)
	c := Extract(fields, body)
	if c.Subject != "ご請求" {
		t.Errorf("subject %q", c.Subject)
	}
	var got []string
	for _, l := range c.Links {
		got = append(got, l.Href+"|"+l.Text)
	}
	want := []string{"https://example.com/a?b=c|", "https://x.example/|Click here", "www.plain.example/path|", "http://inner.example/|"}
	if !slices.Equal(got, want) {
		t.Errorf("links\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(c.Text, "詳細は") {
		t.Errorf("EUC-JP text not decoded: %q", c.Text)
	}
	// The milter reuses a body's buffer once Extract returns: what
	// Content holds must not share it.
	text := c.Text
	for i := range body {
		body[i] = 'X'
	}
	got = got[:0]
	for _, l := range c.Links {
		got = append(got, l.Href+"|"+l.Text)
	}
	if !slices.Equal(got, want) || c.Text != text || strings.Contains(c.Text, "XXX") {
		t.Errorf("Content changed with the body under it: links %q, text %q", got, c.Text)
	}
	// Text stops at maxText; links are searched for in the first
	// textScan octets (TestScanBounds).
	fields, body = msg(t, "Content-Type: text/plain\n\n"+strings.Repeat("filler line of text\n", 2000)+"http://late.example/\n"+strings.Repeat("filler line of text\n", 8000))
	c = Extract(fields, body)
	if len(c.Text) != maxText || len(c.Links) != 1 || c.Links[0].Href != "http://late.example/" {
		t.Errorf("long body: text %d octets, links %v", len(c.Text), c.Links)
	}
	// An unknown charset is a problem reported, not a lost part.
	fields, body = msg(t, "Content-Type: text/plain; charset=x-unknown\n\nhttp://still.example/\n")
	c = Extract(fields, body)
	if len(c.Links) != 1 || len(c.Problems) == 0 {
		t.Errorf("unknown charset: links %v problems %v", c.Links, c.Problems)
	}
}

func TestBrandMatch(t *testing.T) {
	ix := newBrandIndex(DefaultBrands())
	for _, tc := range []struct {
		s    string
		want string // brand, "" for none
		how  string
	}{
		{"amozonjp-update-account", "amazon", "look-alike"},
		{"amaz0n", "amazon", "homoglyph"},
		{"arnazon", "amazon", "homoglyph"},
		{"secure-paypal-login", "paypal", "name"},
		{"mlcrosoft", "microsoft", "look-alike"},
		{"amazing", "", ""},
		{"pineapple", "", ""}, // names under 6 letters match whole tokens only
		{"apple-id", "apple", "name"},
		{"newsletter", "", ""},
		{"三井住友カード", "smbc", "name"},
		{"support", "", ""},
	} {
		ms := ix.match(tc.s, true)
		got, how := "", ""
		if len(ms) > 0 {
			got, how = ix.brands[ms[0].brand].Name, ms[0].how
		}
		if got != tc.want || how != tc.how {
			t.Errorf("%q: %s %s, want %s %s", tc.s, got, how, tc.want, tc.how)
		}
	}
}

// BenchmarkCheck scores the story message: content extraction, brand
// matching and link checks.
func BenchmarkCheck(b *testing.B) {
	c, _ := New(DefaultBrands(), nil)
	raw := "From: Amazon.co.jp <amozonjp-update-account@desctrl.com>\r\nSubject: x\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n" +
		strings.Repeat(`<p>Amazonプライムの更新 <a href="http://desctrl.com/ap/signin">https://www.amazon.co.jp/gp/css/homepage.html</a></p>`, 20) + "\r\n"
	in := Input{SPF: "pass", DKIMPass: []string{"desctrl.com"}, DMARC: "pass", DMARCPolicy: "none"}
	in.Fields, in.Body = msg(b, raw)
	b.ReportAllocs()
	for b.Loop() {
		c.Check(context.Background(), in)
	}
}

// BenchmarkCheckOrdinary scores an ordinary short text message, most of
// the mail: no brand, no link.
func BenchmarkCheckOrdinary(b *testing.B) {
	c, _ := New(DefaultBrands(), nil)
	raw := "From: Sender Name <sender@example.test>\r\nTo: rcpt@rcpt.test\r\nSubject: benchmark\r\nContent-Type: text/plain\r\n\r\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog, again and again and again.\r\n", 28)
	in := Input{SPF: "pass", DKIMPass: []string{"example.test"}, DMARC: "pass", DMARCPolicy: "reject"}
	in.Fields, in.Body = msg(b, raw)
	b.ReportAllocs()
	for b.Loop() {
		c.Check(context.Background(), in)
	}
}

// stuckHistory never answers until released, as a locked store.
type stuckHistory struct{ release chan struct{} }

func (h stuckHistory) SeenDomain(ctx context.Context, domain string, now time.Time) (time.Time, time.Time, error) {
	<-h.release // ignores ctx, as a driver in a lock wait may
	return now, now.Add(-365 * 24 * time.Hour), nil
}

// newHistory answers that every domain is new and history is a year old.
type newHistory struct{}

func (newHistory) SeenDomain(ctx context.Context, domain string, now time.Time) (time.Time, time.Time, error) {
	return now, now.Add(-365 * 24 * time.Hour), nil
}

// cachedHistory knows some domains in memory; for the others its slow
// path (SeenDomain) answers that they are new.
type cachedHistory struct {
	newHistory
	known map[string]time.Time // first seen
	slow  *int                 // SeenDomain calls
}

func (h cachedHistory) SeenDomain(ctx context.Context, domain string, now time.Time) (time.Time, time.Time, error) {
	*h.slow++
	return h.newHistory.SeenDomain(ctx, domain, now)
}

func (h cachedHistory) SeenDomainCached(domain string, now time.Time) (time.Time, time.Time, bool) {
	first, ok := h.known[domain]
	return first, now.Add(-365 * 24 * time.Hour), ok
}

// TestFirstSeenFromMemory: a domain the history holds in memory is judged
// from it, without the slow lookup; one it does not goes the slow way.
func TestFirstSeenFromMemory(t *testing.T) {
	c, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	slow := 0
	c.History = cachedHistory{known: map[string]time.Time{"old.test": time.Now().Add(-30 * 24 * time.Hour)}, slow: &slow}
	for _, tc := range []struct {
		domain    string
		fires     bool
		slowCalls int
	}{{"old.test", false, 0}, {"fresh.test", true, 1}} {
		in := Input{ClientIP: netip.MustParseAddr("192.0.2.10"), SPF: "pass", DMARC: "pass", DKIMPass: []string{tc.domain}}
		in.Fields, in.Body = msg(t, "From: a@"+tc.domain+"\nSubject: hi\n\nhello\n")
		r := c.Check(context.Background(), in)
		if slices.Contains(rules(r), FirstSeenDomain) != tc.fires || slow != tc.slowCalls {
			t.Errorf("%s: rules %v, slow lookups %d; want first_seen %v, %d", tc.domain, rules(r), slow, tc.fires, tc.slowCalls)
		}
	}
}

func TestFirstSeenDoesNotWaitForAStuckStore(t *testing.T) {
	c, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := Input{ClientIP: netip.MustParseAddr("192.0.2.10"), SPF: "pass", DMARC: "pass", DKIMPass: []string{"fresh.test"}}
	in.Fields, in.Body = msg(t, "From: a@fresh.test\nSubject: hi\n\nhello\n")

	c.History = newHistory{}
	if r := c.Check(context.Background(), in); !slices.Contains(rules(r), FirstSeenDomain) {
		t.Fatalf("a new domain with an answering store: rules %v", rules(r))
	}

	stuck := stuckHistory{release: make(chan struct{})}
	defer close(stuck.release)
	c.History, c.HistoryTimeout = stuck, 20*time.Millisecond
	r := c.Check(context.Background(), in)
	if slices.Contains(rules(r), FirstSeenDomain) {
		t.Errorf("first_seen_domain fired without an answer: %v", rules(r))
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "first-seen: store did not answer in 20ms") {
		t.Errorf("problems %q, want the store's silence", r.Problems)
	}
}

func TestWWWDot(t *testing.T) {
	for text, want := range map[string]int{
		"www.example.test":           0,
		"visit WwW.example.test now": 6,
		"an end. then www.b.test":    13,
		"see https://example.test/x": -1,
		"wwwx.example.test":          -1,
		"ww.example.test":            -1,
		"an ordinary sentence.":      -1,
		".www":                       -1,
		"":                           -1,
	} {
		got := wwwDot([]byte(text))
		if got != want {
			t.Errorf("wwwDot(%q) = %d, want %d", text, got, want)
		}
		// Text with neither hint is skipped: the pattern must not match it.
		if got < 0 && !strings.Contains(text, "://") && urlPattern.MatchString(text) {
			t.Errorf("%q skipped, but urlPattern matches it", text)
		}
	}
}

// TestPlainLinks: the hint search finds every link the pattern finds over
// the whole text, on the first, middle and last lines, with and without a
// final line end.
func TestPlainLinks(t *testing.T) {
	text := "https://a.test/1 first line\nplain.\nsee www.b.test. and c.test\n\nwww. alone, x://y\nmore text, no link.\nlast http://d.test/x"
	for _, in := range []string{text, text + "\n", "\n" + text} {
		var c extraction
		c.plain([]byte(in))
		var got []string
		for _, l := range c.Links {
			got = append(got, l.Href)
		}
		var want []string
		for _, u := range urlPattern.FindAllString(in, -1) {
			want = append(want, trimURL(u))
		}
		if !slices.Equal(got, want) || len(got) != 3 {
			t.Errorf("links %q, want %q", got, want)
		}
	}
}

// BenchmarkPlain: links and text from 512 KB of prose with no link.
func BenchmarkPlain(b *testing.B) {
	text := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 512<<10/64))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		var c extraction
		c.plain(text)
		if len(c.Links) != 0 {
			b.Fatal(c.Links)
		}
	}
}
