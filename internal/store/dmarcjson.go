package store

import (
	"encoding/json"
	"strconv"

	"mailwall/internal/dmarc"
)

// The dmarc_rows columns record and published are dmarc.Row and
// dmarc.PublishedPolicy as JSON that encoding/json reads back, written
// here without reflection (encoding/json was a tenth of recording a
// verdict). Reports group equal rows by the record's text, so the text
// is canonical: json.Marshal's, field order and escapes included, but
// for the fields left out when zero (which read back as zero): the
// record's Published (always zero there: the published column has it),
// its empty strings and nil lists. The migration that brought this form
// rewrote the rows not yet reported to it (TestB24DMARCMigration), so
// that a report's rows still group as one. published, read from one row
// and not grouped, leaves out every zero field.

// appendRowJSON appends r (but for its Published) in the record form;
// ip is r.SourceIP as MarshalText writes it.
func appendRowJSON(b []byte, r *dmarc.Row, ip string) []byte {
	b = append(b, `{"SourceIP":`...)
	b = appendJSONString(b, ip)
	b = appendJSONField(b, "HeaderFrom", r.HeaderFrom)
	b = appendJSONField(b, "EnvelopeFrom", r.EnvelopeFrom)
	b = appendJSONField(b, "EnvelopeTo", r.EnvelopeTo)
	b = appendJSONField(b, "PolicyDomain", r.PolicyDomain)
	b = appendJSONField(b, "Disposition", string(r.Disposition))
	b = appendJSONField(b, "DKIMAligned", r.DKIMAligned)
	b = appendJSONField(b, "SPFAligned", r.SPFAligned)
	if r.DKIM != nil {
		b = append(b, `,"DKIM":[`...)
		for i, d := range r.DKIM {
			if i > 0 {
				b = append(b, ',')
			}
			// Whole, as json.Marshal writes it: rows of the older form
			// were rewritten by their top-level fields only.
			b = append(b, `{"Domain":`...)
			b = appendJSONString(b, d.Domain)
			b = append(b, `,"Selector":`...)
			b = appendJSONString(b, d.Selector)
			b = append(b, `,"Result":`...)
			b = appendJSONString(b, d.Result)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendJSONField(b, "SPFDomain", r.SPFDomain)
	b = appendJSONField(b, "SPFScope", r.SPFScope)
	b = appendJSONField(b, "SPFResult", r.SPFResult)
	if r.Reasons != nil {
		b = append(b, `,"Reasons":[`...)
		for i, s := range r.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendPublishedJSON appends p in the published form: its Domain, then
// the fields not zero.
func appendPublishedJSON(b []byte, p *dmarc.PublishedPolicy) []byte {
	b = append(b, `{"Domain":`...)
	b = appendJSONString(b, p.Domain)
	b = appendJSONField(b, "P", string(p.P))
	b = appendJSONField(b, "SP", string(p.SP))
	b = appendJSONField(b, "NP", string(p.NP))
	b = appendJSONField(b, "ADKIM", p.ADKIM)
	b = appendJSONField(b, "ASPF", p.ASPF)
	if p.Testing {
		b = append(b, `,"Testing":true`...)
	}
	b = appendJSONField(b, "PSD", p.PSD)
	if p.Pct != 0 {
		b = append(b, `,"Pct":`...)
		b = strconv.AppendInt(b, int64(p.Pct), 10)
	}
	b = appendJSONField(b, "DiscoveryMethod", p.DiscoveryMethod)
	b = appendJSONField(b, "FailureReportingFO", p.FailureReportingFO)
	return append(b, '}')
}

// appendJSONField appends ,"name":"s", or nothing when s is empty.
func appendJSONField(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	b = append(append(append(append(b, ',', '"'), name...), '"'), ':')
	return appendJSONString(b, s)
}

// appendJSONString appends s quoted as encoding/json quotes it: printable
// ASCII but for its escapes is copied; anything else (rare: domains are
// A-labels, results keywords) is left to encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // a string always marshals
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}
