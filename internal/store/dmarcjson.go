package store

import (
	"encoding/json"
	"strconv"

	"mailwall/internal/dmarc"
)

// The dmarc_rows columns record and published are dmarc.Row (its
// Published zero) and dmarc.PublishedPolicy as encoding/json writes them:
// reports group equal rows by the record's text, so the text must stay
// what it was for the rows already written. These write the same octets
// without reflection (encoding/json was a tenth of recording a verdict);
// TestB24DMARCJSON holds them to json.Marshal, field by field.

// appendRowJSON appends json.Marshal(r) with r.Published zero.
func appendRowJSON(b []byte, r *dmarc.Row) []byte {
	ip, _ := r.SourceIP.MarshalText()
	b = append(b, `{"SourceIP":`...)
	b = appendJSONString(b, string(ip))
	b = appendJSONField(b, "HeaderFrom", r.HeaderFrom)
	b = appendJSONField(b, "EnvelopeFrom", r.EnvelopeFrom)
	b = appendJSONField(b, "EnvelopeTo", r.EnvelopeTo)
	b = appendJSONField(b, "PolicyDomain", r.PolicyDomain)
	b = append(b, `,"Published":`...)
	b = appendPublishedJSON(b, &dmarc.PublishedPolicy{})
	b = appendJSONField(b, "Disposition", string(r.Disposition))
	b = appendJSONField(b, "DKIMAligned", r.DKIMAligned)
	b = appendJSONField(b, "SPFAligned", r.SPFAligned)
	b = append(b, `,"DKIM":`...)
	if r.DKIM == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, d := range r.DKIM {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"Domain":`...)
			b = appendJSONString(b, d.Domain)
			b = appendJSONField(b, "Selector", d.Selector)
			b = appendJSONField(b, "Result", d.Result)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendJSONField(b, "SPFDomain", r.SPFDomain)
	b = appendJSONField(b, "SPFScope", r.SPFScope)
	b = appendJSONField(b, "SPFResult", r.SPFResult)
	b = append(b, `,"Reasons":`...)
	if r.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
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

// appendPublishedJSON appends json.Marshal(p).
func appendPublishedJSON(b []byte, p *dmarc.PublishedPolicy) []byte {
	b = append(b, `{"Domain":`...)
	b = appendJSONString(b, p.Domain)
	b = appendJSONField(b, "P", string(p.P))
	b = appendJSONField(b, "SP", string(p.SP))
	b = appendJSONField(b, "NP", string(p.NP))
	b = appendJSONField(b, "ADKIM", p.ADKIM)
	b = appendJSONField(b, "ASPF", p.ASPF)
	b = append(b, `,"Testing":`...)
	b = strconv.AppendBool(b, p.Testing)
	b = appendJSONField(b, "PSD", p.PSD)
	b = append(b, `,"Pct":`...)
	b = strconv.AppendInt(b, int64(p.Pct), 10)
	b = appendJSONField(b, "DiscoveryMethod", p.DiscoveryMethod)
	b = appendJSONField(b, "FailureReportingFO", p.FailureReportingFO)
	return append(b, '}')
}

// appendJSONField appends ,"name":"s".
func appendJSONField(b []byte, name, s string) []byte {
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
