package store

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// A verdict's details are kept in a compact text form written without
// reflection: detailsV3, then one item a kind letter, its fields and
// detailsEnd, the fields separated by detailsSep. bounded turns every
// control character of a verdict into a space, so neither separator can
// occur in a value, and the other control characters stand for text
// that recurs: the row's own envelope sender, From domain and client IP
// (rowWords), then the words of detailsWords. Kinds: S a stage (stage,
// result, reason), H a hit (rule, weight in decimal, detail), A a
// header added (name, value), F a fact (name, value). Rows written
// before this form hold the details as JSON, which starts with "{" and
// is read as before. (encoding/json was a tenth of the cost of
// recording a verdict, and its field names a third of the octets kept;
// each octet a row keeps costs SQLite some 7 ns to write, twice over
// with the checkpoint.)
const (
	detailsV3  = "\x03"
	detailsSep = '\x1f' // ASCII unit separator
	detailsEnd = '\x1e' // ASCII record separator
)

// Control characters of the compact form: the row's values, then
// detailsWords from wordBase on.
const (
	wordMailFrom = '\x01'
	wordDomain   = '\x02'
	wordIP       = '\x04'
	wordBase     = '\x05'
)

// detailsWords are what the stages and the headers added repeat;
// wordBase+i stands for the i-th. Append only: rows keep the numbers.
// The table is full: one more word would take detailsEnd's code (the
// guard below stops the build).
// encode writes a field that is one of them, or (wordPrefixes) begins
// with one, so; a word elsewhere in a field is left as it is (finding
// each in the text cost more than the octets saved).
var detailsWords = [...]string{
	"Authentication-Results", "X-Mailwall-Verdict", "X-Mailwall-Score", "policy domain ", " header.from=", " header.d=",
	" header.s=", " header.a=rsa-sha256", " header.b=", " smtp.mailfrom=", " policy.iprev=", "=pass", "=none", "=fail",
	"score ", "domain ", "matched ", " (action=", "; stage=", "reputation", "classify", "; dkim", "; dmarc", "; spf", "; arc",
}

// Every word's code stays under detailsEnd.
var _ [detailsEnd - wordBase - len(detailsWords)]struct{}

// Words of detailsWords by use.
const (
	wordAR         = wordBase + 0
	wordVerdictHdr = wordBase + 1
	wordScoreHdr   = wordBase + 2
	wordPolicyDom  = wordBase + 3
	wordScore      = wordBase + 14
	wordDomainSp   = wordBase + 15
	wordMatched    = wordBase + 16
	wordReputation = wordBase + 19
	wordClassify   = wordBase + 20
)

// appendField appends s, as one word when it is one of detailsWords
// (whole), or its first word (prefixes: the start of a stage's result
// or reason) and the rest.
func appendField(b []byte, s string, whole bool, prefixes ...byte) []byte {
	if whole {
		for _, c := range [...]byte{wordAR, wordVerdictHdr, wordScoreHdr, wordReputation, wordClassify} {
			if s == detailsWords[c-wordBase] {
				return append(b, c)
			}
		}
	}
	for _, c := range prefixes {
		if rest, ok := strings.CutPrefix(s, detailsWords[c-wordBase]); ok {
			return append(append(b, c), rest...)
		}
	}
	return append(b, s...)
}

// encode is d in the compact form, "" when d is empty; mailFrom,
// domain and ip are the row's envelope sender, From domain and client
// IP as the row keeps them. d must be bounded (bounded): its values hold
// no control characters.
func (d *Details) encode(mailFrom, domain, ip string) string {
	if len(d.Stages) == 0 && len(d.Hits) == 0 && len(d.Headers) == 0 && len(d.Facts) == 0 {
		return ""
	}
	n := len(detailsV3)
	for _, s := range d.Stages {
		n += 4 + len(s.Stage) + len(s.Result) + len(s.Reason)
	}
	for _, h := range d.Hits {
		n += 8 + len(h.Rule) + len(h.Detail)
	}
	for _, h := range d.Headers {
		n += 3 + len(h.Name) + len(h.Value)
	}
	for _, f := range d.Facts {
		n += 3 + len(f.Name) + len(f.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, detailsV3...)
	for _, s := range d.Stages {
		b = appendField(append(b, 'S'), s.Stage, true)
		b = appendField(append(b, detailsSep), s.Result, false, wordScore)
		b = appendField(append(b, detailsSep), s.Reason, false, wordPolicyDom, wordDomainSp, wordMatched)
		b = append(b, detailsEnd)
	}
	for _, h := range d.Hits {
		b = append(append(append(append(b, 'H'), h.Rule...), detailsSep), strconv.Itoa(h.Weight)...)
		b = append(append(append(b, detailsSep), h.Detail...), detailsEnd)
	}
	for _, h := range d.Headers {
		b = appendField(append(b, 'A'), h.Name, true)
		b = append(append(append(b, detailsSep), h.Value...), detailsEnd)
	}
	for _, f := range d.Facts {
		b = append(append(append(append(append(b, 'F'), f.Name...), detailsSep), f.Value...), detailsEnd)
	}
	// The row's words (an envelope sender holds its domain: first), each
	// only when long enough to gain.
	for _, w := range [...]struct {
		c    byte
		word string
	}{{wordMailFrom, mailFrom}, {wordDomain, domain}, {wordIP, ip}} {
		if len(w.word) >= 4 {
			b = replaceWord(b, w.word, w.c)
		}
	}
	return string(b)
}

// replaceWord replaces each word in b by c, in place.
func replaceWord(b []byte, word string, c byte) []byte {
	i := bytes.Index(b, []byte(word))
	if i < 0 {
		return b
	}
	out := b[:i]
	for i >= 0 {
		out = append(out, c)
		b = b[i+len(word):]
		i = bytes.Index(b, []byte(word))
		if i < 0 {
			break
		}
		out = append(out, b[:i]...)
	}
	return append(out, b...)
}

// decodeDetails reads details as encode or, for older rows, JSON wrote
// them; mailFrom, domain and ip are the row's, as encode took them.
// What it cannot read is left out: the verdict still lists.
func decodeDetails(s, mailFrom, domain, ip string) Details {
	var d Details
	if strings.HasPrefix(s, "{") {
		_ = json.Unmarshal([]byte(s), &d)
		return d
	}
	rest, ok := strings.CutPrefix(s, detailsV3)
	if !ok {
		// "\x02": the same form without words, of development builds.
		if rest, ok = strings.CutPrefix(s, "\x02"); !ok {
			return d
		}
	}
	if strings.ContainsFunc(rest, func(r rune) bool { return r < 0x1e }) {
		var b strings.Builder
		b.Grow(2 * len(rest))
		for i := 0; i < len(rest); i++ {
			switch c := rest[i]; {
			case c == wordMailFrom:
				b.WriteString(mailFrom)
			case c == wordDomain:
				b.WriteString(domain)
			case c == wordIP:
				b.WriteString(ip)
			case c >= wordBase && int(c-wordBase) < len(detailsWords):
				b.WriteString(detailsWords[c-wordBase])
			default:
				b.WriteByte(c)
			}
		}
		rest = b.String()
	}
	for rest != "" {
		item, after, _ := strings.Cut(rest, string(detailsEnd))
		rest = after
		if item == "" {
			continue
		}
		kind, fields := item[0], item[1:]
		f1, tail, _ := strings.Cut(fields, string(detailsSep))
		f2, f3, _ := strings.Cut(tail, string(detailsSep))
		switch kind {
		case 'S':
			d.Stages = append(d.Stages, StageResult{Stage: f1, Result: f2, Reason: f3})
		case 'H':
			w, _ := strconv.Atoi(f2)
			d.Hits = append(d.Hits, Hit{Rule: f1, Weight: w, Detail: f3})
		case 'A':
			d.Headers = append(d.Headers, Header{Name: f1, Value: tail})
		case 'F':
			d.Facts = append(d.Facts, Fact{Name: f1, Value: tail})
		}
	}
	return d
}
