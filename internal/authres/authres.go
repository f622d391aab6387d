// Package authres writes and parses Authentication-Results header fields
// (RFC 8601), and recognises fields that claim to come from this host so
// they can be removed before ours is added (§5): a sender must not be able
// to forge our verdict.
package authres

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Header is one Authentication-Results field.
type Header struct {
	AuthServID string
	Results    []Result // none: "none"
}

// Result is one method's outcome, for example spf=pass smtp.mailfrom=x.
type Result struct {
	Method  string // spf, dkim, dmarc, arc, iprev, ...
	Version string // method version, rarely used ("dkim/1")
	Value   string // pass, fail, ...
	Comment string // written in parentheses after the value
	Reason  string // reason="..."
	Props   []Prop
}

// Prop is a ptype.property=value pair: smtp.mailfrom, header.d, ...
type Prop struct {
	Type, Name, Value string
	Comment           string
}

// Prop returns the value of ptype.property, or "".
func (r Result) Prop(ptype, name string) string {
	for _, p := range r.Props {
		if strings.EqualFold(p.Type, ptype) && strings.EqualFold(p.Name, name) {
			return p.Value
		}
	}
	return ""
}

// String formats the field value (without the field name), one result per
// folded line.
func (h Header) String() string {
	if len(h.Results) == 0 {
		return pvalue(h.AuthServID) + "; none"
	}
	return pvalue(h.AuthServID) + ";\r\n\t" + h.join(";\r\n\t")
}

// ResultsString formats the results alone, "; "-separated on one line,
// "none" when there are none: the part after the authserv-id, as an
// ARC-Authentication-Results field carries it.
func (h Header) ResultsString() string {
	if len(h.Results) == 0 {
		return "none"
	}
	return h.join("; ")
}

func (h Header) join(sep string) string {
	parts := make([]string, len(h.Results))
	for i, r := range h.Results {
		parts[i] = r.String()
	}
	return strings.Join(parts, sep)
}

// String formats one result: method=value, its comment, reason and
// properties. A property with no value is left out: RFC 8601 §2.3 lets a
// result carry no ptype.property, and `header.d=""` (a DKIM result for
// signatures never parsed, or one with no d=) names nothing.
func (r Result) String() string {
	var b strings.Builder
	b.WriteString(r.Method)
	if r.Version != "" {
		b.WriteString("/" + r.Version)
	}
	b.WriteByte('=')
	b.WriteString(r.Value)
	if r.Comment != "" {
		b.WriteString(" (" + commentSafe(Clip(r.Comment, MaxCommentBytes)) + ")")
	}
	if r.Reason != "" {
		b.WriteString(" reason=" + quote(r.Reason))
	}
	for _, p := range r.Props {
		if p.Value == "" {
			continue
		}
		b.WriteString(" " + p.Type + "." + p.Name + "=" + pvalue(p.Value))
		if p.Comment != "" {
			b.WriteString(" (" + commentSafe(p.Comment) + ")")
		}
	}
	return b.String()
}

// Field is the whole header field, "Authentication-Results: ...", without
// the final CRLF.
func (h Header) Field() string { return "Authentication-Results: " + h.String() }

// pvalue writes a property value as a token, or quoted when it holds
// characters a token cannot (RFC 8601 §2.2: value / [local-part "@"] domain).
func pvalue(v string) string {
	if v == "" {
		return `""`
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>,;:\"[]`, c) >= 0 {
			return quote(v)
		}
	}
	return v
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\r' || c == '\n':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// MaxCommentBytes bounds a result's comment: a reason carrying a DNS
// error (a DNSSEC bogus answer names the failing link, and names run to
// 253 bytes) must not make the field so long an MTA cuts it.
const MaxCommentBytes = 200

// Clip shortens s to at most n bytes, on a UTF-8 boundary, ending in
// "..." when it cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := max(n-3, 0)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// commentSafe keeps a comment balanced and on one line.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '(', ')':
			return '\''
		case '\\':
			return '/'
		case '\r', '\n':
			return ' '
		}
		return r
	}, s)
}

// lexer walks a field value, skipping CFWS (comments and folding white
// space) between tokens.
type lexer struct {
	s       string
	pos     int
	comment string // the last comment skipped
}

func (l *lexer) skipCFWS() error {
	l.comment = ""
	for l.pos < len(l.s) {
		switch c := l.s[l.pos]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.pos++
		case c == '(':
			depth := 0
			start := l.pos
			for l.pos < len(l.s) {
				switch l.s[l.pos] {
				case '\\':
					l.pos++
				case '(':
					depth++
				case ')':
					depth--
				}
				l.pos++
				if depth == 0 {
					break
				}
			}
			if depth != 0 {
				return errors.New("unterminated comment")
			}
			l.comment = strings.TrimSpace(l.s[start+1 : l.pos-1])
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) peek() byte {
	if l.pos < len(l.s) {
		return l.s[l.pos]
	}
	return 0
}

// token reads a run of characters up to a delimiter among stop, or a
// quoted string.
func (l *lexer) token(stop string) (string, error) {
	if l.peek() == '"' {
		return l.quoted()
	}
	return l.atom(stop)
}

// atom reads a run of characters up to a delimiter among stop: names and
// result keywords, which may not be quoted.
func (l *lexer) atom(stop string) (string, error) {
	start := l.pos
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' || c == ';' || strings.IndexByte(stop, c) >= 0 {
			break
		}
		l.pos++
	}
	if l.pos == start || l.s[start] == '"' {
		return "", fmt.Errorf("expected a token at %d", l.pos)
	}
	return l.s[start:l.pos], nil
}

func (l *lexer) quoted() (string, error) {
	var b strings.Builder
	l.pos++ // opening quote
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		l.pos++
		switch c {
		case '\\':
			if l.pos < len(l.s) {
				if c := l.s[l.pos]; c != '\r' && c != '\n' {
					b.WriteByte(c)
				}
				l.pos++
			}
		case '"':
			return b.String(), nil
		case '\r', '\n':
			// Folding inside a quoted string is not part of its value.
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated quoted string")
}

// AuthServID returns the authserv-id of a field value, the part that says
// which host wrote it, without parsing the rest.
func AuthServID(value string) (string, error) {
	l := &lexer{s: value}
	if err := l.skipCFWS(); err != nil {
		return "", err
	}
	id, err := l.token("")
	if err == nil && id == "" {
		err = errors.New("empty")
	}
	if err != nil {
		return "", fmt.Errorf("authres: no authserv-id: %w", err)
	}
	return id, nil
}

// IsOurs reports whether a field value claims to come from authServID,
// which RFC 8601 §5 has us remove. The ids are compared as domain names
// are: case-insensitively, a trailing dot ignored (issue 23: a forged
// "mx.rcpt.test.;" was kept). A field whose id cannot be parsed is read
// loosely, as a lenient consumer might, so malformed syntax is no way
// to keep a forged field.
func IsOurs(value, authServID string) bool {
	id, err := AuthServID(value)
	if err != nil {
		id = looseID(value)
	}
	return sameID(id, authServID)
}

func sameID(a, b string) bool {
	norm := func(s string) string { return strings.TrimSuffix(strings.TrimSpace(s), ".") }
	a, b = norm(a), norm(b)
	return a != "" && strings.EqualFold(a, b)
}

// looseID is the first word of a field value that has no parseable
// authserv-id: white space, comments and a stray quote skipped.
func looseID(value string) string {
	s := strings.TrimLeft(value, " \t\r\n")
	for strings.HasPrefix(s, "(") {
		i := strings.IndexByte(s, ')')
		if i < 0 {
			break
		}
		s = strings.TrimLeft(s[i+1:], " \t\r\n")
	}
	s = strings.TrimLeft(s, "\"")
	if i := strings.IndexAny(s, " \t\r\n;(\""); i >= 0 {
		s = s[:i]
	}
	return s
}

// Limit keeps at most n results of each method, passes first, in their
// order, and notes on the last one kept how many were left out (in its
// comment, which RFC 8601 §2.2 allows anywhere). Thousands of junk
// DKIM-Signature fields would otherwise make the field so long that an
// MTA cuts it before the results that matter (issue 23).
func (h *Header) Limit(n int) {
	count := map[string]int{}
	over := false
	for _, r := range h.Results {
		count[r.Method]++
		over = over || count[r.Method] > n
	}
	if !over {
		return
	}
	keep := make([]bool, len(h.Results))
	kept := map[string]int{}
	for _, passes := range []bool{true, false} {
		for i, r := range h.Results {
			if !keep[i] && (r.Value == "pass") == passes && kept[r.Method] < n {
				keep[i] = true
				kept[r.Method]++
			}
		}
	}
	out := make([]Result, 0, len(h.Results))
	last := map[string]int{}
	for i, r := range h.Results {
		if keep[i] {
			last[r.Method] = len(out)
			out = append(out, r)
		}
	}
	for m, c := range count {
		if c <= n || kept[m] == 0 {
			continue
		}
		r := &out[last[m]]
		note := fmt.Sprintf("%d more %s results not shown", c-kept[m], m)
		if r.Comment != "" {
			// The count stays in view when String clips the comment.
			note = Clip(r.Comment, MaxCommentBytes-len(note)-2) + "; " + note
		}
		r.Comment = note
	}
	h.Results = out
}

// Parse reads a field value.
func Parse(value string) (*Header, error) {
	l := &lexer{s: value}
	h := &Header{}
	var err error
	if h.AuthServID, err = AuthServID(value); err != nil {
		return nil, err
	}
	l.skipCFWS()
	l.token("")
	if err := l.skipCFWS(); err != nil {
		return nil, err
	}
	// Optional version number after the authserv-id (§2.2).
	if c := l.peek(); c >= '0' && c <= '9' {
		l.token("")
		if err := l.skipCFWS(); err != nil {
			return nil, err
		}
	}
	for l.peek() == ';' {
		l.pos++
		if err := l.skipCFWS(); err != nil {
			return nil, err
		}
		if l.pos >= len(l.s) {
			break // a trailing ";"
		}
		method, err := l.atom("=/")
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(method, "none") && len(h.Results) == 0 {
			if err := l.skipCFWS(); err != nil {
				return nil, err
			}
			continue
		}
		r := Result{Method: strings.ToLower(method)}
		if err := l.skipCFWS(); err != nil {
			return nil, err
		}
		if l.peek() == '/' {
			l.pos++
			if err := l.skipCFWS(); err != nil {
				return nil, err
			}
			if r.Version, err = l.atom("="); err != nil {
				return nil, err
			}
		}
		if err := l.expect('='); err != nil {
			return nil, fmt.Errorf("authres: %s: %w", method, err)
		}
		if r.Value, err = l.atom(""); err != nil {
			return nil, err
		}
		r.Value = strings.ToLower(r.Value)
		if err := l.skipCFWS(); err != nil {
			return nil, err
		}
		r.Comment = l.comment
		for l.pos < len(l.s) && l.peek() != ';' {
			name, err := l.atom("=.")
			if err != nil {
				return nil, err
			}
			if err := l.skipCFWS(); err != nil {
				return nil, err
			}
			if l.peek() == '.' {
				l.pos++
				if err := l.skipCFWS(); err != nil {
					return nil, err
				}
				prop, err := l.atom("=")
				if err != nil {
					return nil, err
				}
				if err := l.expect('='); err != nil {
					return nil, err
				}
				l.skipCFWS()
				v, err := l.token("")
				if err != nil {
					return nil, err
				}
				if err := l.skipCFWS(); err != nil {
					return nil, err
				}
				r.Props = append(r.Props, Prop{Type: strings.ToLower(name), Name: strings.ToLower(prop), Value: v, Comment: l.comment})
				continue
			}
			if !strings.EqualFold(name, "reason") {
				return nil, fmt.Errorf("authres: unexpected %q in %s result", name, method)
			}
			if err := l.expect('='); err != nil {
				return nil, err
			}
			l.skipCFWS()
			if r.Reason, err = l.token(""); err != nil {
				return nil, err
			}
			if err := l.skipCFWS(); err != nil {
				return nil, err
			}
		}
		h.Results = append(h.Results, r)
	}
	if l.pos < len(l.s) {
		return nil, fmt.Errorf("authres: unexpected %q", l.s[l.pos:min(len(l.s), l.pos+20)])
	}
	return h, nil
}

func (l *lexer) expect(c byte) error {
	if err := l.skipCFWS(); err != nil {
		return err
	}
	if l.peek() != c {
		return fmt.Errorf("expected %q at %d", c, l.pos)
	}
	l.pos++
	return l.skipCFWS()
}
