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
// header added (name, value), F a fact (name, value). What the row's
// columns hold already is not written again (detailsRow): h a hit
// (detail) that is the row's rule of its place ("rule=weight"), T a
// stage of rowStages of the row's result (its letter, reason), V the
// X-Mailwall-Verdict header the milter adds (the stage when not the
// row's), R its X-Mailwall-Score header (nothing: the row's score and
// rules); encode writes them only for a value they rebuild exactly,
// and a reader of before them leaves them out. Rows written
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

// detailsRow is what encode and decodeDetails take of the row's
// columns, as the row keeps them: the envelope sender, From domain and
// client IP (words), the verdict, action, stage, score and rules
// (headers and hits rebuilt from them).
type detailsRow struct {
	mailFrom, domain, ip   string
	verdict, action, stage string
	iprev, spf, arc, dmarc string
	score                  int
	rules                  []string // the rules column's, strings.Fields of it
	rulesText              string   // the rules column
}

// rowStages are the stages whose result a column of the row holds, by
// their letter in the compact form.
var rowStages = [...]struct {
	letter byte
	stage  string
}{{'i', "iprev"}, {'s', "spf"}, {'a', "arc"}, {'m', "dmarc"}}

// stageResult is the row's result of the stage of rowStages letter
// names, or of stage when letter is 0; ok false for another.
func (r *detailsRow) stageResult(letter byte, stage string) (byte, string, string, bool) {
	for i, s := range rowStages {
		if s.letter == letter || letter == 0 && s.stage == stage {
			return s.letter, s.stage, [...]string{r.iprev, r.spf, r.arc, r.dmarc}[i], true
		}
	}
	return 0, "", "", false
}

// verdictHeader and scoreHeader are the names of the headers encode
// may rebuild.
const (
	verdictHeader = "X-Mailwall-Verdict"
	scoreHeader   = "X-Mailwall-Score"
)

// verdictStage is the stage X-Mailwall-Verdict's value v names when v
// is as the milter writes it for row r (internal/verdict's decision:
// "VERDICT (action=ACTION; stage=STAGE)"), and whether it is.
func (r *detailsRow) verdictStage(v string) (string, bool) {
	rest, ok := strings.CutPrefix(v, r.verdict)
	if !ok {
		return "", false
	}
	if rest, ok = strings.CutPrefix(rest, " (action="); !ok {
		return "", false
	}
	if rest, ok = strings.CutPrefix(rest, r.action); !ok {
		return "", false
	}
	if rest, ok = strings.CutPrefix(rest, "; stage="); !ok {
		return "", false
	}
	return strings.CutSuffix(rest, ")")
}

// isScoreHeader is whether X-Mailwall-Score's value v is as the milter
// writes it for row r: "SCORE (RULES)", "SCORE (none)" without rules.
func (r *detailsRow) isScoreHeader(v string) bool {
	var buf [20]byte
	rest, ok := strings.CutPrefix(v, string(strconv.AppendInt(buf[:0], int64(r.score), 10)))
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, " ("); !ok {
		return false
	}
	if rest, ok = strings.CutSuffix(rest, ")"); !ok {
		return false
	}
	if r.rulesText == "" {
		return rest == "none"
	}
	return rest == r.rulesText
}

// ruleIs is whether rule is "name=weight" of h.
func ruleIs(rule string, h *Hit) bool {
	name, ok := strings.CutPrefix(rule, h.Rule)
	if !ok || len(name) < 2 || name[0] != '=' {
		return false
	}
	var buf [20]byte
	return name[1:] == string(strconv.AppendInt(buf[:0], int64(h.Weight), 10))
}

// plainRules is whether strings.Fields of rules joined by spaces gives
// rules back: none empty, none with white space (or other than ASCII,
// which Fields might split at).
func plainRules(rules []string) bool {
	for _, r := range rules {
		if r == "" {
			return false
		}
		for i := 0; i < len(r); i++ {
			if r[i] <= ' ' || r[i] >= 0x7f {
				return false
			}
		}
	}
	return true
}

// arWords are the words of detailsWords an Authentication-Results
// value repeats (RFC 8601 §2.2: "; method=result ptype.property=value"),
// by the octet they begin with.
var arWords = [...][]byte{
	' ': {wordBase + 4, wordBase + 5, wordBase + 6, wordBase + 7, wordBase + 8, wordBase + 9, wordBase + 10},
	'=': {wordBase + 11, wordBase + 12, wordBase + 13},
	';': {wordBase + 21, wordBase + 22, wordBase + 23, wordBase + 24},
}

// appendAuthResults appends an Authentication-Results value v, each of
// arWords in it as its word: one pass, a look at the words only where
// a space, "=" or ";" begins one (some 200 octets of a verdict's 500
// are this header's, 120 of them its words).
func appendAuthResults(b []byte, v string) []byte {
	from := 0 // v[from:] is not in b yet
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != ' ' && c != '=' && c != ';' {
			continue
		}
		for _, w := range arWords[c] {
			// The second octet first: most spaces begin no word.
			if word := detailsWords[w-wordBase]; i+1 < len(v) && v[i+1] == word[1] && strings.HasPrefix(v[i:], word) {
				b = append(append(b, v[from:i]...), w)
				i += len(word) - 1
				from = i + 1
				break
			}
		}
	}
	return append(b, v[from:]...)
}

// encode is d in the compact form, "" when d is empty; r is the row's
// columns as the row keeps them. d must be bounded (bounded): its
// values hold no control characters.
func (d *Details) encode(r *detailsRow) string {
	if len(d.Stages) == 0 && len(d.Hits) == 0 && len(d.Headers) == 0 && len(d.Facts) == 0 {
		return ""
	}
	// Each item's kind, separators and end, and a hit's weight.
	b := make([]byte, 0, len(detailsV3)+d.size(4, 8, 3))
	b = append(b, detailsV3...)
	for _, s := range d.Stages {
		if letter, _, result, ok := r.stageResult(0, s.Stage); ok && s.Result == result {
			b = appendField(append(b, 'T', letter), s.Reason, false, wordPolicyDom, wordDomainSp, wordMatched)
			b = append(b, detailsEnd)
			continue
		}
		b = appendField(append(b, 'S'), s.Stage, true)
		b = appendField(append(b, detailsSep), s.Result, false, wordScore)
		b = appendField(append(b, detailsSep), s.Reason, false, wordPolicyDom, wordDomainSp, wordMatched)
		b = append(b, detailsEnd)
	}
	plain := len(d.Hits) > 0 && plainRules(r.rules)
	for i := range d.Hits {
		h := &d.Hits[i]
		if plain && i < len(r.rules) && ruleIs(r.rules[i], h) {
			b = append(append(append(b, 'h'), h.Detail...), detailsEnd)
			continue
		}
		b = append(append(append(append(b, 'H'), h.Rule...), detailsSep), strconv.Itoa(h.Weight)...)
		b = append(append(append(b, detailsSep), h.Detail...), detailsEnd)
	}
	for _, h := range d.Headers {
		switch h.Name {
		case verdictHeader:
			if st, ok := r.verdictStage(h.Value); ok && (st == r.stage || st != "") {
				if st == r.stage {
					st = ""
				}
				b = append(append(append(b, 'V'), st...), detailsEnd)
				continue
			}
		case scoreHeader:
			if r.isScoreHeader(h.Value) {
				b = append(b, 'R', detailsEnd)
				continue
			}
		}
		b = appendField(append(b, 'A'), h.Name, true)
		if h.Name == detailsWords[wordAR-wordBase] {
			b = append(appendAuthResults(append(b, detailsSep), h.Value), detailsEnd)
			continue
		}
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
	}{{wordMailFrom, r.mailFrom}, {wordDomain, r.domain}, {wordIP, r.ip}} {
		if len(w.word) >= 4 {
			b = replaceWord(b, w.word, w.c)
		}
	}
	return string(b)
}

// size is the octets of d's strings and, for each item, the octets
// given for a stage, a hit and a name and value (a header or a fact)
// besides them.
func (d *Details) size(stage, hit, pair int) int {
	n := 0
	for _, s := range d.Stages {
		n += stage + len(s.Stage) + len(s.Result) + len(s.Reason)
	}
	for _, h := range d.Hits {
		n += hit + len(h.Rule) + len(h.Detail)
	}
	for _, h := range d.Headers {
		n += pair + len(h.Name) + len(h.Value)
	}
	for _, f := range d.Facts {
		n += pair + len(f.Name) + len(f.Value)
	}
	return n
}

// replaceWord replaces each word in b by c, in place.
func replaceWord(b []byte, word string, c byte) []byte {
	w := []byte(word) // once: a long one is an allocation each time
	i := bytes.Index(b, w)
	if i < 0 {
		return b
	}
	out := b[:i]
	for i >= 0 {
		out = append(out, c)
		b = b[i+len(w):]
		if i = bytes.Index(b, w); i >= 0 {
			out = append(out, b[:i]...)
		}
	}
	return append(out, b...)
}

// decodeDetails reads details as encode or, for older rows, JSON wrote
// them; r is the row's columns, as encode took them. What it cannot
// read is left out: the verdict still lists.
func decodeDetails(s string, r *detailsRow) Details {
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
				b.WriteString(r.mailFrom)
			case c == wordDomain:
				b.WriteString(r.domain)
			case c == wordIP:
				b.WriteString(r.ip)
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
		case 'T':
			if fields != "" {
				if _, stage, result, ok := r.stageResult(fields[0], ""); ok {
					d.Stages = append(d.Stages, StageResult{Stage: stage, Result: result, Reason: fields[1:]})
				}
			}
		case 'H':
			w, _ := strconv.Atoi(f2)
			d.Hits = append(d.Hits, Hit{Rule: f1, Weight: w, Detail: f3})
		case 'h':
			// The row's rule of the hit's place, "name=weight".
			if i := len(d.Hits); i < len(r.rules) {
				eq := strings.LastIndexByte(r.rules[i], '=')
				w, err := strconv.Atoi(r.rules[i][eq+1:])
				if eq >= 0 && err == nil {
					d.Hits = append(d.Hits, Hit{Rule: r.rules[i][:eq], Weight: w, Detail: fields})
				}
			}
		case 'V':
			st := fields
			if st == "" {
				st = r.stage
			}
			d.Headers = append(d.Headers, Header{Name: verdictHeader, Value: r.verdict + " (action=" + r.action + "; stage=" + st + ")"})
		case 'R':
			rules := r.rulesText
			if rules == "" {
				rules = "none"
			}
			d.Headers = append(d.Headers, Header{Name: scoreHeader, Value: strconv.Itoa(r.score) + " (" + rules + ")"})
		case 'A':
			d.Headers = append(d.Headers, Header{Name: f1, Value: tail})
		case 'F':
			d.Facts = append(d.Facts, Fact{Name: f1, Value: tail})
		}
	}
	return d
}
