package dnsbl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MaxWeight bounds a site's weight either way, so that a sum over any
// number of sites cannot overflow and a typo (*30000000) is caught.
const MaxWeight = 1000000

// Site is one entry of a list in the syntax of Postfix's
// postscreen_dnsbl_sites (postconf(5)): domain[=filter][*weight].
//
// Several sites may name the same zone with different filters and weights
// (list.dnswl.org=127.0.[0..255].1*-2, list.dnswl.org=127.0.[0..255].[2..3]*-4):
// the zone is asked once and each site scores on its own, as postscreen does.
type Site struct {
	// Zone is the list's domain, lower case, without a trailing dot.
	Zone string
	// Filter keeps only the answers it matches; nil means "any non-error
	// answer" (postconf(5): "When no "=filter" is specified, postscreen(8)
	// will use any non-error DNSBL reply").
	Filter *Filter
	// Weight is added to the score when the site matches, once however
	// many answers match ("When one postscreen_dnsbl_sites entry produces
	// multiple DNSBL responses, postscreen(8) applies the weight at most
	// once"). Default 1; negative for allow lists.
	Weight int
}

// String gives the site back in postscreen syntax, weight always written.
func (s Site) String() string {
	var b strings.Builder
	b.WriteString(s.Zone)
	if s.Filter != nil {
		b.WriteByte('=')
		b.WriteString(s.Filter.String())
	}
	b.WriteByte('*')
	b.WriteString(strconv.Itoa(s.Weight))
	return b.String()
}

// ParseSites parses a postscreen_dnsbl_sites value: sites separated by
// commas or white space (Postfix splits on ", \t\r\n").
func ParseSites(list string) ([]Site, error) {
	var sites []Site
	for _, f := range strings.FieldsFunc(list, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}) {
		s, err := ParseSite(f)
		if err != nil {
			return nil, err
		}
		sites = append(sites, s)
	}
	return sites, nil
}

// ParseSite parses one domain[=filter][*weight] entry. As in Postfix's
// psc_dnsbl_add_site, the weight is split off at the first '*', then the
// filter at the first '='; what is left must be a valid host name.
func ParseSite(entry string) (Site, error) {
	s := Site{Weight: 1}
	rest := entry
	if i := strings.IndexByte(rest, '*'); i >= 0 {
		w, err := parseWeight(rest[i+1:])
		if err != nil {
			return Site{}, fmt.Errorf("dnsbl: bad weight %q in %q: %w", rest[i+1:], entry, err)
		}
		s.Weight, rest = w, rest[:i]
	}
	if i := strings.IndexByte(rest, '='); i >= 0 {
		f, err := ParseFilter(rest[i+1:])
		if err != nil {
			return Site{}, fmt.Errorf("dnsbl: bad filter in %q: %w", entry, err)
		}
		s.Filter, rest = f, rest[:i]
	}
	zone, err := validZone(rest)
	if err != nil {
		return Site{}, fmt.Errorf("dnsbl: bad domain %q in %q: %w", rest, entry, err)
	}
	s.Zone = zone
	return s, nil
}

// parseWeight reads an integral number with an optional sign and nothing
// after it (Postfix: sscanf "%d%c" must convert exactly one item).
func parseWeight(t string) (int, error) {
	d := strings.TrimPrefix(strings.TrimPrefix(t, "+"), "-")
	if d == "" || strings.IndexFunc(d, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, errors.New("not an integral number")
	}
	w, err := strconv.Atoi(t)
	if err != nil || w > MaxWeight || w < -MaxWeight {
		return 0, fmt.Errorf("out of range -%d..%d", MaxWeight, MaxWeight)
	}
	return w, nil
}

// validZone checks a list's domain as Postfix's valid_hostname does
// (letters, digits, '-' and '_'; labels of 1 to 63 characters not starting
// or ending with '-'; at most 255 characters; not all numeric) and returns
// it in lower case. A trailing dot is refused as Postfix refuses it
// ("misplaced delimiter"), so a list that works here works in postscreen.
func validZone(name string) (string, error) {
	name = strings.ToLower(name)
	if name == "" {
		return "", errors.New("empty")
	}
	// 253 leaves room for no query label at all; real queries add at least
	// one label, and names past 253 are refused when they are built.
	if len(name) > 253 {
		return "", errors.New("longer than 253 characters")
	}
	numeric := true
	for _, label := range strings.Split(name, ".") {
		if err := validLabel(label); err != nil {
			return "", err
		}
		if strings.IndexFunc(label, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			numeric = false
		}
	}
	if numeric {
		return "", errors.New("all numeric (an address, not a domain)")
	}
	return name, nil
}

func validLabel(label string) error {
	switch {
	case label == "":
		return errors.New("empty label")
	case len(label) > 63:
		return fmt.Errorf("label %q longer than 63 characters", label)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("label %q starts or ends with '-'", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q has character %q", label, c)
		}
	}
	return nil
}

// Filter is a pattern over IPv4 answers in Postfix's ip_match syntax:
// four fields separated by '.', each a decimal number 0..255 or a sequence
// in [] of ';'-separated numbers and number..number ranges (low <= high):
// 127.0.0.[2..11], 127.0.[0..255].[2..3], 127.0.0.[17;18], 127.0.0.[2;4..6].
// As in ip_match_parse, [] around the whole pattern is dropped.
type Filter struct {
	octets [4]octetSet
	text   string
}

// octetSet is a 256-bit set of octet values.
type octetSet [4]uint64

func (s *octetSet) add(lo, hi int) {
	for v := lo; v <= hi; v++ {
		s[v>>6] |= 1 << (v & 63)
	}
}

func (s *octetSet) has(v byte) bool { return s[v>>6]&(1<<(v&63)) != 0 }

// ParseFilter parses an answer filter.
func ParseFilter(pattern string) (*Filter, error) {
	p := pattern
	if strings.HasPrefix(p, "[") {
		// ip_match_parse: find the ']' closing the first '[' (nesting
		// counted); when it ends the pattern, the pair encloses it all.
		level, end := 0, -1
		for i := 0; i < len(p); i++ {
			if p[i] == '[' {
				level++
			}
			if p[i] == ']' {
				if level--; level == 0 {
					end = i
					break
				}
			}
		}
		if end < 0 {
			return nil, errors.New(`missing "]" character`)
		}
		if end == len(p)-1 {
			p = p[1:end]
		}
	}
	if p == "" {
		return nil, errors.New("empty address pattern")
	}
	f := &Filter{}
	fields := strings.Split(p, ".")
	// A range's ".." splits too: rejoin pieces inside brackets.
	var joined []string
	for i := 0; i < len(fields); i++ {
		field := fields[i]
		if strings.HasPrefix(field, "[") {
			for !strings.HasSuffix(field, "]") && i+1 < len(fields) {
				i++
				field += "." + fields[i]
			}
		}
		joined = append(joined, field)
	}
	if len(joined) != 4 {
		return nil, fmt.Errorf("%q: need four fields separated by \".\"", pattern)
	}
	for i, field := range joined {
		if err := f.octets[i].parse(field); err != nil {
			return nil, fmt.Errorf("%q: field %d: %w", pattern, i+1, err)
		}
	}
	f.text = p
	return f, nil
}

func (s *octetSet) parse(field string) error {
	if !strings.HasPrefix(field, "[") {
		v, err := octet(field)
		if err != nil {
			return err
		}
		s.add(v, v)
		return nil
	}
	if len(field) < 2 || field[len(field)-1] != ']' {
		return fmt.Errorf("%q: need \";\" or \"]\"", field)
	}
	for _, m := range strings.Split(field[1:len(field)-1], ";") {
		lo, hi, isRange := strings.Cut(m, "..")
		a, err := octet(lo)
		if err != nil {
			return err
		}
		b := a
		if isRange {
			if b, err = octet(hi); err != nil {
				return err
			}
			if a > b {
				return fmt.Errorf("numeric range error: %q", m)
			}
		}
		s.add(a, b)
	}
	return nil
}

// octet reads a decimal number 0..255 (digits only, as ip_match's
// tokenizer: no sign, leading zeros allowed).
func octet(t string) (int, error) {
	if t == "" || strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("%q: need decimal number 0..255", t)
	}
	v, err := strconv.Atoi(t) // a long run of digits overflows: err
	if err != nil || v > 255 {
		return 0, fmt.Errorf("%q: need decimal number 0..255", t)
	}
	return v, nil
}

// Match reports whether an answer matches. Only IPv4 answers can.
func (f *Filter) Match(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() {
		return false
	}
	b := a.As4()
	for i := range b {
		if !f.octets[i].has(b[i]) {
			return false
		}
	}
	return true
}

// String returns the pattern as written (without [] around the whole).
func (f *Filter) String() string { return f.text }
