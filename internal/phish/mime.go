package phish

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/text/encoding/htmlindex"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
)

// Limits on what content extraction reads, so a hostile message costs
// bounded work.
const (
	maxDepth     = 8
	maxParts     = 100
	maxPartBytes = 2 << 20 // of a part as sent, read to decode it
	// maxLinks bounds the links of a message, as rspamd's max_urls
	// (10240; 1024 for its Lua rules) does.
	maxLinks = 500
)

// What extraction reads of each text part, as SpamAssassin bounds it
// since 3.4.3: its body rules, and the URIs they find written out, see
// the first body_part_scan_size (50,000) octets of each part's rendered
// text; its rawbody rules the first rawbody_part_scan_size (500,000) of
// each part decoded. Here the first textScan octets of a part's text
// are searched for written-out URLs, and of an HTML part the first
// rawScan octets of markup are read at all (anchors, text, hidden
// styles); a part is decoded no further than that. A cut falls at the
// first line end (in markup, ">") within scanSlack past the bound, as
// SpamAssassin's does, so that the link on the last line is whole. The
// start of a message is where its lure is: 1 MB of text costs what the
// bounds cost. Content.Text has its own bound, maxText.
const (
	textScan   = 50_000
	rawScan    = 500_000
	scanSlack  = 1 << 10
	maxDecoded = rawScan + scanSlack // of a part, decoded
)

// scanCut returns how much of b a bound of n octets reads: all of b
// when it is no longer, else up to the first of the bytes of stops
// found within scanSlack past n (stops[0] first), else n.
func scanCut(b []byte, n int, stops string) int {
	if len(b) <= n {
		return len(b)
	}
	past := b[n:min(len(b), n+scanSlack)]
	for i := 0; i < len(stops); i++ {
		if j := bytes.IndexByte(past, stops[i]); j >= 0 {
			return n + j + 1
		}
	}
	return n
}

// Link and Content are the decoded message the pipeline's analyzers
// share (internal/analysis): Extract fills them.
type (
	Link    = analysis.Link
	Content = analysis.Content
)

// extraction is a Content being filled.
type extraction struct {
	Content
	text strings.Builder
	// copiedTags has html ask the tokenizer for every tag's name and
	// attributes, as it did before rawTagName and attrHint: the tests
	// compare the two.
	copiedTags bool
}

// maxText bounds Content.Text: no rule reads further into the text, and
// a copy of all of a large body costs more than finding its links.
const maxText = 64 << 10

// wordDecoder decodes RFC 2047 encoded words in any charset the
// WHATWG encoding index knows (ISO-2022-JP, Shift_JIS, EUC-JP, ...).
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader converts an encoded word's charset to UTF-8. A charset
// it does not know does not stop the decoding of the rest of
// the field, as it does in mime.WordDecoder: the word's bytes are kept as
// they are (made valid UTF-8 by the caller), since a phisher who names
// a charset that does not exist still gets the text shown.
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	charset, _, _ = strings.Cut(charset, "*") // RFC 2231 §5: "utf-8*ja"
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return r, nil
	}
	return enc.NewDecoder().Reader(r), nil
}

// decodeHeader decodes encoded words in a header value; undecodable
// words stay as written. The result is valid UTF-8.
func decodeHeader(v string) string {
	if plainHeader(v) {
		return v // most: nothing to join, nothing to decode
	}
	v = strings.Join(strings.Fields(v), " ")
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		v = d
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

// plainHeader reports a value decodeHeader leaves as it is: ASCII, no
// encoded word, white space only single spaces between words.
func plainHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= utf8.RuneSelf, c == '=' && i+1 < len(v) && v[i+1] == '?':
			return false
		case c == ' ':
			if i == 0 || i == len(v)-1 || v[i-1] == ' ' {
				return false
			}
		case c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
			return false
		}
	}
	return true
}

// Extract reads the text and HTML parts of a message: MIME structure,
// transfer encodings and charsets decoded. The Content holds copies only:
// the caller may reuse body once Extract returns.
func Extract(fields []dkim.Field, body []byte) Content {
	var c extraction
	h := textproto.MIMEHeader{}
	for _, f := range fields {
		// Only the fields walk and Subject read: a message's other
		// fields (DKIM-Signature, Received, ...) are most of its header.
		if strings.EqualFold(f.Name, "Subject") || len(f.Name) > 8 && strings.EqualFold(f.Name[:8], "Content-") {
			h.Add(textproto.CanonicalMIMEHeaderKey(f.Name), strings.TrimSpace(f.Value()))
		}
	}
	c.Subject = decodeHeader(h.Get("Subject"))
	parts := 0
	c.walk(h, body, 0, &parts)
	c.Text = c.text.String()
	return c.Content
}

func (c *extraction) problem(format string, args ...any) {
	if len(c.Problems) < 20 {
		c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
	}
}

func (c *extraction) walk(h textproto.MIMEHeader, body []byte, depth int, parts *int) {
	if *parts++; *parts > maxParts || depth > maxDepth {
		return
	}
	ctype := h.Get("Content-Type")
	if ctype == "" {
		ctype = "text/plain; charset=us-ascii" // RFC 2045 §5.2
	}
	media, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		// RFC 2045 §5.2 says an unreadable Content-Type is text/plain,
		// but clients read what they can (a duplicate boundary, a stray
		// ";"), and phishing counts on that: so do we.
		c.problem("Content-Type %q: %v", clip(ctype), err)
		media, params = parseMediaType(ctype)
	}
	switch {
	case strings.HasPrefix(media, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			c.problem("%s without a boundary", media)
			return
		}
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		var data bytes.Buffer // reused: what walk keeps of a part is copied
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				if err != io.EOF {
					c.problem("%s: %v", media, err)
				}
				return
			}
			data.Reset()
			if _, err := data.ReadFrom(io.LimitReader(p, maxPartBytes)); err != nil {
				// A last part without its closing boundary: clients show
				// what there is, and so the links in it count.
				c.problem("part: %v", err)
				c.walk(p.Header, data.Bytes(), depth+1, parts)
				return
			}
			c.walk(p.Header, data.Bytes(), depth+1, parts)
		}
	case media == "message/rfc822":
		r := bytes.NewReader(body)
		br := bufio.NewReader(r)
		inner, err := textproto.NewReader(br).ReadMIMEHeader()
		if err != nil && len(inner) == 0 {
			c.problem("message/rfc822: %v", err)
			return
		}
		// The inner body is what the header reader did not consume.
		c.walk(inner, body[len(body)-r.Len()-br.Buffered():], depth+1, parts)
	default:
		kind := textKind(media, h, params)
		if kind == "" {
			return
		}
		// Of text, no more than Text holds is read (textScan is less),
		// in a charset of two octets a character (UTF-16) too.
		limit := 2 * maxText
		if kind == "html" {
			limit = maxDecoded
		}
		text, err := decodePart(body, h.Get("Content-Transfer-Encoding"), params["charset"], limit)
		if err != nil {
			c.problem("%s: %v", media, err)
		}
		if kind == "html" {
			c.html(text)
		} else {
			c.plain(text)
		}
	}
}

// textKind says how a leaf part is read: "html", "plain", or "" for not
// at all. Inline text of any subtype is read (text/enriched, AMP's
// text/x-amp-html); of attachments, those a browser or a calendar opens
// with their links live: HTML and SVG files whatever their media type
// ("open the attached invoice"), and calendar invitations.
func textKind(media string, h textproto.MIMEHeader, params map[string]string) string {
	attachment := strings.HasPrefix(strings.ToLower(h.Get("Content-Disposition")), "attachment")
	switch {
	case media == "text/html", media == "text/x-amp-html", media == "application/xhtml+xml", htmlAttachment(h, params):
		return "html"
	case media == "text/calendar":
		return "plain"
	case strings.HasPrefix(media, "text/") && !attachment:
		return "plain"
	}
	return ""
}

// htmlAttachment reports a part whose file name says HTML (or SVG, which
// carries links and scripts the same way), whatever its media type.
func htmlAttachment(h textproto.MIMEHeader, params map[string]string) bool {
	name := params["name"]
	if cd := h.Get("Content-Disposition"); cd != "" {
		if _, p := parseMediaType(cd); p["filename"] != "" {
			name = p["filename"]
		}
	}
	if name == "" {
		return false
	}
	name = strings.ToLower(strings.TrimSpace(decodeHeader(name)))
	for _, ext := range []string{".html", ".htm", ".shtml", ".xhtml", ".svg"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// parseMediaType reads a Content-Type as a lenient client does: the
// media type before the first ";", then each name=value, the first of a
// name kept, quotes or not. A media type that is not type/subtype is
// text/plain (RFC 2045 §5.2).
func parseMediaType(v string) (string, map[string]string) {
	if media, params, err := mime.ParseMediaType(v); err == nil {
		return media, params
	}
	params := map[string]string{}
	parts := strings.SplitN(v, ";", 32)
	media := strings.ToLower(strings.TrimSpace(parts[0]))
	if f := strings.Fields(media); len(f) > 0 {
		media = f[0] // "TEXT/PLAIN charset=US-ASCII"
	}
	if t, sub, ok := strings.Cut(media, "/"); !ok || t == "" || sub == "" || strings.ContainsAny(media, " \t\"=") {
		media = "text/plain"
	}
	if len(parts) == 1 {
		// No ";" before the parameters: "text/plain charset=us-ascii".
		if _, rest, ok := strings.Cut(strings.TrimSpace(v), " "); ok {
			parts = append(parts, rest)
		}
	}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' {
			if end := strings.IndexByte(val[1:], '"'); end >= 0 {
				val = val[1 : 1+end]
			} else {
				val = val[1:]
			}
		}
		if _, dup := params[k]; !dup && k != "" {
			params[k] = val
		}
	}
	return media, params
}

// decodePart undoes the transfer encoding and converts to UTF-8, at
// most limit octets of it (what extraction reads, maxDecoded at most). A
// broken encoding is decoded as far as a client would show it (a stray
// "=", base64 padded in the middle): the error says what was wrong, and
// the text is what could be read. On a charset it cannot read it returns
// the bytes as they are, with the error. Text in 7bit, 8bit or binary
// and in ASCII or UTF-8, most mail, comes back as a slice of body, not a
// copy.
func decodePart(body []byte, cte, charset string, limit int) ([]byte, error) {
	raw := body[:min(len(body), limit)]
	var cteErr error
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		raw, cteErr = decodeQP(body, limit)
	case "base64":
		raw, cteErr = decodeBase64(body, limit)
	}
	text, err := toUTF8(raw, charset)
	if cteErr != nil {
		return text, fmt.Errorf("transfer encoding %s: %w", cte, cteErr)
	}
	return text, err
}

// toUTF8 converts text in charset to UTF-8; on a charset it cannot read
// it returns raw as it is, with the error.
func toUTF8(raw []byte, charset string) ([]byte, error) {
	charset = strings.ToLower(strings.TrimSpace(charset))
	if charset == "" || charset == "us-ascii" || charset == "utf-8" {
		return raw, nil
	}
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return raw, fmt.Errorf("charset %q: %w", charset, err)
	}
	out, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return raw, fmt.Errorf("charset %q: %w", charset, err)
	}
	return out, nil
}

// errBadEscape reports quoted-printable "=" not followed by two hex
// digits or a line break.
var errBadEscape = errors.New("\"=\" not followed by two hex digits, kept as written")

// decodeQP decodes quoted-printable leniently, as RFC 2045 §6.7 note (1)
// asks of a robust decoder: an "=" that starts no valid escape is kept
// as it is, and decoding goes on. At most limit octets come out.
func decodeQP(body []byte, limit int) ([]byte, error) {
	out := make([]byte, 0, min(len(body), limit))
	var err error
	for i := 0; i < len(body) && len(out) < limit; i++ {
		c := body[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		rest := body[i+1:]
		// Soft line break, with the white space a sender may leave
		// before it.
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		if j < len(rest) && (rest[j] == '\n' || rest[j] == '\r') {
			if rest[j] == '\r' && j+1 < len(rest) && rest[j+1] == '\n' {
				j++
			}
			i += j + 1
			continue
		}
		if j == len(rest) {
			break // "=" at the very end: a soft break before nothing
		}
		if len(rest) >= 2 && isHex(rest[0]) && isHex(rest[1]) {
			out = append(out, unhex(rest[0])<<4|unhex(rest[1]))
			i += 2
			continue
		}
		out = append(out, '=')
		err = errBadEscape
	}
	return out, err
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// decodeBase64 decodes base64 leniently: bytes outside the alphabet are
// dropped (RFC 2045 §6.8), and padding in the middle, where two encoded
// pieces were joined, starts a new piece instead of ending the text. At
// most limit octets come out.
func decodeBase64(body []byte, limit int) ([]byte, error) {
	// What encodes limit octets, and a little for the "=" of joints:
	// the alphabet's octets past it are not read.
	clean := make([]byte, 0, min(len(body), base64.StdEncoding.EncodedLen(limit)+scanSlack))
	for _, c := range body {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
			if len(clean) == cap(clean) {
				break
			}
			clean = append(clean, c)
		}
	}
	out := make([]byte, 0, min(base64.RawStdEncoding.DecodedLen(len(clean)), limit))
	var err error
	for len(clean) > 0 && len(out) < limit {
		piece := clean
		if eq := bytes.IndexByte(clean, '='); eq >= 0 {
			piece = clean[:eq]
			clean = bytes.TrimLeft(clean[eq:], "=")
		} else {
			clean = nil
		}
		piece = piece[:min(len(piece), base64.RawStdEncoding.EncodedLen(limit-len(out)))]
		if len(piece)%4 == 1 {
			piece = piece[:len(piece)-1] // a lone sextet encodes no byte
			err = errors.New("base64 cut in the middle of a byte")
		}
		need := base64.RawStdEncoding.DecodedLen(len(piece))
		n := len(out)
		out = slices.Grow(out, need)[:n+need]
		m, e := base64.RawStdEncoding.Decode(out[n:], piece)
		out = out[:n+m]
		if e != nil {
			return out, e
		}
	}
	return out, err
}

// urlPattern is what a URL written out in text is. The host may hold
// non-ASCII letters (IDN look-alikes) but stops at Japanese text, which
// often follows a URL without a space; the rest is printable ASCII.
// nextURL matches it by hand (the tests hold it to the pattern): the
// pattern took most of the time of a short message's extraction.
var urlPattern = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s/?#<>"'\p{Han}\p{Hiragana}\p{Katakana}\x{3000}-\x{303F}\x{FF00}-\x{FFEF}]+[!-~]*`)

// nextURL returns where the first match of urlPattern in text at or
// after from starts and ends; start is -1 when there is none.
func nextURL(text []byte, from int) (start, end int) {
	for i := from; i < len(text); i++ {
		c := text[i] | 0x20
		if c != 'h' && c != 'w' || i > 0 && isWordByte(text[i-1]) {
			continue // \b: the URL starts a word
		}
		rest := text[i:]
		n := 0 // the scheme's or "www."'s length
		if c == 'w' {
			if len(rest) >= 4 && rest[1]|0x20 == 'w' && rest[2]|0x20 == 'w' && rest[3] == '.' {
				n = 4
			}
		} else if len(rest) >= 7 && rest[1]|0x20 == 't' && rest[2]|0x20 == 't' && rest[3]|0x20 == 'p' {
			n = 4
			switch {
			case rest[4]|0x20 == 's':
				n++
			case bytes.HasPrefix(rest[4:], []byte("\u017f")):
				n += len("\u017f") // the long s: (?i) folds it to s
			}
			if len(rest) >= n+3 && rest[n] == ':' && rest[n+1] == '/' && rest[n+2] == '/' {
				n += 3
			} else {
				n = 0
			}
		}
		if n == 0 {
			continue
		}
		// The host: one character or more outside the pattern's class.
		j := i + n
		for j < len(text) {
			r, size := utf8.DecodeRune(text[j:])
			if urlStop(r) {
				break
			}
			j += size
		}
		if j == i+n {
			continue
		}
		// The rest: printable ASCII, and what (?i) folds into it: the
		// long s and the Kelvin sign.
		for j < len(text) {
			switch rest := text[j:]; {
			case rest[0] >= '!' && rest[0] <= '~':
				j++
			case bytes.HasPrefix(rest, []byte("\u017f")):
				j += len("\u017f")
			case bytes.HasPrefix(rest, []byte("\u212a")):
				j += len("\u212a")
			default:
				return i, j
			}
		}
		return i, j
	}
	return -1, -1
}

// isWordByte is \b's word character: ASCII letters, digits and "_".
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// urlStop reports a character urlPattern's host does not hold: \s
// (ASCII white space), /?#<>"' and Japanese text and punctuation.
func urlStop(r rune) bool {
	if r < utf8.RuneSelf {
		switch r {
		case '\t', '\n', '\f', '\r', ' ', '/', '?', '#', '<', '>', '"', '\'':
			return true
		}
		return false
	}
	return r >= 0x3000 && r <= 0x303f || r >= 0xff00 && r <= 0xffef ||
		unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana)
}

// plain collects the text and the links of a text/plain part.
func (c *extraction) plain(b []byte) {
	// Room for the part and its newline at once: the newline alone
	// made the builder copy the whole text again.
	if room := maxText - c.text.Len(); room > 0 {
		c.text.Grow(min(len(b)+1, room))
	}
	c.addText(b)
	c.addText([]byte{'\n'})
	b = b[:scanCut(b, textScan, "\n ")]
	// The pattern runs only on lines that can hold a URL: over a whole
	// 1 MB body it took 50 ms, the milter's largest cost by far. The hints
	// are searched for in the whole text, not line by line: most text
	// has none, and one search over it costs less than a call per line.
	scheme := -1 // the next "://" at or after pos, searched for again once passed
	for pos := 0; pos < len(b) && len(c.Links) < maxLinks; {
		if scheme < pos {
			if scheme = bytes.Index(b[pos:], []byte("://")); scheme >= 0 {
				scheme += pos
			} else {
				scheme = len(b)
			}
		}
		at := scheme
		if w := wwwDot(b[pos:scheme]); w >= 0 {
			at = pos + w
		}
		if at == len(b) {
			return
		}
		start := bytes.LastIndexByte(b[:at], '\n') + 1
		end := len(b)
		if nl := bytes.IndexByte(b[at:], '\n'); nl >= 0 {
			end = at + nl
		}
		c.findURLs(b[start:end])
		pos = end + 1
	}
}

// findURLs adds the URLs written out in text.
func (c *extraction) findURLs(text []byte) {
	for i := 0; len(c.Links) < maxLinks; {
		start, end := nextURL(text, i)
		if start < 0 {
			return
		}
		c.addLink(Link{Href: trimURL(string(text[start:end]))})
		i = end
	}
}

// addText appends to Text while it is shorter than maxText.
func (c *extraction) addText(b []byte) {
	if room := maxText - c.text.Len(); room > 0 {
		c.text.Write(b[:min(len(b), room)])
	}
}

// wwwDot returns the index of the first "www." (in any case) in text, or
// -1. With "://" it is all urlPattern can start with.
func wwwDot(text []byte) int {
	for i := 0; i < len(text); i++ {
		dot := bytes.IndexByte(text[i:], '.')
		if dot < 0 {
			break
		}
		i += dot
		if i >= 3 && text[i-3]|0x20 == 'w' && text[i-2]|0x20 == 'w' && text[i-1]|0x20 == 'w' {
			return i - 3
		}
	}
	return -1
}

// trimURL drops punctuation that ends the sentence, not the URL.
func trimURL(u string) string {
	u = strings.TrimRight(u, ".,;:!?'\"")
	for strings.HasSuffix(u, ")") && strings.Count(u, "(") < strings.Count(u, ")") {
		u = u[:len(u)-1]
	}
	for _, open := range []string{">", "]"} {
		u = strings.TrimSuffix(u, open)
	}
	return u
}

func (c *extraction) addLink(l Link) {
	if len(c.Links) < maxLinks {
		c.Links = append(c.Links, l)
	}
}

// html collects the text and the links (href with anchor text) of an
// HTML part: of its first rawScan octets, and written-out URLs of its
// first textScan octets of text.
func (c *extraction) html(b []byte) {
	b = b[:scanCut(b, rawScan, ">\n")]
	text := 0 // octets of text read so far, searched for URLs up to textScan
	z := html.NewTokenizer(bytes.NewReader(b))
	var anchor *Link
	var anchorText strings.Builder
	skip := 0 // inside <script> or <style>
	// Text a client does not show (display:none, font-size:0, hidden) is
	// not read: phishing pads brand names and hides filler words with it.
	// hidden is the element that hid it, depth how many of that name are
	// open inside it.
	hidden, depth := "", 0
	var base *url.URL // <base href>, against which relative links resolve
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			c.addText([]byte{'\n'})
			return
		case html.StartTagToken, html.SelfClosingTagToken:
			// The tokenizer copies a tag's name and each attribute's key
			// and value (TagName, TagAttr): read the name from the raw
			// tag, and the attributes only when one read below may be
			// there.
			raw := z.Raw()
			name, ok := rawTagName(raw[1:])
			hasAttr := attrHint(raw)
			if !ok || c.copiedTags {
				name, hasAttr = z.TagName()
			}
			var href string
			hide := false
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				switch string(k) {
				case "href":
					href = strings.TrimSpace(string(v))
				case "style":
					hide = hide || hiddenStyle(v)
				case "hidden":
					hide = true
				}
			}
			switch {
			case hidden != "":
				if string(name) == hidden && tt == html.StartTagToken {
					depth++
				}
			case hide && tt == html.StartTagToken && !voidElements[string(name)]:
				hidden, depth = string(name), 1
			}
			switch string(name) {
			case "script", "style":
				skip++
			case "base":
				if u, err := url.Parse(href); err == nil && (u.Scheme == "http" || u.Scheme == "https") && base == nil {
					base = u
				}
			case "a":
				if href != "" {
					anchor = &Link{Href: resolveHref(base, href)}
					anchorText.Reset()
				}
			case "br", "p", "div", "tr", "li":
				c.addText([]byte{'\n'})
			}
		case html.EndTagToken:
			name, ok := rawTagName(z.Raw()[2:])
			if !ok || c.copiedTags {
				name, _ = z.TagName()
			}
			if hidden != "" && string(name) == hidden {
				if depth--; depth == 0 {
					hidden = ""
				}
			}
			switch string(name) {
			case "script", "style":
				skip = max(skip-1, 0)
			case "a":
				if anchor != nil {
					anchor.Text = anchorText.String()
					if !plainHeader(anchor.Text) {
						anchor.Text = strings.Join(strings.Fields(anchor.Text), " ")
					}
					c.addLink(*anchor)
					anchor = nil
				}
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			if hidden != "" {
				c.Hidden += len(z.Raw())
				continue
			}
			t := z.Text()
			c.addText(t)
			if anchor != nil {
				anchorText.Write(t)
			} else if text < textScan {
				c.findURLs(t[:scanCut(t, textScan-text, "\n ")])
			}
			text += len(t)
		}
	}
}

// rawTagName returns the name at the start of a tag's raw text (after
// "<" or "</") as the tokenizer's TagName does, when it is the usual
// lower-case letters and digits; ok is false for any other, which
// TagName must read (it lower-cases, and replaces NUL).
func rawTagName(raw []byte) (name []byte, ok bool) {
	for i, c := range raw {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == ' ', c == '\n', c == '\r', c == '\t', c == '\f', c == '/', c == '>':
			return raw[:i], i > 0
		default:
			return nil, false
		}
	}
	return nil, false
}

// attrHint reports whether a raw tag may hold an attribute html reads:
// href, style, hidden (in any case).
func attrHint(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		switch raw[i] | 0x20 {
		case 'h':
			if hasPrefixFold(raw[i:], "href") || hasPrefixFold(raw[i:], "hidden") {
				return true
			}
		case 's':
			if hasPrefixFold(raw[i:], "style") {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold is bytes.HasPrefix for a lower-case ASCII prefix, in
// any case.
func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if b[i]|0x20 != prefix[i] {
			return false
		}
	}
	return true
}

// voidElements have no end tag, so they cannot hide what follows them.
var voidElements = map[string]bool{
	"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
	"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true,
}

// hiddenStyle reports an inline style that hides an element's text:
// display:none, visibility:hidden, font-size:0, opacity:0.
func hiddenStyle(v []byte) bool {
	if len(v) > 1024 {
		v = v[:1024]
	}
	// ASCII, as most styles are: hiddenStyleOf's reading without its
	// copies (Fields, Join, ToLower, Split).
	var buf [1024]byte
	s := buf[:0]
	for _, c := range v {
		switch {
		case c >= utf8.RuneSelf:
			return hiddenStyleOf(v)
		case c == ' ', c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		s = append(s, c)
	}
	for rest := s; len(rest) > 0; {
		var decl []byte
		decl, rest, _ = bytes.Cut(rest, []byte(";"))
		prop, val, _ := bytes.Cut(decl, []byte(":"))
		val = bytes.TrimSuffix(val, []byte("!important"))
		switch string(prop) {
		case "display":
			if string(val) == "none" {
				return true
			}
		case "visibility":
			if string(val) == "hidden" {
				return true
			}
		case "font-size", "opacity", "max-height":
			if zeroLength(val) && (string(prop) != "max-height" || bytes.Contains(s, []byte("overflow:hidden"))) {
				return true
			}
		}
	}
	return false
}

// hiddenStyleOf is hiddenStyle for any text.
func hiddenStyleOf(v []byte) bool {
	s := strings.ToLower(strings.Join(strings.Fields(string(v)), ""))
	for _, decl := range strings.Split(s, ";") {
		prop, val, _ := strings.Cut(decl, ":")
		val = strings.TrimSuffix(val, "!important")
		switch prop {
		case "display":
			if val == "none" {
				return true
			}
		case "visibility":
			if val == "hidden" {
				return true
			}
		case "font-size", "opacity", "max-height":
			if zeroLength(val) && (prop != "max-height" || strings.Contains(s, "overflow:hidden")) {
				return true
			}
		}
	}
	return false
}

// zeroLength reports a CSS length or number that is zero: 0, 0px, 0.0em.
func zeroLength[T string | []byte](v T) bool {
	for len(v) > 0 && (v[len(v)-1] >= 'a' && v[len(v)-1] <= 'z' || v[len(v)-1] == '%') {
		v = v[:len(v)-1]
	}
	if len(v) == 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] != '0' && v[i] != '.' {
			return false
		}
	}
	return true
}

// resolveHref resolves a relative link against <base href>, as a
// browser would; links that are absolute or have no base stay as written.
func resolveHref(base *url.URL, href string) string {
	if base == nil {
		return href
	}
	u, err := url.Parse(href)
	if err != nil || u.Scheme != "" {
		return href
	}
	return base.ResolveReference(u).String()
}
