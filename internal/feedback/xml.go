// Package feedback reads and writes DMARC aggregate report documents: the
// XML of RFC 9990 (and RFC 7489's older form, read only), compressed or
// not, and the report attachments of a mail message. It knows nothing of
// where reports come from or go.
package feedback

import (
	"encoding/xml"
	"math"
)

// Namespace is RFC 9990's XML namespace; RFC 7489 reports have none.
const Namespace = "urn:ietf:params:xml:ns:dmarc-2.0"

// Feedback is an aggregate report, RFC 9990 §3.1 (the schema is
// testdata/dmarc-aggregate-report.xsd). Elements are in schema order.
type Feedback struct {
	XMLName xml.Name `xml:"feedback"`
	// Xmlns declares the namespace when writing (encoding/xml would
	// otherwise let the field tag's empty namespace win).
	Xmlns           string          `xml:"xmlns,attr,omitempty"`
	Version         string          `xml:"version,omitempty"`
	Metadata        Metadata        `xml:"report_metadata"`
	PolicyPublished PolicyPublished `xml:"policy_published"`
	Records         []Record        `xml:"record"`
}

// Metadata is <report_metadata>.
type Metadata struct {
	OrgName          string    `xml:"org_name"`
	Email            string    `xml:"email"`
	ExtraContactInfo string    `xml:"extra_contact_info,omitempty"`
	ReportID         string    `xml:"report_id"`
	DateRange        DateRange `xml:"date_range"`
	Error            string    `xml:"error,omitempty"`
	Generator        string    `xml:"generator,omitempty"`
}

// DateRange is the reporting period in seconds since the epoch, UTC.
type DateRange struct {
	Begin int64 `xml:"begin"`
	End   int64 `xml:"end"`
}

// PolicyPublished is the DMARC record that applied, defaults filled in.
type PolicyPublished struct {
	Domain          string `xml:"domain"`
	DiscoveryMethod string `xml:"discovery_method,omitempty"`
	P               string `xml:"p"`
	SP              string `xml:"sp,omitempty"`
	NP              string `xml:"np,omitempty"`
	FO              string `xml:"fo,omitempty"`
	ADKIM           string `xml:"adkim,omitempty"`
	ASPF            string `xml:"aspf,omitempty"`
	Testing         string `xml:"testing,omitempty"`
	// Pct is RFC 7489's; read from old reports, never written.
	Pct string `xml:"pct,omitempty"`
}

// Record is one group of messages with the same source and results.
type Record struct {
	Row         Row         `xml:"row"`
	Identifiers Identifiers `xml:"identifiers"`
	AuthResults AuthResults `xml:"auth_results"`
}

// Row is <row>.
type Row struct {
	SourceIP        string          `xml:"source_ip"`
	Count           int64           `xml:"count"`
	PolicyEvaluated PolicyEvaluated `xml:"policy_evaluated"`
}

// PolicyEvaluated is the DMARC outcome; Reasons explain a disposition
// that differs from the published policy.
type PolicyEvaluated struct {
	Disposition string   `xml:"disposition"`
	DKIM        string   `xml:"dkim"`
	SPF         string   `xml:"spf"`
	Reasons     []Reason `xml:"reason"`
}

// Reason is a policy override reason (RFC 9990 §3.1.1.9).
type Reason struct {
	Type    string `xml:"type"`
	Comment string `xml:"comment,omitempty"`
}

// Identifiers are the domains of the messages.
type Identifiers struct {
	HeaderFrom   string  `xml:"header_from"`
	EnvelopeFrom *string `xml:"envelope_from"` // present but empty for a null reverse-path
	EnvelopeTo   string  `xml:"envelope_to,omitempty"`
}

// AuthResults are the DKIM and SPF results, uninterpreted.
type AuthResults struct {
	DKIM []DKIMResult `xml:"dkim"`
	SPF  *SPFResult   `xml:"spf"`
	// MoreDKIM counts the DKIM results read past MaxDKIMResults and not
	// kept.
	MoreDKIM int `xml:"-"`
}

// UnmarshalXML keeps at most MaxDKIMResults DKIM results: a message may
// carry any number of signatures, and a report's records are kept in
// memory until stored.
func (a *AuthResults) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for {
		t, err := d.Token()
		if err != nil {
			return err
		}
		var se xml.StartElement
		switch t := t.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			se = t
		default:
			continue
		}
		switch {
		case se.Name.Local == "dkim" && len(a.DKIM) < MaxDKIMResults:
			var r DKIMResult
			if err := d.DecodeElement(&r, &se); err != nil {
				return err
			}
			a.DKIM = append(a.DKIM, r)
		case se.Name.Local == "dkim":
			a.MoreDKIM++
			err = d.Skip()
		case se.Name.Local == "spf":
			var r SPFResult
			if err := d.DecodeElement(&r, &se); err != nil {
				return err
			}
			a.SPF = &r
		default:
			err = d.Skip()
		}
		if err != nil {
			return err
		}
	}
}

// DKIMResult is one signature's result.
type DKIMResult struct {
	Domain      string `xml:"domain"`
	Selector    string `xml:"selector"`
	Result      string `xml:"result"`
	HumanResult string `xml:"human_result,omitempty"`
}

// SPFResult is the MAIL FROM check's result.
type SPFResult struct {
	Domain      string `xml:"domain"`
	Scope       string `xml:"scope,omitempty"`
	Result      string `xml:"result"`
	HumanResult string `xml:"human_result,omitempty"`
}

// Messages is the total count over the records, clamped to MaxCount per
// record and saturating instead of overflowing: a report's counts are
// the sender's to choose.
func (f *Feedback) Messages() int64 {
	var n int64
	for _, r := range f.Records {
		c := min(max(r.Row.Count, 0), MaxCount)
		if n > math.MaxInt64-c {
			return math.MaxInt64
		}
		n += c
	}
	return n
}

// Marshal renders a report as an XML document in RFC 9990's namespace.
func Marshal(f *Feedback) ([]byte, error) {
	f.Xmlns = Namespace
	out, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}
