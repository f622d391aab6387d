package phish

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"regexp"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/text/encoding/htmlindex"

	"mailwall/internal/dkim"
)

// Limits on what content extraction reads, so a hostile message costs
// bounded work.
const (
	maxDepth     = 8
	maxParts     = 100
	maxPartBytes = 2 << 20
	maxLinks     = 500
)

// Link is a hyperlink: where it goes and what it shows.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"` // the anchor text of an HTML link
}

// Content is the readable text of a message and its links.
type Content struct {
	Subject string `json:"subject,omitempty"`
	Text    string `json:"-"`
	Links   []Link `json:"links,omitempty"`
	// Problems are parts that could not be decoded; the rest is read.
	// A Report carries them in its own Problems.
	Problems []string `json:"-"`
}

// wordDecoder decodes RFC 2047 encoded words in any charset the
// WHATWG encoding index knows (ISO-2022-JP, Shift_JIS, EUC-JP, ...).
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(r), nil
}

// decodeHeader decodes encoded words in a header value; undecodable
// words stay as written.
func decodeHeader(v string) string {
	v = strings.Join(strings.Fields(v), " ")
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// Extract reads the text and HTML parts of a message: MIME structure,
// transfer encodings and charsets decoded.
func Extract(fields []dkim.Field, body []byte) Content {
	var c Content
	h := textproto.MIMEHeader{}
	for _, f := range fields {
		h.Add(textproto.CanonicalMIMEHeaderKey(f.Name), strings.TrimSpace(f.Value()))
	}
	c.Subject = decodeHeader(h.Get("Subject"))
	parts := 0
	c.walk(h, body, 0, &parts)
	return c
}

func (c *Content) problem(format string, args ...any) {
	if len(c.Problems) < 20 {
		c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
	}
}

func (c *Content) walk(h textproto.MIMEHeader, body []byte, depth int, parts *int) {
	if *parts++; *parts > maxParts || depth > maxDepth {
		return
	}
	ctype := h.Get("Content-Type")
	if ctype == "" {
		ctype = "text/plain; charset=us-ascii" // RFC 2045 §5.2
	}
	media, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		// RFC 2045 §5.2: an unreadable Content-Type is text/plain.
		c.problem("Content-Type %q: %v", ctype, err)
		media, params = "text/plain", map[string]string{}
	}
	switch {
	case strings.HasPrefix(media, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			c.problem("%s without a boundary", media)
			return
		}
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				if err != io.EOF {
					c.problem("%s: %v", media, err)
				}
				return
			}
			data, err := io.ReadAll(io.LimitReader(p, maxPartBytes))
			if err != nil {
				c.problem("part: %v", err)
				return
			}
			c.walk(p.Header, data, depth+1, parts)
		}
	case media == "message/rfc822":
		br := bufio.NewReader(bytes.NewReader(body))
		inner, err := textproto.NewReader(br).ReadMIMEHeader()
		if err != nil && len(inner) == 0 {
			c.problem("message/rfc822: %v", err)
			return
		}
		rest, _ := io.ReadAll(br)
		c.walk(inner, rest, depth+1, parts)
	case media == "text/plain" || media == "text/html":
		if strings.HasPrefix(strings.ToLower(h.Get("Content-Disposition")), "attachment") {
			return
		}
		text, err := decodePart(body, h.Get("Content-Transfer-Encoding"), params["charset"])
		if err != nil {
			c.problem("%s: %v", media, err)
		}
		if media == "text/html" {
			c.html(text)
		} else {
			c.text(text)
		}
	}
}

// decodePart undoes the transfer encoding and converts to UTF-8. On a
// charset it cannot read it returns the bytes as they are, with the error.
func decodePart(body []byte, cte, charset string) (string, error) {
	var r io.Reader = bytes.NewReader(body)
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &base64Cleaner{r: r})
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxPartBytes))
	if err != nil {
		return string(raw), fmt.Errorf("transfer encoding %s: %w", cte, err)
	}
	charset = strings.ToLower(strings.TrimSpace(charset))
	if charset == "" || charset == "us-ascii" || charset == "utf-8" {
		return string(raw), nil
	}
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return string(raw), fmt.Errorf("charset %q: %w", charset, err)
	}
	out, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return string(raw), fmt.Errorf("charset %q: %w", charset, err)
	}
	return string(out), nil
}

// base64Cleaner drops line breaks and other bytes outside the base64
// alphabet, as RFC 2045 §6.8 tells decoders to.
type base64Cleaner struct{ r io.Reader }

func (b *base64Cleaner) Read(p []byte) (int, error) {
	for {
		n, err := b.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// urlPattern finds URLs in text. The host may hold non-ASCII letters
// (IDN look-alikes) but stops at Japanese text, which often follows a URL
// without a space; the rest is printable ASCII.
var urlPattern = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s/?#<>"'\p{Han}\p{Hiragana}\p{Katakana}\x{3000}-\x{303F}\x{FF00}-\x{FFEF}]+[!-~]*`)

func (c *Content) text(s string) {
	c.Text += s + "\n"
	// The pattern runs only on lines that can hold a URL: over a whole
	// 1 MB body it took 50 ms, the milter's largest cost by far.
	for rest := s; rest != "" && len(c.Links) < maxLinks; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if !mayHoldURL(line) {
			continue
		}
		for _, u := range urlPattern.FindAllString(line, maxLinks-len(c.Links)) {
			c.addLink(Link{Href: trimURL(u)})
		}
	}
}

// mayHoldURL is false for a line urlPattern cannot match: it has neither
// "://" nor "www." in any case.
func mayHoldURL(line string) bool {
	if strings.Contains(line, "://") {
		return true
	}
	for i := 0; ; i++ {
		dot := strings.IndexByte(line[i:], '.')
		if dot < 0 {
			return false
		}
		i += dot
		if i >= 3 && line[i-3]|0x20 == 'w' && line[i-2]|0x20 == 'w' && line[i-1]|0x20 == 'w' {
			return true
		}
	}
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

func (c *Content) addLink(l Link) {
	if len(c.Links) < maxLinks {
		c.Links = append(c.Links, l)
	}
}

// html collects the text and the links (href with anchor text) of an
// HTML part.
func (c *Content) html(s string) {
	z := html.NewTokenizer(strings.NewReader(s))
	var text strings.Builder
	var anchor *Link
	var anchorText strings.Builder
	skip := 0 // inside <script> or <style>
	for {
		switch z.Next() {
		case html.ErrorToken:
			c.Text += text.String() + "\n"
			return
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "script", "style":
				skip++
			case "a":
				href := ""
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					if string(k) == "href" {
						href = strings.TrimSpace(string(v))
					}
				}
				if href != "" {
					anchor = &Link{Href: href}
					anchorText.Reset()
				}
			case "br", "p", "div", "tr", "li":
				text.WriteByte('\n')
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style":
				skip = max(skip-1, 0)
			case "a":
				if anchor != nil {
					anchor.Text = strings.Join(strings.Fields(anchorText.String()), " ")
					c.addLink(*anchor)
					anchor = nil
				}
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := string(z.Text())
			text.WriteString(t)
			if anchor != nil {
				anchorText.WriteString(t)
			} else {
				for _, u := range urlPattern.FindAllString(t, maxLinks) {
					c.addLink(Link{Href: trimURL(u)})
				}
			}
		}
	}
}
