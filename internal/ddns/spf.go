package ddns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Limits on the SPF record rewritten: a record longer than MaxSPFLen
// octets, or in more than MaxSPFStrings character-strings, is refused
// rather than edited. RFC 7208 §3.4 advises keeping the whole answer under
// 512 octets; 2048 leaves room for unusual but honest records.
const (
	MaxSPFLen     = 2048
	MaxSPFStrings = 16
	maxString     = 255 // RFC 1035 §3.3: one character-string
)

// Errors of RewriteSPF.
var (
	ErrNoSPF       = errors.New("no SPF record (v=spf1) at the name")
	ErrMultipleSPF = errors.New("more than one SPF record at the name: receivers treat that as a permerror (RFC 7208 §4.5); fix it by hand first")
	ErrSPFTooLong  = fmt.Errorf("SPF record longer than %d octets or %d strings: not rewritten", MaxSPFLen, MaxSPFStrings)
)

// SPFEdit is the outcome of RewriteSPF.
type SPFEdit struct {
	Index   int      // which of the TXT records is the SPF record
	Strings []string // its character-strings after the edit
	Changed bool
	Note    string // why nothing changed, when it did not
}

// RewriteSPF finds the one SPF record among a name's TXT records (each
// given as its character-strings, in the escaped presentation form the
// dns package uses) and replaces the address of every ip4: (ip6: for an
// IPv6 address) mechanism that names exactly one of old, as a single
// address or with /32 (/128), by cur. Everything else, qualifiers, other
// terms, spacing and the split into strings, stays byte for byte; only a
// string that would outgrow 255 octets makes the record be split anew.
//
// Nothing changes when a mechanism already names cur exactly (the record
// is up to date, or was edited by hand) or none names an old address
// (the record may use a or mx, which follow the A record by themselves).
func RewriteSPF(txts [][]string, old []netip.Addr, cur netip.Addr) (SPFEdit, error) {
	ed := SPFEdit{Index: -1}
	for i, strs := range txts {
		if !isSPF(strs) {
			continue
		}
		if ed.Index >= 0 {
			return SPFEdit{Index: -1}, ErrMultipleSPF
		}
		ed.Index = i
	}
	if ed.Index < 0 {
		return ed, ErrNoSPF
	}
	strs := txts[ed.Index]
	total := 0
	for _, s := range strs {
		total += wireLen(s)
	}
	if total > MaxSPFLen || len(strs) > MaxSPFStrings {
		return SPFEdit{Index: -1}, ErrSPFTooLong
	}
	ed.Strings = strs
	mech := "ip4"
	if cur.Is6() {
		mech = "ip6"
	}
	record := strings.Join(strs, "")
	terms := spfTerms(record)
	// RFC 7208 §4.6.1: terms are separated by spaces; the mechanism name
	// is case-insensitive; a qualifier may come first.
	type hit struct{ start, end int } // of the address text
	var hits []hit
	for _, t := range terms {
		text := record[t.start:t.end]
		q := 0
		if strings.ContainsRune("+-~?", rune(text[0])) {
			q = 1
		}
		if len(text) < q+4 || !strings.EqualFold(text[q:q+4], mech+":") {
			continue
		}
		addrText := text[q+4:]
		cidr := ""
		if i := strings.IndexByte(addrText, '/'); i >= 0 {
			addrText, cidr = addrText[:i], addrText[i+1:]
		}
		a, err := netip.ParseAddr(addrText)
		if err != nil || a.Zone() != "" {
			continue
		}
		if cidr != "" && cidr != fmt.Sprint(a.BitLen()) {
			continue // a range: not the mechanism of one address
		}
		if a == cur {
			ed.Note = fmt.Sprintf("already names %s", cur)
			return ed, nil
		}
		for _, o := range old {
			if a == o.Unmap() {
				s := t.start + q + 4
				hits = append(hits, hit{s, s + len(addrText)})
			}
		}
	}
	if len(hits) == 0 {
		ed.Note = fmt.Sprintf("no %s: mechanism names the old address; left as it is", mech)
		return ed, nil
	}
	// Edit within the original strings where each hit lies in one string
	// and the string stays within 255 octets.
	out := append([]string(nil), strs...)
	bounds := make([]int, len(strs)+1) // offsets of the strings in record
	for i, s := range strs {
		bounds[i+1] = bounds[i] + len(s)
	}
	inPlace := true
	for j := len(hits) - 1; j >= 0; j-- { // back to front: offsets stay valid
		h := hits[j]
		k := 0
		for k < len(strs) && bounds[k+1] <= h.start {
			k++
		}
		if k == len(strs) || h.end > bounds[k+1] {
			inPlace = false
			break
		}
		s := out[k]
		ns := s[:h.start-bounds[k]] + cur.String() + s[h.end-bounds[k]:]
		if wireLen(ns) > maxString {
			inPlace = false
			break
		}
		out[k] = ns
	}
	if !inPlace {
		var b strings.Builder
		last := 0
		for _, h := range hits {
			b.WriteString(record[last:h.start])
			b.WriteString(cur.String())
			last = h.end
		}
		b.WriteString(record[last:])
		out = splitStrings(b.String())
	}
	ed.Strings, ed.Changed = out, true
	return ed, nil
}

// isSPF tells an SPF record: "v=spf1" alone or followed by a space (RFC
// 7208 §4.5), case-insensitively; the version is matched on the joined
// strings, as receivers join them first (§3.3).
func isSPF(strs []string) bool {
	r := strings.Join(strs, "")
	return len(r) >= 6 && strings.EqualFold(r[:6], "v=spf1") && (len(r) == 6 || r[6] == ' ')
}

type span struct{ start, end int }

// spfTerms returns the spans of the space-separated terms after the
// version.
func spfTerms(record string) []span {
	var out []span
	i := 6
	for i < len(record) {
		if record[i] == ' ' {
			i++
			continue
		}
		j := i
		for j < len(record) && record[j] != ' ' {
			j++
		}
		out = append(out, span{i, j})
		i = j
	}
	return out
}

// wireLen is the length on the wire of a character-string in the dns
// package's escaped form (\DDD and \X are one octet each).
func wireLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
				i += 3
			} else {
				i++
			}
		}
		n++
	}
	return n
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// splitStrings cuts an escaped record into strings of at most 255 octets,
// never inside an escape.
func splitStrings(s string) []string {
	var out []string
	for len(s) > 0 {
		n, i := 0, 0
		for i < len(s) && n < maxString {
			step := 1
			if s[i] == '\\' && i+1 < len(s) {
				step = 2
				if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
					step = 4
				}
			}
			i += step
			n++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}
