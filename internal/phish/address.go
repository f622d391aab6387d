package phish

import (
	"fmt"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/japanese"

	"mailwall/internal/dkim"
	"mailwall/internal/mailbox"
)

// Limits on reading an author field tolerantly, so that a hostile field
// costs bounded work: the scan is linear in what is read.
const (
	maxAddressField = 4 << 10 // octets of a field read; the rest is ignored
	maxCandidates   = 8       // <...> groups and bare addresses considered
)

// Mailbox is an author field (From, Reply-To, Sender) read the way a
// mail client shows it, even when it is not the single RFC 5322 mailbox
// it should be.
type Mailbox struct {
	Name   string `json:"name,omitempty"`   // display name, encoded words decoded
	Local  string `json:"local,omitempty"`  // local part as written
	Domain string `json:"domain,omitempty"` // domain, lower case, "" when there is no address
	// Others are further addresses in the field (at most maxCandidates).
	Others []string `json:"others,omitempty"`
	// Malformed says what was wrong with the field, in words; empty when
	// it is one well-formed mailbox. Each entry counts for from_malformed.
	Malformed []string `json:"malformed,omitempty"`
	// Notes are lesser faults that legitimate mailers commit too (raw
	// 8-bit text, encoded words inside quotes): shown, not scored.
	Notes []string `json:"notes,omitempty"`
}

// Address is local@domain, or "" when the field held none.
func (m Mailbox) Address() string {
	if m.Domain == "" && m.Local == "" {
		return ""
	}
	return m.Local + "@" + m.Domain
}

// String shows the mailbox as a mail client would: "Name <address>".
func (m Mailbox) String() string {
	switch {
	case m.Address() == "":
		return strconv.Quote(m.Name)
	case m.Name == "":
		return "<" + m.Address() + ">"
	}
	return strconv.Quote(m.Name) + " <" + m.Address() + ">"
}

func (m *Mailbox) bad(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	for _, x := range m.Malformed {
		if x == s {
			return
		}
	}
	if len(m.Malformed) < 8 {
		m.Malformed = append(m.Malformed, s)
	}
}

func (m *Mailbox) note(s string) {
	for _, x := range m.Notes {
		if x == s {
			return
		}
	}
	m.Notes = append(m.Notes, s)
}

// readMailbox reads the field name of a header. charset gives the
// message's own (its top-level Content-Type), the best guess for raw
// 8-bit text; it is asked only when there is some.
// A field repeated is itself malformed (RFC 5322 §3.6: at most once);
// present is false when the field is absent. Reply-To may list several
// addresses (§3.6.2); From and Sender should hold one.
func (c *Checker) readMailbox(fields []dkim.Field, name string, charset func() string) (m Mailbox, present bool) {
	n := 0
	for _, f := range fields {
		if !strings.EqualFold(f.Name, name) {
			continue
		}
		if n++; n == 1 {
			m = c.mailbox(f.Value(), charset, strings.EqualFold(name, "Reply-To"))
		}
	}
	if n > 1 {
		m.bad("%d %s fields", n, name)
	}
	return m, n > 0
}

// mailbox is parseMailboxLazy(raw, charset, list), remembered across
// messages (senders write the same From again and again) when raw is
// valid UTF-8: only other text reads the charset. The remembered
// Mailbox's slices are clipped, so that appending to a copy's copies
// them (readMailbox does, for a repeated field).
func (c *Checker) mailbox(raw string, charset func() string, list bool) Mailbox {
	if c == nil || !utf8.ValidString(raw) {
		return parseMailboxLazy(raw, charset, list)
	}
	memo, parse := c.boxes, parseClipped
	if list {
		memo, parse = c.listBoxes, parseListClipped
	}
	return memo.get(raw, parse)
}

// parseClipped and parseListClipped are parseMailboxLazy of valid UTF-8
// (no charset read), its slices clipped.
func parseClipped(raw string) Mailbox     { return clipMailbox(parseMailboxLazy(raw, noCharset, false)) }
func parseListClipped(raw string) Mailbox { return clipMailbox(parseMailboxLazy(raw, noCharset, true)) }

func noCharset() string { return "" }

func clipMailbox(m Mailbox) Mailbox {
	m.Others, m.Malformed, m.Notes = slices.Clip(m.Others), slices.Clip(m.Malformed), slices.Clip(m.Notes)
	return m
}

// parseMailboxLazy reads one author field value. It tries the strict
// RFC 5322 parser first; what that rejects is read tolerantly: the
// address is the first <...> (or bare word) holding a plausible
// address, the name the text before it, and every departure from the
// grammar is recorded. charset gives the message's charset, asked for
// only when the value holds raw octets that are not UTF-8.
func parseMailboxLazy(raw string, charset func() string, list bool) Mailbox {
	m := parseMailbox1(raw, charset, list)
	// An encoded word may say UTF-8 and hold other bytes: what is shown
	// and matched is valid UTF-8.
	m.Name = strings.TrimSpace(strings.ToValidUTF8(m.Name, "\uFFFD"))
	if strings.ContainsAny(m.Name, "\u202d\u202e") {
		// Names in right-to-left scripts need no override (the bidi
		// algorithm orders them); an override is there to show
		// something other than what is written.
		m.bad("a bidi override in the display name, shown as %q", clipName(shownOrder(m.Name)))
	}
	m.Local = strings.ToValidUTF8(m.Local, "\uFFFD")
	m.Domain = strings.ToValidUTF8(m.Domain, "\uFFFD")
	for i, o := range m.Others {
		m.Others[i] = strings.ToValidUTF8(o, "\uFFFD")
	}
	return m
}

func parseMailbox1(raw string, charset func() string, list bool) Mailbox {
	var m Mailbox
	v := raw
	if strings.ContainsAny(v, "\r\n") {
		v = unfolder.Replace(v) // RFC 5322 §2.2.3
	}
	if len(v) > maxAddressField {
		v = v[:maxAddressField]
		m.bad("longer than %d octets", maxAddressField)
	}
	v = m.decode8bit(v, charset)
	v = strings.TrimSpace(v)
	if v == "" {
		m.bad("empty")
		return m
	}
	if a, err := parseAddress(v); err == nil {
		if local, domain, ok := cutAddress(a.Address); ok {
			m.Name, m.Local, m.Domain = a.Name, local, strings.ToLower(domain)
			if strings.Contains(m.Name, "=?") {
				// RFC 2047 §5: not in a quoted string; clients decode it
				// anyway, and so must brand matching.
				m.Name = decodeHeader(m.Name)
				m.note("encoded word inside a quoted string")
			}
			m.checkDomain()
			return m
		}
	}
	if list {
		if as, err := addressParser.ParseList(v); err == nil && len(as) > 0 {
			if local, domain, ok := cutAddress(as[0].Address); ok {
				m.Name, m.Local, m.Domain = as[0].Name, local, strings.ToLower(domain)
				for _, a := range as[1:min(len(as), maxCandidates)] {
					m.Others = append(m.Others, strings.ToLower(a.Address))
				}
				m.checkDomain()
				return m
			}
		}
	}
	m.tolerant(v)
	return m
}

// parseAddress is addressParser.Parse, with mailbox.Simple's shortcut
// for the forms most mail's From has, which it reads as the parser does.
func parseAddress(v string) (*mail.Address, error) {
	if name, addr, ok := mailbox.Simple(v); ok {
		return &mail.Address{Name: name, Address: addr}, nil
	}
	return addressParser.Parse(v)
}

// unfolder joins a folded field value (safe for concurrent use).
var unfolder = strings.NewReplacer("\r\n", "", "\r", "", "\n", "")

// decode8bit turns raw 8-bit text (RFC 6532 allows UTF-8 only) and raw
// ISO-2022-JP escapes into UTF-8, as a client guessing the charset would.
func (m *Mailbox) decode8bit(v string, charset func() string) string {
	if strings.Contains(v, "\x1b$B") || strings.Contains(v, "\x1b$@") {
		if d, err := japanese.ISO2022JP.NewDecoder().String(v); err == nil {
			m.note("raw ISO-2022-JP text, not encoded words")
			return d
		}
	}
	if utf8.ValidString(v) {
		return v
	}
	m.note("raw 8-bit text that is not UTF-8")
	guesses := []string{strings.ToLower(strings.TrimSpace(charset()))}
	if strings.HasPrefix(guesses[0], "iso-2022-jp") {
		// A 7-bit charset cannot be the header's: Japanese mailers that
		// send ISO-2022-JP bodies write raw headers in Shift_JIS or EUC-JP.
		guesses = []string{"shift_jis", "euc-jp"}
	}
	best, bestOdd := "", -1
	for _, cs := range guesses {
		if cs == "" || cs == "utf-8" || cs == "us-ascii" {
			continue
		}
		if enc, err := htmlindex.Get(cs); err == nil {
			if d, err := enc.NewDecoder().String(v); err == nil && utf8.ValidString(d) {
				if odd := oddRunes(d); bestOdd < 0 || odd < bestOdd {
					best, bestOdd = d, odd
				}
			}
		}
	}
	if best != "" {
		return best
	}
	// The fallback of most clients in the West; it maps every byte.
	d, _ := charmap.Windows1252.NewDecoder().String(v)
	return d
}

// oddRunes counts what a wrong guess of a Japanese charset produces:
// replacement characters, and half-width katakana (EUC-JP read as
// Shift_JIS is all of them; real mail seldom uses them).
func oddRunes(s string) int {
	n := 0
	for _, r := range s {
		if r == utf8.RuneError || r >= 0xff61 && r <= 0xff9f {
			n++
		}
	}
	return n
}

// cutAddress splits local@domain at the last @ (a local part may quote
// one).
func cutAddress(a string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return "", "", false
	}
	return a[:i], a[i+1:], true
}

// checkDomain records a domain no one can send from: no dot (a host
// name, not an Internet domain: RFC 5321 §2.3.5), characters outside
// letters, digits and hyphens, an address literal.
func (m *Mailbox) checkDomain() {
	d := m.Domain
	if strings.HasSuffix(d, ".") {
		m.bad("the domain ends with a dot")
		d = strings.TrimRight(d, ".")
		m.Domain = d
	}
	switch {
	case d == "":
		m.bad("no domain after the @")
	case strings.HasPrefix(d, "["):
		m.bad("an address literal %s instead of a domain", d)
	case !strings.Contains(d, "."):
		m.bad("the domain %q has no dot", d)
	default:
		for i := 0; i < len(d); i++ {
			c := d[i]
			if c < utf8.RuneSelf && !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				m.bad("%q in the domain %q", c, d)
				break
			}
		}
	}
}

// candidate is an address found by the tolerant scan: the text in <...>
// or a bare word holding an @, and where it stood.
type candidate struct {
	addr       string
	start, end int // v[start:end] is the candidate with its brackets
	bracketed  bool
}

// tolerant reads what the strict parser rejected.
func (m *Mailbox) tolerant(v string) {
	cands, quotesOK := scanCandidates(v, true)
	if !quotesOK {
		m.bad("unbalanced quotes")
		cands, _ = scanCandidates(v, false)
	}
	// A client takes the address in <...> over a bare word, and one
	// whose domain has a dot over one without ("<>63493<info@x.test>").
	best, rank := -1, 0
	for i, c := range cands {
		_, d, ok := cutAddress(c.addr)
		if !ok {
			continue
		}
		r := 1
		if strings.Contains(d, ".") {
			r += 2
		}
		if c.bracketed {
			r++
		}
		if r > rank {
			best, rank = i, r
		}
	}
	if best < 0 && strings.Contains(v, "=?") {
		// The whole field in an encoded word: "=?utf-8?B?...?=" holding
		// "Name <addr>". Clients show the decoded text.
		if d := decodeHeader(v); d != v && strings.Contains(d, "@") {
			m.bad("the address is inside an encoded word")
			if a, err := addressParser.Parse(d); err == nil {
				if local, domain, ok := cutAddress(a.Address); ok {
					m.Name, m.Local, m.Domain = a.Name, local, strings.ToLower(domain)
					m.checkDomain()
					return
				}
			}
			v = d
			cands, _ = scanCandidates(v, false)
			for i, c := range cands {
				if strings.Contains(c.addr, "@") {
					best = i
					break
				}
			}
		}
	}
	for _, c := range cands {
		if c.bracketed && strings.TrimSpace(c.addr) == "" {
			m.bad("an empty <>")
		}
	}
	if best < 0 {
		m.bad("no address (no @)")
		m.Name = cleanName(v)
		return
	}
	c := cands[best]
	addr := c.addr
	if strings.ContainsAny(addr, " \t") {
		m.bad("spaces inside <%s>", strings.TrimSpace(addr))
		addr = strings.TrimSpace(addr)
		if f := strings.Fields(addr); len(f) > 1 {
			for _, w := range f {
				if strings.Contains(w, "@") {
					addr = w
					break
				}
			}
		}
	}
	addr = strings.Trim(addr, `"'`)
	if len(addr) >= 7 && strings.EqualFold(addr[:7], "mailto:") {
		addr = addr[7:]
	}
	local, domain, _ := cutAddress(addr)
	m.Local, m.Domain = strings.Trim(local, `"`), strings.ToLower(domain)
	if strings.Contains(local, "@") && !strings.HasPrefix(local, `"`) {
		m.bad("two @ in %s", clipName(addr))
	}
	m.checkDomain()
	seen := map[string]bool{strings.ToLower(m.Address()): true}
	// An address outside <> before one inside is shown as part of the
	// name ("x@y.test <z@w.test>"): counted as an address only when no
	// <> holds one.
	n := 0
	for _, o := range cands {
		a := strings.ToLower(strings.TrimRight(strings.TrimSpace(o.addr), "."))
		if !strings.Contains(a, "@") {
			continue
		}
		if o.bracketed == c.bracketed {
			n++
		}
		if !seen[a] {
			seen[a] = true
			m.Others = append(m.Others, a)
		}
	}
	if n > 1 {
		// RFC 5322 §3.6.2 allows several authors with a Sender; no
		// mailer of a real organization writes them, kits do (the same
		// address twice, too).
		m.bad("%d addresses", n)
	}
	// The name is the text before the address, back to the previous
	// candidate; failing that, the text after it ("addr (Name)").
	prev := 0
	if best > 0 {
		prev = cands[best-1].end
	}
	before := v[prev:c.start]
	m.Name = cleanName(before)
	if m.Name == "" && prev > 0 {
		before = v[:c.start]
		m.Name = cleanName(before)
	}
	if m.Name == "" {
		m.Name = cleanName(v[c.end:])
	}
	if c.bracketed {
		if sp := unquotedSpecials(before); sp != "" {
			m.bad("%s in the display name, unquoted", sp)
		}
		if after := strings.TrimSpace(v[c.end:]); after != "" && best == len(cands)-1 && !strings.HasPrefix(after, "(") {
			m.bad("text after the address: %q", clipName(after))
		}
	}
	if !c.bracketed && strings.TrimSpace(before) != "" {
		m.bad("a display name without <> around the address")
	}
	if len(m.Malformed) == 0 {
		// The strict parser said no for a reason none of the above names.
		_, err := addressParser.Parse(v)
		reason := "not one RFC 5322 mailbox"
		if err != nil {
			reason += " (" + strings.TrimPrefix(err.Error(), "mail: ") + ")"
		}
		m.bad("%s", reason)
	}
}

// scanCandidates finds the <...> groups and the bare words with an @,
// outside quoted strings when quotes is set. ok is false when a quote is
// left open.
func scanCandidates(v string, quotes bool) (cands []candidate, ok bool) {
	inQuote := false
	wordStart := -1
	flushWord := func(end int) {
		if wordStart >= 0 && len(cands) < maxCandidates {
			w := strings.Trim(v[wordStart:end], ",;:()[]'")
			if strings.Contains(w, "@") {
				cands = append(cands, candidate{addr: w, start: wordStart, end: end})
			}
		}
		wordStart = -1
	}
	for i := 0; i < len(v) && len(cands) < maxCandidates; i++ {
		ch := v[i]
		switch {
		case inQuote:
			if ch == '\\' {
				i++
			} else if ch == '"' {
				inQuote = false
			}
		case ch == '"' && quotes:
			flushWord(i)
			inQuote = true
		case ch == '<':
			flushWord(i)
			end := strings.IndexAny(v[i+1:], "<>")
			if end < 0 || v[i+1+end] == '<' {
				// Unbalanced: the address runs to the next < or the end.
				stop := len(v)
				if end >= 0 {
					stop = i + 1 + end
				}
				cands = append(cands, candidate{addr: v[i+1 : stop], start: i, end: stop, bracketed: true})
				i = stop - 1
				continue
			}
			cands = append(cands, candidate{addr: v[i+1 : i+1+end], start: i, end: i + 2 + end, bracketed: true})
			i += 1 + end
		case ch == ' ' || ch == '\t' || ch == ',' || ch == ';' || ch == '>':
			flushWord(i)
		default:
			if wordStart < 0 {
				wordStart = i
			}
		}
	}
	flushWord(len(v))
	return cands, !inQuote
}

// unquotedSpecials lists the RFC 5322 specials (§3.2.3) in the unquoted
// part of a display name: ",_<" before an address is a classic of
// phishing kits. A period alone is not listed: obs-phrase allows it and
// "Dr. Smith" is common.
func unquotedSpecials(name string) string {
	var found []string
	inQuote, depth := false, 0
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case inQuote:
			if ch == '\\' {
				i++
			} else if ch == '"' {
				inQuote = false
			}
		case ch == '"':
			inQuote = true
		case ch == '(':
			depth++
		case ch == ')':
			if depth == 0 {
				found = appendOnce(found, `")"`)
			} else {
				depth--
			}
		case depth > 0:
		case strings.IndexByte(",:;@[]\\<>", ch) >= 0:
			found = appendOnce(found, strconv.Quote(string(ch)))
		}
	}
	return strings.Join(found, ", ")
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// cleanName makes a display name of free text: encoded words decoded,
// quotes and comment parentheses dropped, the punctuation phishing kits
// leave around it trimmed.
func cleanName(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if strings.Contains(s, "=?") {
		s = decodeHeader(s)
	}
	s = strings.NewReplacer(`\"`, `"`, `"`, "", `\\`, `\`).Replace(s)
	s = strings.Join(strings.Fields(s), " ")
	return strings.Trim(s, " ,;:_()<>'")
}

func clipName(s string) string {
	if len(s) <= 40 {
		return s
	}
	n := 37
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
