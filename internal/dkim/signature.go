package dkim

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Algorithms.
const (
	RSASHA256     = "rsa-sha256"
	RSASHA1       = "rsa-sha1"
	Ed25519SHA256 = "ed25519-sha256"
)

// Signature is a parsed DKIM-Signature field (RFC 6376 §3.5).
type Signature struct {
	Version     string
	Algorithm   string
	Signature   []byte // b=
	BodyHash    []byte // bh=
	HeaderCanon string
	BodyCanon   string
	Domain      string // d=, lower case
	Headers     []string
	Identifier  string // i=, "@"+d when absent
	Length      int64  // l=, -1 when absent
	Selector    string // s=
	Timestamp   time.Time
	Expiration  time.Time
	HeaderB     string // the first 8 characters of b=, for header.b (RFC 6008)
}

// ParseSignature parses the value of a DKIM-Signature field. Errors say
// which tag is wrong; the caller reports them as a neutral result (RFC
// 8601 §2.7.1: syntax errors).
func ParseSignature(value string) (*Signature, error) {
	tags, err := parseTags(value)
	if err != nil {
		return nil, err
	}
	for _, t := range []string{"v", "a", "b", "bh", "d", "h", "s"} {
		if _, ok := tags[t]; !ok {
			return nil, fmt.Errorf("required tag %s= missing", t)
		}
	}
	s := &Signature{Version: tags["v"], Algorithm: strings.ToLower(tags["a"]), Length: -1}
	if s.Version != "1" {
		return nil, fmt.Errorf("unsupported version v=%s", s.Version)
	}
	switch s.Algorithm {
	case RSASHA256, RSASHA1, Ed25519SHA256:
	default:
		return nil, fmt.Errorf("unsupported algorithm a=%s", tags["a"])
	}
	b := stripWSP(tags["b"])
	if s.Signature, err = base64.StdEncoding.DecodeString(b); err != nil || len(s.Signature) == 0 {
		return nil, errors.New("b= is not valid base64")
	}
	s.HeaderB = b[:min(8, len(b))]
	if s.BodyHash, err = base64.StdEncoding.DecodeString(stripWSP(tags["bh"])); err != nil || len(s.BodyHash) == 0 {
		return nil, errors.New("bh= is not valid base64")
	}
	s.HeaderCanon, s.BodyCanon = Simple, Simple
	if c, ok := tags["c"]; ok {
		hc, bc, hasBody := strings.Cut(strings.ToLower(c), "/")
		s.HeaderCanon = hc
		if hasBody {
			s.BodyCanon = bc
		}
		for _, x := range []string{s.HeaderCanon, s.BodyCanon} {
			if x != Simple && x != Relaxed {
				return nil, fmt.Errorf("unsupported canonicalization c=%s", c)
			}
		}
	}
	s.Domain = strings.ToLower(strings.TrimSuffix(tags["d"], "."))
	if s.Domain == "" || strings.ContainsAny(s.Domain, " \t@") {
		return nil, fmt.Errorf("invalid domain d=%s", tags["d"])
	}
	s.Selector = strings.ToLower(tags["s"])
	if s.Selector == "" || strings.ContainsAny(s.Selector, " \t@") {
		return nil, fmt.Errorf("invalid selector s=%s", tags["s"])
	}
	from := false
	for h := range strings.SplitSeq(stripWSP(tags["h"]), ":") {
		if h == "" {
			return nil, errors.New("empty header name in h=")
		}
		s.Headers = append(s.Headers, h)
		from = from || strings.EqualFold(h, "from")
	}
	if !from {
		// §5.4: the From field MUST be signed.
		return nil, errors.New("h= does not include From")
	}
	s.Identifier = "@" + s.Domain
	if i, ok := tags["i"]; ok {
		at := strings.LastIndexByte(i, '@')
		if at < 0 {
			return nil, fmt.Errorf("i=%s has no @", i)
		}
		idom := strings.ToLower(strings.TrimSuffix(i[at+1:], "."))
		// §3.5: i='s domain is d= or a subdomain of it.
		if idom != s.Domain && !strings.HasSuffix(idom, "."+s.Domain) {
			return nil, fmt.Errorf("i=%s is not in d=%s", i, s.Domain)
		}
		s.Identifier = i
	}
	if l, ok := tags["l"]; ok {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || !allDigits(l) {
			return nil, fmt.Errorf("invalid body length l=%s", l)
		}
		s.Length = n
	}
	if q, ok := tags["q"]; ok {
		ok := false
		for m := range strings.SplitSeq(stripWSP(q), ":") {
			ok = ok || strings.EqualFold(m, "dns/txt")
		}
		if !ok {
			return nil, fmt.Errorf("unsupported query method q=%s", q)
		}
	}
	if t, ok := tags["t"]; ok {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || !allDigits(t) {
			return nil, fmt.Errorf("invalid timestamp t=%s", t)
		}
		s.Timestamp = time.Unix(n, 0)
	}
	if x, ok := tags["x"]; ok {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil || !allDigits(x) {
			return nil, fmt.Errorf("invalid expiration x=%s", x)
		}
		s.Expiration = time.Unix(n, 0)
		if !s.Timestamp.IsZero() && s.Expiration.Before(s.Timestamp) {
			return nil, errors.New("x= is before t=")
		}
	}
	return s, nil
}

// withoutB returns a DKIM-Signature field with the value of its b= tag
// removed, white space around it included (§3.5, b= "treated as the empty
// string"), the rest untouched.
func withoutB(raw string) string {
	colon := strings.IndexByte(raw, ':')
	if colon < 0 {
		return raw
	}
	value := raw[colon+1:]
	pos := 0
	for pos <= len(value) {
		end := strings.IndexByte(value[pos:], ';')
		if end < 0 {
			end = len(value)
		} else {
			end += pos
		}
		tag := value[pos:end]
		if name, _, ok := strings.Cut(tag, "="); ok && strings.TrimSpace(trimFWS(name)) == "b" {
			eq := pos + strings.IndexByte(tag, '=')
			rest := value[end:]
			if end == len(value) {
				// b= is the last tag: keep the field's final CRLF.
				rest = "\r\n"
				if !strings.HasSuffix(value, "\r\n") {
					rest = ""
				}
			}
			return raw[:colon+1] + value[:eq+1] + rest
		}
		pos = end + 1
	}
	return raw
}

// allDigits reports whether s is 1*DIGIT, the grammar of l=, t= and x=
// (RFC 6376 §3.5); strconv also takes a sign.
func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
