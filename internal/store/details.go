package store

import (
	"encoding/json"
	"strconv"
	"strings"
)

// A verdict's details are kept in a compact text form written without
// reflection: detailsV2, then one item a kind letter, its fields and
// detailsEnd, the fields separated by detailsSep. bounded turns every
// control character of a verdict into a space, so neither separator can
// occur in a value. Kinds: S a stage (stage, result, reason), H a hit
// (rule, weight in decimal, detail), A a header added (name, value), F
// a fact (name, value). Rows written before this form hold the details
// as JSON, which starts with "{" and is read as before. (encoding/json
// was a tenth of the cost of recording a verdict, and its field names a
// third of the octets kept.)
const (
	detailsV2  = "\x02"
	detailsSep = '\x1f' // ASCII unit separator
	detailsEnd = '\x1e' // ASCII record separator
)

// encode is d in the compact form, "" when d is empty. d must be
// bounded (bounded): its values hold no control characters.
func (d *Details) encode() string {
	if len(d.Stages) == 0 && len(d.Hits) == 0 && len(d.Headers) == 0 && len(d.Facts) == 0 {
		return ""
	}
	n := len(detailsV2)
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
	b = append(b, detailsV2...)
	for _, s := range d.Stages {
		b = append(append(append(append(append(append(append(b, 'S'), s.Stage...), detailsSep), s.Result...), detailsSep), s.Reason...), detailsEnd)
	}
	for _, h := range d.Hits {
		b = append(append(append(append(b, 'H'), h.Rule...), detailsSep), strconv.Itoa(h.Weight)...)
		b = append(append(append(b, detailsSep), h.Detail...), detailsEnd)
	}
	for _, h := range d.Headers {
		b = append(append(append(append(append(b, 'A'), h.Name...), detailsSep), h.Value...), detailsEnd)
	}
	for _, f := range d.Facts {
		b = append(append(append(append(append(b, 'F'), f.Name...), detailsSep), f.Value...), detailsEnd)
	}
	return string(b)
}

// decodeDetails reads details as encode or, for older rows, JSON wrote
// them. What it cannot read is left out: the verdict still lists.
func decodeDetails(s string) Details {
	var d Details
	if strings.HasPrefix(s, "{") {
		_ = json.Unmarshal([]byte(s), &d)
		return d
	}
	rest, ok := strings.CutPrefix(s, detailsV2)
	if !ok {
		return d
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
