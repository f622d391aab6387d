package spf

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Record is a parsed SPF record (RFC 7208 §4.6, §12).
type Record struct {
	Directives []Directive
	Redirect   *Modifier
	Exp        *Modifier
	Unknown    []Modifier // ignored by evaluation (§6), kept for the linter
}

// Directive is one qualifier+mechanism term.
type Directive struct {
	Qualifier byte   // '+', '-', '~' or '?'
	Mechanism string // all, include, a, mx, ptr, ip4, ip6, exists
	Text      string // the term as written
	Pos       int    // byte offset of the term in the record

	domain macroString  // target domain-spec, nil when absent
	net    netip.Prefix // ip4, ip6
	cidr4  int          // a, mx: IPv4 prefix length (32 if absent)
	cidr6  int          // a, mx: IPv6 prefix length (128 if absent)
}

// Modifier is a name=value term.
type Modifier struct {
	Name  string
	Value string
	Pos   int
	spec  macroString
}

// SyntaxError is a record that does not follow the grammar; Pos is the byte
// offset where the problem was found.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at position %d: %s", e.Pos, e.Msg)
}

func syntaxErr(pos int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// IsSPF reports whether a TXT record is an SPF version 1 record: "v=spf1"
// followed by a space or the end (§4.5).
func IsSPF(txt string) bool {
	return len(txt) >= 6 && strings.EqualFold(txt[:6], "v=spf1") && (len(txt) == 6 || txt[6] == ' ')
}

var (
	modifierName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*$`)
	// dualCIDR matches the optional "/n" and "//n" suffix of a and mx.
	dualCIDR = regexp.MustCompile(`(/([0-9]+))?(//([0-9]+))?$`)
)

// Parse parses an SPF record. Any syntax error anywhere in the record makes
// the whole record invalid (§4.6: check_host returns permerror "without
// further interpretation or evaluation").
func Parse(txt string) (*Record, error) {
	if !IsSPF(txt) {
		return nil, syntaxErr(0, "record does not start with \"v=spf1\"")
	}
	r := &Record{}
	pos := 6
	for pos < len(txt) {
		if txt[pos] == ' ' {
			pos++
			continue
		}
		end := strings.IndexByte(txt[pos:], ' ')
		if end < 0 {
			end = len(txt)
		} else {
			end += pos
		}
		if err := r.parseTerm(txt[pos:end], pos); err != nil {
			return nil, err
		}
		pos = end
	}
	return r, nil
}

func (r *Record) parseTerm(term string, pos int) error {
	for i := 0; i < len(term); i++ {
		if c := term[i]; c < 0x21 || c > 0x7e {
			return syntaxErr(pos+i, "invalid character %q in term %q", c, term)
		}
	}
	// A modifier's name ends at '='; a mechanism's name at ':' or '/'.
	if eq := strings.IndexByte(term, '='); eq > 0 {
		name := term[:eq]
		if modifierName.MatchString(name) {
			return r.parseModifier(name, term[eq+1:], pos)
		}
	}
	d := Directive{Qualifier: '+', Text: term, Pos: pos, cidr4: 32, cidr6: 128}
	body := term
	if strings.ContainsRune("+-~?", rune(term[0])) {
		d.Qualifier = term[0]
		body = term[1:]
	}
	nameEnd := strings.IndexAny(body, ":/")
	if nameEnd < 0 {
		nameEnd = len(body)
	}
	d.Mechanism = strings.ToLower(body[:nameEnd])
	arg := body[nameEnd:]
	argPos := pos + len(term) - len(arg)
	var err error
	switch d.Mechanism {
	case "all":
		if arg != "" {
			return syntaxErr(argPos, "\"all\" takes no argument")
		}
	case "include", "exists":
		if !strings.HasPrefix(arg, ":") {
			return syntaxErr(argPos, "%q needs a domain", d.Mechanism)
		}
		d.domain, err = parseDomainSpec(arg[1:], argPos+1)
	case "ptr":
		if arg != "" {
			if !strings.HasPrefix(arg, ":") {
				return syntaxErr(argPos, "\"ptr\" takes no CIDR length")
			}
			d.domain, err = parseDomainSpec(arg[1:], argPos+1)
		}
	case "a", "mx":
		err = d.parseAMX(arg, argPos)
	case "ip4", "ip6":
		err = d.parseIP(arg, argPos)
	default:
		return syntaxErr(pos, "unknown mechanism %q", body[:nameEnd])
	}
	if err != nil {
		return err
	}
	r.Directives = append(r.Directives, d)
	return nil
}

func (d *Directive) parseAMX(arg string, pos int) error {
	m := dualCIDR.FindStringSubmatchIndex(arg)
	spec := arg[:m[0]]
	if m[2] >= 0 {
		n, err := cidrLen(arg[m[4]:m[5]], 32, pos+m[4])
		if err != nil {
			return err
		}
		d.cidr4 = n
	}
	if m[6] >= 0 {
		n, err := cidrLen(arg[m[8]:m[9]], 128, pos+m[8])
		if err != nil {
			return err
		}
		d.cidr6 = n
	}
	if spec == "" {
		return nil
	}
	if !strings.HasPrefix(spec, ":") {
		return syntaxErr(pos, "unexpected %q after %q", spec, d.Mechanism)
	}
	var err error
	d.domain, err = parseDomainSpec(spec[1:], pos+1)
	return err
}

func (d *Directive) parseIP(arg string, pos int) error {
	if !strings.HasPrefix(arg, ":") {
		return syntaxErr(pos, "%q needs an address", d.Mechanism)
	}
	arg = arg[1:]
	pos++
	addr, bits, hasBits := strings.Cut(arg, "/")
	ip, err := netip.ParseAddr(addr)
	is4 := d.Mechanism == "ip4"
	if err != nil || ip.Zone() != "" || is4 != ip.Is4() {
		return syntaxErr(pos, "invalid %s address %q", d.Mechanism, addr)
	}
	n := ip.BitLen()
	if hasBits {
		n, err = cidrLen(bits, ip.BitLen(), pos+len(addr)+1)
		if err != nil {
			return err
		}
	}
	if d.net, err = ip.Prefix(n); err != nil {
		return syntaxErr(pos, "%s: %v", d.Mechanism, err)
	}
	return nil
}

// cidrLen parses a prefix length: digits only (strconv.Atoi would take
// "-1" and "+8"), no leading zeros, at most max (§5.6).
func cidrLen(s string, max, pos int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || strings.Trim(s, "0123456789") != "" || n > max || (len(s) > 1 && s[0] == '0') {
		return 0, syntaxErr(pos, "invalid CIDR length /%s", s)
	}
	return n, nil
}

func (r *Record) parseModifier(name, value string, pos int) error {
	m := Modifier{Name: strings.ToLower(name), Value: value, Pos: pos}
	valuePos := pos + len(name) + 1
	var err error
	switch m.Name {
	case "redirect", "exp":
		// §6: each may appear at most once.
		if (m.Name == "redirect" && r.Redirect != nil) || (m.Name == "exp" && r.Exp != nil) {
			return syntaxErr(pos, "modifier %q appears twice", m.Name)
		}
		m.spec, err = parseDomainSpec(value, valuePos)
		if err != nil {
			return err
		}
		if m.Name == "redirect" {
			r.Redirect = &m
		} else {
			r.Exp = &m
		}
	default:
		// Unknown modifiers are ignored (§6), but must still be
		// well-formed macro strings (§12).
		if m.spec, err = parseMacroString(value, false, valuePos); err != nil {
			return err
		}
		r.Unknown = append(r.Unknown, m)
	}
	return nil
}

// parseDomainSpec parses a domain-spec: a macro-string that ends in a
// macro or in "." toplabel ["."] (§7.1). The check is on the text as
// written, never after expansion.
func parseDomainSpec(s string, pos int) (macroString, error) {
	if s == "" {
		return nil, syntaxErr(pos, "empty domain")
	}
	ms, err := parseMacroString(s, false, pos)
	if err != nil {
		return nil, err
	}
	if ms.endsWithMacro() {
		return ms, nil
	}
	lit := strings.TrimSuffix(ms[len(ms)-1].literal, ".")
	dot := strings.LastIndexByte(lit, '.')
	if dot < 0 && len(ms) == 1 {
		return nil, syntaxErr(pos, "domain %q has only a top label", s)
	}
	if dot < 0 || !validTopLabel(lit[dot+1:]) {
		return nil, syntaxErr(pos, "domain %q does not end in a valid top label", s)
	}
	return ms, nil
}

// validTopLabel: ( *alphanum ALPHA *alphanum ) /
// ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
func validTopLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	alpha := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			alpha = true
		case c >= '0' && c <= '9':
		case c == '-':
			alpha = true // the second form: digits with a dash inside
		default:
			return false
		}
	}
	return alpha
}
