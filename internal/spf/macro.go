package spf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// macroString is a parsed macro-string (RFC 7208 §7.1): literal text and
// macro expansions in order.
type macroString []macroPart

type macroPart struct {
	literal string // when letter == 0
	letter  byte   // lower-case macro letter
	upper   bool   // URL-escape the value (§7.3)
	digits  int    // keep this many right-hand parts; 0 = all
	reverse bool
	delims  string // split characters; "" means "."
}

// parseMacroString parses s. explain allows the exp-only letters c, r, t and
// spaces (explain-string, §6.2). pos is s's offset in the record, for error
// positions.
func parseMacroString(s string, explain bool, pos int) (macroString, error) {
	var out macroString
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, macroPart{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if c < 0x21 || c > 0x7e {
				if !(explain && c == ' ') {
					return nil, syntaxErr(pos+i, "invalid character %q", c)
				}
			}
			lit.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return nil, syntaxErr(pos+i, "'%%' at end of macro string")
		}
		switch s[i+1] {
		case '%':
			lit.WriteByte('%')
			i++
			continue
		case '_':
			lit.WriteByte(' ')
			i++
			continue
		case '-':
			lit.WriteString("%20")
			i++
			continue
		case '{':
		default:
			return nil, syntaxErr(pos+i, "invalid macro '%%%c'", s[i+1])
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, syntaxErr(pos+i, "unterminated macro")
		}
		m, err := parseMacro(s[i+2:i+end], explain, pos+i)
		if err != nil {
			return nil, err
		}
		flush()
		out = append(out, m)
		i += end
	}
	flush()
	return out, nil
}

// parseMacro parses the inside of %{...}: letter, transformers, delimiters.
func parseMacro(body string, explain bool, pos int) (macroPart, error) {
	if body == "" {
		return macroPart{}, syntaxErr(pos, "empty macro")
	}
	m := macroPart{letter: body[0] | 0x20, upper: body[0] >= 'A' && body[0] <= 'Z'}
	switch m.letter {
	case 's', 'l', 'o', 'd', 'i', 'p', 'h', 'v':
	case 'c', 'r', 't':
		// §7.2: these three are allowed only in explanations.
		if !explain {
			return macroPart{}, syntaxErr(pos, "macro letter %q only allowed in exp text", body[0])
		}
	default:
		return macroPart{}, syntaxErr(pos, "unknown macro letter %q", body[0])
	}
	rest := body[1:]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n > 0 {
		d, err := strconv.Atoi(rest[:n])
		if err != nil || d == 0 {
			// §7.3: "If a DIGIT is specified, the value MUST be nonzero."
			return macroPart{}, syntaxErr(pos, "invalid digit transformer %q", rest[:n])
		}
		m.digits = min(d, 128)
		rest = rest[n:]
	}
	if len(rest) > 0 && (rest[0] == 'r' || rest[0] == 'R') {
		m.reverse = true
		rest = rest[1:]
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(".-+,/_=", rune(rest[i])) {
			return macroPart{}, syntaxErr(pos, "invalid macro delimiter %q", rest[i])
		}
	}
	m.delims = rest
	return m, nil
}

// hasMacros reports whether ms expands anything.
func (ms macroString) hasMacros() bool {
	for _, p := range ms {
		if p.letter != 0 {
			return true
		}
	}
	return false
}

// endsWithMacro reports whether the last part is a macro expansion.
func (ms macroString) endsWithMacro() bool {
	return len(ms) > 0 && ms[len(ms)-1].letter != 0
}

// String returns the macro string as written (normalised).
func (ms macroString) String() string {
	var b strings.Builder
	for _, p := range ms {
		if p.letter == 0 {
			b.WriteString(strings.ReplaceAll(p.literal, "%", "%%"))
			continue
		}
		l := p.letter
		if p.upper {
			l -= 0x20
		}
		fmt.Fprintf(&b, "%%{%c", l)
		if p.digits > 0 {
			b.WriteString(strconv.Itoa(p.digits))
		}
		if p.reverse {
			b.WriteByte('r')
		}
		b.WriteString(p.delims)
		b.WriteByte('}')
	}
	return b.String()
}

// macroEnv is what macros expand to.
type macroEnv struct {
	sender, local, senderDomain string
	domain                      string
	ip                          netip.Addr
	helo                        string
	receiver                    string
	now                         time.Time
	ptr                         func() string // %{p}, computed on demand
}

func (ms macroString) expand(env *macroEnv) string {
	if len(ms) == 1 && ms[0].letter == 0 {
		return ms[0].literal
	}
	var b strings.Builder
	for _, p := range ms {
		if p.letter == 0 {
			b.WriteString(p.literal)
			continue
		}
		v := transform(env.value(p.letter), p)
		if p.upper {
			v = urlEscape(v)
		}
		b.WriteString(v)
	}
	return b.String()
}

func (env *macroEnv) value(letter byte) string {
	switch letter {
	case 's':
		return env.sender
	case 'l':
		return env.local
	case 'o':
		return env.senderDomain
	case 'd':
		return env.domain
	case 'i':
		return dottedIP(env.ip)
	case 'p':
		return env.ptr()
	case 'v':
		if env.ip.Is4() {
			return "in-addr"
		}
		return "ip6"
	case 'h':
		return env.helo
	case 'c':
		return env.ip.String()
	case 'r':
		if env.receiver == "" {
			return "unknown"
		}
		return env.receiver
	case 't':
		return strconv.FormatInt(env.now.Unix(), 10)
	}
	return ""
}

// dottedIP is %{i}: dotted quad for IPv4, dot-separated nibbles for IPv6
// (§7.3). The nibbles are upper case, as the openspf suite's v-macro-ip6
// case expects of explanations; DNS names compare case-insensitively, so
// lookups are unaffected.
func dottedIP(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	const hex = "0123456789ABCDEF"
	a := ip.As16()
	b := make([]byte, 0, 63)
	for i, x := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, hex[x>>4], '.', hex[x&0xf])
	}
	return string(b)
}

// transform applies split, reverse and right-hand truncation (§7.3).
func transform(v string, p macroPart) string {
	if p.digits == 0 && !p.reverse && (p.delims == "" || p.delims == ".") {
		return v
	}
	delims := p.delims
	if delims == "" {
		delims = "."
	}
	parts := splitAny(v, delims)
	if p.reverse {
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	}
	if p.digits > 0 && p.digits < len(parts) {
		parts = parts[len(parts)-p.digits:]
	}
	return strings.Join(parts, ".")
}

func splitAny(s, delims string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(delims, s[i]) >= 0 {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// urlEscape escapes everything outside RFC 3986's unreserved set.
func urlEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
	}
	return b.String()
}
