package classify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"net/textproto"
	"net/url"
	"path"
	"strconv"
	"strings"

	"golang.org/x/text/encoding/htmlindex"

	"mailwall/internal/dkim"
	"mailwall/internal/phish"
)

// MaxFeatures bounds the features of one message: what is past it (the
// end of a long text) is not read.
const MaxFeatures = 4096

// Limits on the MIME structure walk (the text itself is decoded by
// phish.Extract, which has its own).
const (
	maxMIMEParts = 50
	maxMIMEDepth = 5
	maxLinks     = 100
	maxTreeBytes = 120
)

// Message is what the classifier reads of a message.
type Message struct {
	Fields []dkim.Field
	Body   []byte
	// Recipients are the envelope recipients. Their addresses, domains
	// and local parts in the text become the features "rcpt-address",
	// "rcpt-domain" and "rcpt-local", not words: "Dear john, your
	// example.com mailbox is full" reads the same whoever john is.
	Recipients []string
	// Extra names outside signals to learn beside the content, e.g.
	// "dmarc=pass", "rule=brand_from_domain".
	Extra []string
	// Content is the decoded text and links when the caller has them
	// already (the phishing rules decode them too); nil: Extract
	// decodes the message.
	Content *phish.Content
}

// ParseMessage splits a raw message into header fields and body. It
// is lenient where dkim.ReadHeader is strict (a line without a colon is
// skipped, not an error), since junk is often malformed.
func ParseMessage(raw []byte) ([]dkim.Field, []byte) {
	r := bytes.NewReader(raw)
	br := bufio.NewReader(r)
	if fields, err := dkim.ReadHeader(br); err == nil {
		// The body is what the header reader did not consume.
		return fields, raw[len(raw)-r.Len()-br.Buffered():]
	}
	var fields []dkim.Field
	rest := raw
	for len(rest) > 0 && len(fields) < 1000 {
		line := rest
		n := bytes.IndexByte(rest, '\n')
		if n >= 0 {
			line, rest = rest[:n+1], rest[n+1:]
		} else {
			rest = nil
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			return fields, rest
		}
		if (content[0] == ' ' || content[0] == '\t') && len(fields) > 0 {
			f := &fields[len(fields)-1]
			f.Raw += string(content) + "\r\n"
			continue
		}
		if colon := bytes.IndexByte(content, ':'); colon > 0 {
			fields = append(fields, dkim.Field{Name: string(bytes.TrimRight(content[:colon], " \t")), Raw: string(content) + "\r\n"})
		}
	}
	return fields, rest
}

// Vector is a message's features: unique 64-bit hashes, at most
// MaxFeatures, with their names for explanations.
type Vector struct {
	Hashes []uint64
	// names holds every name, one after the other; ends[i] is where
	// name i ends in it. A word pair's name is written as a pairName:
	// a message has three pairs a word, and few are ever named.
	names []byte
	ends  []uint32
}

// pairName is how names holds a word pair's name: pairMark, the
// distance less one, and the indexes of its words' features (whose
// names are "kind:word"), 16 bits each, low octet first. No other name
// starts with pairMark, which is not UTF-8.
const (
	pairMark    = 0xff
	pairNameLen = 6
)

// name is name i as names holds it.
func (v *Vector) name(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = v.ends[i-1]
	}
	return v.names[start:v.ends[i]]
}

// Name returns the name of feature i, "kind:text".
func (v *Vector) Name(i int) string {
	b := v.name(i)
	if len(b) != pairNameLen || b[0] != pairMark {
		return string(b)
	}
	kind, first, _ := bytes.Cut(v.name(int(b[2])|int(b[3])<<8), []byte{':'})
	_, second, _ := bytes.Cut(v.name(int(b[4])|int(b[5])<<8), []byte{':'})
	return string(kind) + " pair:" + string(first) + pairGap[b[1]] + string(second)
}

// Extractor turns messages into Vectors. It reuses its buffers, so one
// Extractor serves one goroutine, and the Vector it returns is valid
// until its next Extract.
type Extractor struct {
	v Vector
	// seen is an open-addressing set of the hashes in v: 1 + a hash's
	// index in v.Hashes, 0 for an empty slot. Twice MaxFeatures slots
	// of 16 bits are 16 KiB, which stay in a core's first-level cache.
	seen  []uint16
	buf   []byte // a feature name being built
	order []byte // the header's field order
	hdr   textproto.MIMEHeader
	tok   tokenizer
	rcpt  recipients
	// contrib holds a classification's contributions (Classify).
	contrib []float64
	// logs remembers the logarithms of a Bayes model's clues from one
	// classification to the next.
	logs logMemo
	// suffixes remembers the last registered domains looked up.
	suffixes suffixMemo
	// kept is where appendKept sorts a vector's top bits.
	kept keptScratch
}

// contribs returns n zeros in x's buffer.
func (x *Extractor) contribs(n int) []float64 {
	if cap(x.contrib) < n {
		x.contrib = make([]float64, n)
	}
	x.contrib = x.contrib[:n]
	clear(x.contrib)
	return x.contrib
}

// NewExtractor returns an Extractor.
func NewExtractor() *Extractor {
	return &Extractor{seen: make([]uint16, 2*MaxFeatures), hdr: textproto.MIMEHeader{}}
}

// forget empties the set of hashes seen: 16 KiB cleared costs less
// than finding the slots of a few hundred hashes.
func (x *Extractor) forget() { clear(x.seen) }

// full reports whether the vector has MaxFeatures.
func (x *Extractor) full() bool { return len(x.v.Hashes) >= MaxFeatures }

// add adds the feature kind:text.
func (x *Extractor) add(kind string, text []byte) {
	if x.insert(hashFeature(kind, text)) {
		x.v.names = append(x.v.names, kind...)
		x.v.names = append(x.v.names, ':')
		x.v.names = append(x.v.names, text...)
		x.v.ends = append(x.v.ends, uint32(len(x.v.names)))
	}
}

// insert adds the hash h to the vector and reports whether it was new
// (and there was room): the caller then appends its name to x.v.names
// and its end to x.v.ends.
func (x *Extractor) insert(h uint64) bool {
	_, added := x.insertIndex(h)
	return added
}

// insertIndex is insert that also returns h's index in x.v.Hashes, -1
// when it is not there (no room).
func (x *Extractor) insertIndex(h uint64) (int, bool) {
	mask := uint64(len(x.seen) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		j := int(x.seen[i])
		if j == 0 {
			if x.full() {
				return -1, false
			}
			x.v.Hashes = append(x.v.Hashes, h)
			x.seen[i] = uint16(len(x.v.Hashes))
			return len(x.v.Hashes) - 1, true
		}
		if x.v.Hashes[j-1] == h {
			return j - 1, false
		}
	}
}

// addString adds kind:text.
func (x *Extractor) addString(kind, text string) {
	x.buf = append(x.buf[:0], text...)
	x.add(kind, x.buf)
}

// hashFeature is FNV-1a over kind, ':' and text, then mixed so that the
// high and low bits both vary.
// The tokenizer's running hash (tokenizer.kh, then each octet) is the
// same, through fnv.
func hashFeature(kind string, text []byte) uint64 {
	h := fnv(fnv(fnvOffset, kind), ":")
	for _, c := range text {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return mix(h)
}

// mix is the finalizer of MurmurHash3; never 0, which marks an empty
// slot.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	if h == 0 {
		h = 1
	}
	return h
}

// Extract returns msg's features.
func (x *Extractor) Extract(msg *Message) *Vector {
	x.forget()
	x.v.Hashes = x.v.Hashes[:0]
	x.v.names = x.v.names[:0]
	x.v.ends = x.v.ends[:0]
	x.rcpt.set(msg.Recipients, &x.suffixes)

	for _, e := range msg.Extra {
		x.addString("extra", e)
	}
	// The fields read by name, each once: their values in h (kept
	// between messages, emptied), their place in the header's order.
	h := x.hdr
	for k, v := range h {
		h[k] = v[:0]
	}
	x.order = x.order[:0]
	var seenOrder uint64 // bit i: headerNames[i] seen
	prev := ""
	for _, f := range msg.Fields {
		fi, ok := lookupField(f.Name)
		if !ok {
			continue
		}
		if fi.canon != "" {
			h[fi.canon] = append(h[fi.canon], strings.TrimSpace(f.Value()))
		}
		if fi.order < 0 || seenOrder&(1<<fi.order) != 0 {
			continue
		}
		// The order of the first occurrence of each field of
		// headerNames, as one feature and as consecutive pairs.
		seenOrder |= 1 << fi.order
		name := headerNames[fi.order]
		if prev != "" {
			x.buf = append(append(append(x.buf[:0], prev...), '>'), name...)
			x.add("header-pair", x.buf)
		}
		prev = name
		if len(x.order) > 0 {
			x.order = append(x.order, '>')
		}
		x.order = append(x.order, name...)
	}
	from := x.header(h)
	x.mimeTree(h, msg.Body)
	c := msg.Content
	if c == nil {
		decoded := phish.Extract(msg.Fields, msg.Body)
		c = &decoded
	}
	x.links(c.Links, from)
	x.tok.run(x, "subject", c.Subject)
	x.textShape(c.Text)
	x.tok.run(x, "word", c.Text)
	return &x.v
}

// headerOrder are the fields whose order is a feature: those every
// mailer writes, in the order it chose. Trace and mailing-list fields
// are left out: they say which server and list carried the message, and
// in a corpus, which collection it came from.
var headerNames = []string{
	"from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type",
	"reply-to", "x-mailer", "user-agent", "content-transfer-encoding", "in-reply-to",
	"references", "x-priority", "importance", "organization", "thread-index", "thread-topic",
}

// readFields are the fields Extract reads by name, besides those of
// headerNames: canonical, as they are keyed in the header map.
var readFields = []string{"From", "Date", "Message-Id", "Mime-Version", "To", "Subject", "Reply-To", "In-Reply-To",
	"References", "Organization", "X-Priority", "Importance", "Cc", "X-Mailer", "User-Agent",
	"Content-Type", "Content-Transfer-Encoding", "Content-Disposition"}

// fieldInfo is what Extract does with a field of a name.
type fieldInfo struct {
	canon string // its key in the header map; "": not kept
	order int    // its index in headerNames, -1: not in the order
}

// fieldInfos maps a field name in lower case (ASCII) to its fieldInfo:
// for names of token characters, which all these are, lower case
// names the same field as textproto.CanonicalMIMEHeaderKey does.
var fieldInfos = func() map[string]fieldInfo {
	m := map[string]fieldInfo{}
	for _, n := range readFields {
		m[strings.ToLower(n)] = fieldInfo{canon: n, order: -1}
	}
	for i, n := range headerNames {
		fi, ok := m[n]
		if !ok {
			fi.canon = ""
		}
		fi.order = i
		m[n] = fi
	}
	return m
}()

// fieldsByLen are fieldInfos' names by their length, for lookupField.
var fieldsByLen = func() [][]namedField {
	var t [][]namedField
	for name, fi := range fieldInfos {
		for len(t) <= len(name) {
			t = append(t, nil)
		}
		t[len(name)] = append(t[len(name)], namedField{name, fi})
	}
	return t
}()

type namedField struct {
	lower string
	info  fieldInfo
}

// lookupField is fieldInfos[name in ASCII lower case], without a copy
// of the name or a hash of it: most fields of a header (Received,
// DKIM-Signature, X-...) are none of those and differ in length or
// soon after.
func lookupField(name string) (fieldInfo, bool) {
	if len(name) >= len(fieldsByLen) {
		return fieldInfo{}, false
	}
next:
	for _, f := range fieldsByLen[len(name)] {
		for i := 0; i < len(name); i++ {
			if lowerASCII(name[i]) != f.lower[i] {
				continue next
			}
		}
		return f.info, true
	}
	return fieldInfo{}, false
}

// presence are the header's "no FIELD" and "has FIELD" features.
var presence = []struct {
	field, missing, present string
}{
	{"Date", "no date", ""}, {"Message-Id", "no message-id", ""}, {"Mime-Version", "no mime-version", ""},
	{"To", "no to", ""}, {"Subject", "no subject", ""},
	{"Reply-To", "", "has reply-to"}, {"In-Reply-To", "", "has in-reply-to"}, {"References", "", "has references"},
	{"Organization", "", "has organization"}, {"X-Priority", "", "has x-priority"}, {"Importance", "", "has importance"},
	{"Cc", "", "has cc"},
}

// header adds the header's shape (its fields in h, their order in
// x.order) and returns the From's registered domain ("" when
// unreadable).
func (x *Extractor) header(h textproto.MIMEHeader) string {
	x.add("header-order", x.order)
	for _, p := range presence {
		switch n := len(h[p.field]); {
		case n == 0 && p.missing != "":
			x.addString("header", p.missing)
		case n > 0 && p.present != "":
			x.addString("header", p.present)
		}
	}
	for _, name := range []string{"X-Mailer", "User-Agent"} {
		if m := h.Get(name); m != "" {
			x.addString("mailer", mailerName(m))
		}
	}

	fromDomain := ""
	froms := h["From"]
	switch {
	case len(froms) == 0:
		x.addString("from", "missing")
	case len(froms) > 1:
		x.addString("from", "several fields")
	}
	if len(froms) > 0 {
		fromDomain = x.from(froms[0])
	}
	if rt := h.Get("Reply-To"); rt != "" {
		if a, err := parseAddress(decodeWords(rt)); err != nil {
			x.addString("reply-to", "unparsed")
		} else if d := x.domainOf(a.Address); d != fromDomain {
			x.addString("reply-to", "other domain")
			x.addString("reply-to-domain", d)
		}
	}
	if id := h.Get("Message-Id"); id != "" {
		_, d, ok := strings.Cut(strings.Trim(id, "<> "), "@")
		switch {
		case !ok:
			x.addString("message-id", "no domain")
		case x.registered(d) == fromDomain:
			x.addString("message-id", "from's domain")
		default:
			x.addString("message-id", "other domain")
		}
	}
	if s := h.Get("Subject"); strings.Contains(s, "=?") {
		for _, w := range strings.Fields(s) {
			if cs, _, ok := strings.Cut(strings.TrimPrefix(w, "=?"), "?"); ok && strings.HasPrefix(w, "=?") {
				if cs = strings.ToLower(cs); !genericCharset[cs] {
					x.addString("subject-charset", cs)
				}
				break
			}
		}
	}
	return fromDomain
}

// genericCharset are the charsets that say nothing of a message's
// language, only of its age: UTF-8 is what mailers write now, ASCII and
// Latin-1 what they wrote twenty years ago, and a corpus of old ham and
// new junk would learn "UTF-8 is junk" from them.
var genericCharset = map[string]bool{"utf-8": true, "utf8": true, "us-ascii": true, "ascii": true, "iso-8859-1": true, "windows-1252": true}

// from adds the From field's features and returns its registered domain.
func (x *Extractor) from(v string) string {
	dec := decodeWords(v)
	a, err := parseAddress(dec)
	if err != nil {
		x.addString("from", "unparsed")
		if strings.Count(dec, "@") > 1 {
			x.addString("from", "several @")
		}
		if strings.Contains(dec, ",") {
			x.addString("from", "comma")
		}
		// The last thing that looks like an address is what a mail
		// client shows.
		at := strings.LastIndexByte(dec, '@')
		if at < 0 {
			x.addString("from", "no @")
			return ""
		}
		end := strings.IndexAny(dec[at:], "> \t,;")
		if end < 0 {
			end = len(dec) - at
		}
		a = mail.Address{Address: dec[max(0, strings.LastIndexAny(dec[:at], "< \t,;\"")+1) : at+end]}
	}
	local, domain, _ := strings.Cut(strings.ToLower(a.Address), "@")
	domain = strings.TrimSuffix(domain, ".")
	org, suffix := x.suffixes.lookup(domain)
	// A From in the recipient's own domain is no feature: unauthenticated,
	// it is what impersonation of the recipient's organization looks
	// like; in the corpus it is the collector's own lists, and the model
	// learnt "own domain: ham" from them. The pipeline can name it
	// together with DMARC's result in Message.Extra.
	if !x.rcpt.domain(domain) && !x.rcpt.domain(org) {
		x.addString("from-domain", org)
		if suffix != "" {
			x.addString("from-tld", suffix)
		}
	}
	if strings.ContainsAny(local, "0123456789") {
		x.addString("from", "digits in local part")
	}
	if len(local) > 20 {
		x.addString("from", "long local part")
	}
	name := a.Name
	switch {
	case name == "":
		x.addString("from", "no display name")
	case strings.Contains(name, "@"):
		x.addString("from", "@ in display name")
	}
	if name != "" {
		x.tok.run(x, "from-name", name)
	}
	return org
}

// mailerName is an X-Mailer or User-Agent reduced to its product name:
// its first word, lower-cased, digits as 0.
func mailerName(m string) string {
	w, _, _ := strings.Cut(strings.TrimSpace(m), " ")
	w, _, _ = strings.Cut(w, "/")
	w = strings.ToLower(w)
	if len(w) > 24 {
		w = w[:24]
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '0'
		}
		return r
	}, w)
}

// wordDecoder decodes RFC 2047 encoded words in any charset the WHATWG
// encoding index knows (ISO-2022-JP, Shift_JIS, ...).
var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(r), nil
}}

// decodeWords decodes RFC 2047 encoded words where it can.
func decodeWords(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// mimeTree adds the MIME structure: one feature for the whole tree
// ("mixed(alternative(plain,html),pdf)"), one per part type, transfer
// encoding and charset, and the attachments' types and extensions.
func (x *Extractor) mimeTree(h textproto.MIMEHeader, body []byte) {
	var tree []byte
	parts := 0
	x.mimePart(h, body, 0, &parts, &tree)
	if len(tree) > maxTreeBytes {
		tree = tree[:maxTreeBytes]
	}
	x.add("mime-tree", tree)
}

func (x *Extractor) mimePart(h textproto.MIMEHeader, body []byte, depth int, parts *int, tree *[]byte) {
	if *parts++; *parts > maxMIMEParts || depth > maxMIMEDepth {
		return
	}
	media, params, err := parseMediaType(h.Get("Content-Type"))
	if err != nil {
		if h.Get("Content-Type") != "" {
			x.addString("mime", "bad content-type")
		}
		media = "text/plain"
	}
	_, sub, _ := strings.Cut(media, "/")
	if cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte != "" && cte != "7bit" {
		x.addString("mime-cte", media+" "+cte)
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && !genericCharset[cs] {
		x.addString("mime-charset", cs)
	}
	disp, dparams, _ := parseMediaType(h.Get("Content-Disposition"))
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	if disp == "attachment" || filename != "" {
		x.addString("attachment-type", media)
		if ext := strings.ToLower(path.Ext(decodeWords(filename))); ext != "" && len(ext) <= 8 {
			x.addString("attachment-ext", ext)
			sub = strings.TrimPrefix(ext, ".")
		}
	} else {
		x.addString("mime-part", media)
	}
	*tree = append(*tree, sub...)
	if !strings.HasPrefix(media, "multipart/") {
		return
	}
	boundary := params["boundary"]
	if boundary == "" {
		x.addString("mime", "multipart without boundary")
		return
	}
	*tree = append(*tree, '(')
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				x.addString("mime", "broken multipart")
			}
			break
		}
		if i > 0 {
			*tree = append(*tree, ',')
		}
		var data bytes.Buffer
		if media, _, _ := parseMediaType(p.Header.Get("Content-Type")); strings.HasPrefix(media, "multipart/") {
			data.ReadFrom(io.LimitReader(p, 2<<20))
		}
		x.mimePart(p.Header, data.Bytes(), depth+1, parts, tree)
	}
	*tree = append(*tree, ')')
}

// links adds each link's host, registered domain and public suffix, and
// what is odd about it: an IP address, a port, user info, plain http, a
// host in the recipient's domain.
func (x *Extractor) links(links []phish.Link, fromOrg string) {
	n, other := 0, 0
	for _, l := range links {
		if n == maxLinks {
			break
		}
		href := strings.TrimSpace(l.Href)
		scheme, _, ok := strings.Cut(href, ":")
		scheme = strings.ToLower(scheme)
		raw := href // url.Parse lower-cases the scheme itself
		switch {
		case !ok || (scheme != "http" && scheme != "https"):
			if hasPrefixFold(href, "www.") {
				scheme, raw = "http", "http://"+href
			} else {
				if scheme == "mailto" {
					x.addString("link", "mailto")
				}
				continue
			}
		}
		n++
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			x.addString("link", "unparsed")
			continue
		}
		if scheme == "http" {
			x.addString("link", "http")
		}
		if u.User != nil {
			x.addString("link", "user info")
		}
		if u.Port() != "" {
			x.addString("link", "port")
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if mayBeAddr(host) && isAddr(host) {
			x.addString("link", "ip address")
			other++
			continue
		}
		if strings.HasPrefix(host, "xn--") || strings.Contains(host, ".xn--") {
			x.addString("link", "punycode")
		}
		org, suffix := x.suffixes.lookup(host)
		if x.rcpt.domain(host) || x.rcpt.domain(org) {
			x.addString("link", "recipient's domain")
			continue
		}
		x.addString("host", host)
		x.addString("domain", org)
		if suffix != "" {
			x.addString("tld", suffix)
		}
		if org != fromOrg {
			other++
		}
		if t := strings.ToLower(l.Text); strings.Contains(t, ".") && !strings.Contains(t, " ") {
			th := t
			if tu, err := url.Parse(t); err == nil && tu.Host != "" {
				th = tu.Hostname()
			}
			if tr := x.registered(th); tr != org && strings.Contains(tr, ".") {
				x.addString("link", "text shows another domain")
			}
		}
		if len(u.Path) > 1 {
			x.addString("link", "path")
			x.pathWords(u.EscapedPath())
		}
		if u.RawQuery != "" {
			x.addString("link", "query")
		}
	}
	x.buf = appendBucket(x.buf[:0], n)
	x.add("links", x.buf)
	if fromOrg != "" && n > 0 {
		if other == 0 {
			x.addString("links", "all in from's domain")
		} else if other == n {
			x.addString("links", "none in from's domain")
		}
	}
}

// mayBeAddr is a cheap test before isAddr: only a host of digits and
// dots, or one with a colon, can be an address (a host name need not be
// parsed: the parser's error allocates).
func mayBeAddr(host string) bool {
	return strings.IndexByte(host, ':') >= 0 || strings.Trim(host, "0123456789.") == ""
}

func isAddr(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// maxPathWords bounds the words taken from one link's path.
const maxPathWords = 6

// pathWords adds the words of a link's path ("wp-content", "login",
// "php"): phishing kits and their hosting have their own vocabulary,
// whatever the host is called this week. A word is a run of ASCII
// letters, '-' and '_' that starts with a letter, of 2 to 20 octets.
func (x *Extractor) pathWords(p string) {
	n := 0
	for i := 0; i < len(p) && n < maxPathWords; {
		if !isASCIILetter(p[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(p) && (isASCIILetter(p[j]) || p[j] == '-' || p[j] == '_') {
			j++
		}
		if w := p[i:j]; len(w) >= 2 && len(w) <= 20 {
			x.buf = x.buf[:0]
			for k := 0; k < len(w); k++ {
				x.buf = append(x.buf, lowerASCII(w[k]))
			}
			x.add("url-word", x.buf)
			n++
		}
		i = j
	}
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c
}

// textShape adds the text's length and how much of its first
// maxTokenText octets is upper case.
func (x *Extractor) textShape(text string) {
	x.buf = appendBucket(x.buf[:0], len(text))
	x.add("text-length", x.buf)
	letters, upper := countLetters(text[:min(len(text), maxTokenText)])
	if letters > 20 {
		x.addString("text-upper", strconv.Itoa(10*upper/letters*10)+"%")
	}
}

// countLetters counts the ASCII letters of s and the upper-case ones
// among them, eight octets at a time: in each octet of a word, with its
// top bit masked off and its case bit (0x20) set, adding 0x80-'a'
// carries into the top bit when it is at least 'a', and adding
// 0x7f-'z' when it is over 'z'; neither sum carries into the next
// octet. A letter whose case bit was clear is upper case. Octets with
// the top bit set (UTF-8 sequences) count as no letter. Each octet's
// counts are added in its own lane, 255 words at most, then summed.
func countLetters(s string) (letters, upper int) {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
		fold = 0x20 * ones
	)
	i := 0
	for i+8 <= len(s) {
		var ls, us uint64
		for end := min(len(s), i+255*8); i+8 <= end; i += 8 {
			b := s[i : i+8]
			w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
				uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
			y := w&^high | fold
			l := (y + (0x80-'a')*ones) &^ (y + (0x7f-'z')*ones) & high &^ w
			ls += l >> 7
			us += (l &^ ((w & fold) << 2)) >> 7
		}
		letters += laneSum(ls)
		upper += laneSum(us)
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z':
			letters++
		case c >= 'A' && c <= 'Z':
			letters++
			upper++
		}
	}
	return letters, upper
}

// laneSum is the sum of the eight octets of x.
func laneSum(x uint64) int {
	const lo = 0x00ff00ff00ff00ff
	x = x&lo + x>>8&lo
	return int(x * 0x0001000100010001 >> 48)
}

// appendBucket appends n rounded down to a power of two ("0", "1+",
// "2+", "4+", ...) to b.
func appendBucket(b []byte, n int) []byte {
	if n == 0 {
		return append(b, '0')
	}
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return append(strconv.AppendInt(b, int64(p), 10), '+')
}

// recipients are the envelope recipients as the tokenizer looks for
// them: addresses, domains (and registered domains, and their first
// label: "example" of example.com) and local parts.
type recipients struct {
	addrs, domains, locals, labels []string
	// lens has bit n%64 set for the length n of each local part and
	// label: most words are none of them, and need no compare.
	lens uint64
}

func (r *recipients) set(rcpts []string, suffixes *suffixMemo) {
	r.addrs, r.domains, r.locals, r.labels = r.addrs[:0], r.domains[:0], r.locals[:0], r.labels[:0]
	r.lens = 0
	for _, a := range rcpts {
		a = strings.ToLower(strings.Trim(a, "<> "))
		local, domain, ok := strings.Cut(a, "@")
		if !ok {
			continue
		}
		r.addrs = append(r.addrs, a)
		r.locals = append(r.locals, local)
		org, _ := suffixes.lookup(domain)
		r.domains = append(r.domains, domain, org)
		label, _, _ := strings.Cut(org, ".")
		r.labels = append(r.labels, label)
		r.lens |= 1<<(len(local)%64) | 1<<(len(label)%64)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *recipients) domain(d string) bool { return contains(r.domains, d) }
