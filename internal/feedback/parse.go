package feedback

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"path"
	"strings"
)

// Limits against archive and XML bombs (RFC 9990 §7.1). Real reports are
// small: a record is 450 to 700 octets of XML (Google's, and ours with one
// DKIM result), and Google's largest reports have some thousands of
// records, a few MB. 20,000 records in 20 MB of XML (1,000 octets a
// record) is several times what any reporter sends, yet bounds what one
// hostile report costs: the XML is read as a stream, never whole, and
// only the records are kept (about 1 KB of memory each).
const (
	MaxXMLSize  = 20 << 20 // octets of XML after decompression, per report
	MaxZipFiles = 16       // members of a zip archive
	MaxRecords  = 20_000   // <record>s in one report
	// MaxCount bounds one record's <count>: 2^32 messages from one source
	// in one period is more than any real one, and with MaxRecords it
	// keeps sums of counts far from overflowing an int64.
	MaxCount = 1 << 32
	// MaxDepth bounds element nesting; a report needs 5 levels.
	MaxDepth = 32
	// MaxElements bounds the start tags of one report, unknown ones
	// included (a record has about 20).
	MaxElements = 50 * MaxRecords
	// MaxRecordElements bounds the elements inside one child of
	// <feedback>: a record has about 20, plus 5 a DKIM result (our own
	// tests report a message with 120 signatures).
	MaxRecordElements = 1024
	// MaxDKIMResults are kept of one record's DKIM results; the rest are
	// counted (AuthResults.MoreDKIM).
	MaxDKIMResults = 32
	// MaxToken bounds one token: a tag with its attributes, a text, a
	// comment. Report values are short.
	MaxToken = 64 << 10
)

// Per message, over all its report attachments.
const (
	MaxAttachments = 4          // report parts read from one message
	MaxMessageXML  = MaxXMLSize // octets of XML, all attachments together
	MaxMessage     = 32 << 20   // octets of a message read for reports
)

// ErrNotReport marks data that is not an aggregate report at all.
var ErrNotReport = errors.New("not a DMARC aggregate report")

// ErrLimit marks a report refused for its size or shape: too much XML,
// too deep, too many records, elements or archive members.
var ErrLimit = errors.New("over a limit")

// limits are the bounds of one parse; the fuzz targets and tests use
// small ones so that they reach them.
type limits struct {
	xml                          int64
	records, depth, elements     int
	recordElements, token, files int
}

func defaultLimits() limits {
	return limits{xml: MaxXMLSize, records: MaxRecords, depth: MaxDepth, elements: MaxElements,
		recordElements: MaxRecordElements, token: MaxToken, files: MaxZipFiles}
}

// Parse reads an aggregate report: gzip, zip or plain XML, RFC 9990 or
// RFC 7489. It returns what it could read together with an error when
// the report is malformed or over a limit, so that the caller can keep
// it, flagged.
func Parse(data []byte) (*Feedback, error) {
	f, _, err := parse(data, defaultLimits())
	return f, err
}

// Budget is what one message may still spend on its reports: the XML
// octets and the number of documents, over all its attachments.
type Budget struct {
	XML         int64
	Attachments int
}

// MessageBudget is the budget of one report message.
func MessageBudget() Budget { return Budget{XML: MaxMessageXML, Attachments: MaxAttachments} }

// Parse is Parse within the budget, which it charges with the XML read.
func (b *Budget) Parse(data []byte) (*Feedback, error) {
	if b.Attachments <= 0 {
		return nil, fmt.Errorf("feedback: more than %d reports in one message: %w", MaxAttachments, ErrLimit)
	}
	b.Attachments--
	lim := defaultLimits()
	lim.xml = min(lim.xml, b.XML)
	f, n, err := parse(data, lim)
	b.XML -= n
	return f, err
}

// parse reads a report within lim and says how many octets of XML it read.
func parse(data []byte, lim limits) (*Feedback, int64, error) {
	body, err := decompress(data, lim.files)
	if err != nil {
		return nil, 0, err
	}
	defer body.Close()
	in := &limitedReader{r: bufio.NewReader(body), left: lim.xml, limit: lim.xml}
	raw := xml.NewDecoder(in)
	// encoding/xml expands no DTD entities, so billion-laughs documents
	// fail here instead of growing.
	raw.Strict = true
	tr := &tokenLimiter{d: raw, in: in, lim: lim}
	dec := xml.NewTokenDecoder(tr)
	f, err := decode(dec, lim)
	return f, in.limit - in.left, err
}

// decode walks <feedback> token by token: the children it knows are
// decoded one at a time, the others skipped without being built.
func decode(dec *xml.Decoder, lim limits) (*Feedback, error) {
	var root xml.StartElement
	for {
		t, err := dec.Token()
		if err == io.EOF {
			return nil, fmt.Errorf("feedback: XML: no root element: %w", ErrNotReport)
		}
		if err != nil {
			return nil, fmt.Errorf("feedback: XML: %w", err)
		}
		if se, ok := t.(xml.StartElement); ok {
			root = se
			break
		}
	}
	if root.Name.Local != "feedback" {
		return nil, fmt.Errorf("feedback: root element %q: %w", root.Name.Local, ErrNotReport)
	}
	f := &Feedback{XMLName: root.Name}
	for {
		t, err := dec.Token()
		if err != nil {
			if errors.Is(err, ErrLimit) {
				f.Records = nil // a partial list would be counted as the whole
				return f, fmt.Errorf("feedback: %w", err)
			}
			return nil, fmt.Errorf("feedback: XML: %w", err)
		}
		var se xml.StartElement
		switch t := t.(type) {
		case xml.EndElement:
			if ns := f.XMLName.Space; ns != "" && ns != Namespace {
				return f, fmt.Errorf("feedback: unknown namespace %q", ns)
			}
			return f, f.Validate()
		case xml.StartElement:
			se = t
		default:
			continue
		}
		switch se.Name.Local {
		case "version":
			err = dec.DecodeElement(&f.Version, &se)
		case "report_metadata":
			err = dec.DecodeElement(&f.Metadata, &se)
		case "policy_published":
			err = dec.DecodeElement(&f.PolicyPublished, &se)
		case "record":
			if len(f.Records) >= lim.records {
				f.Records = nil
				return f, fmt.Errorf("feedback: more than %d records, not read further: %w", lim.records, ErrLimit)
			}
			var r Record
			if err = dec.DecodeElement(&r, &se); err == nil {
				f.Records = append(f.Records, r)
			}
		default: // extension and whatever a later version adds
			err = dec.Skip()
		}
		if errors.Is(err, ErrLimit) {
			f.Records = nil
			return f, fmt.Errorf("feedback: %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("feedback: XML: %w", err)
		}
	}
}

// tokenLimiter hands the raw tokens of d on, counting: it refuses a
// document nested too deep or with too many elements before the decoder
// above it keeps anything of them, so that what is kept stays bounded.
type tokenLimiter struct {
	d        *xml.Decoder
	in       *limitedReader
	lim      limits
	depth    int
	elements int
	inChild  int // elements inside the current child of the root
}

func (l *tokenLimiter) Token() (xml.Token, error) {
	l.in.token, l.in.maxToken = l.lim.token, l.lim.token
	t, err := l.d.RawToken()
	if err != nil {
		return t, err
	}
	switch t.(type) {
	case xml.StartElement:
		l.depth++
		l.elements++
		switch {
		case l.depth > l.lim.depth:
			return nil, fmt.Errorf("elements nested more than %d deep: %w", l.lim.depth, ErrLimit)
		case l.elements > l.lim.elements:
			return nil, fmt.Errorf("more than %d elements: %w", l.lim.elements, ErrLimit)
		case l.depth == 2:
			l.inChild = 0
		case l.depth > 2:
			if l.inChild++; l.inChild > l.lim.recordElements {
				return nil, fmt.Errorf("more than %d elements in one <record>: %w", l.lim.recordElements, ErrLimit)
			}
		}
	case xml.EndElement:
		l.depth--
	}
	return t, nil
}

// limitedReader is the decompressed XML, read byte by byte by the
// decoder: it stops at the document's limit and at the token's.
type limitedReader struct {
	r        *bufio.Reader
	left     int64 // octets the document may still take
	limit    int64
	token    int // octets the current token may still take
	maxToken int
}

func (r *limitedReader) ReadByte() (byte, error) {
	if r.left <= 0 {
		return 0, fmt.Errorf("more than %d bytes of XML: %w", r.limit, ErrLimit)
	}
	if r.token <= 0 {
		return 0, fmt.Errorf("a token longer than %d bytes: %w", r.maxToken, ErrLimit)
	}
	b, err := r.r.ReadByte()
	if err == nil {
		r.left--
		r.token--
	}
	return b, err
}

// Read is there for io.Reader; the decoder reads through ReadByte.
func (r *limitedReader) Read(p []byte) (int, error) {
	for i := range p {
		b, err := r.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = b
	}
	return len(p), nil
}

// decompress undoes gzip or zip (the first XML file inside), by magic
// number, and returns a stream of the XML.
func decompress(data []byte, maxFiles int) (io.ReadCloser, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("feedback: gzip: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		// archive/zip builds a File for every central directory header
		// before we can count them, and each begins with this signature:
		// counting it bounds the archive's members from above.
		if n := bytes.Count(data, []byte("PK\x01\x02")); n > maxFiles {
			return nil, fmt.Errorf("feedback: zip: more than %d members: %w", maxFiles, ErrLimit)
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("feedback: zip: %w", err)
		}
		for _, f := range zr.File {
			if !strings.HasSuffix(strings.ToLower(f.Name), ".xml") {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				// The name is the sender's: quoted, so that it cannot
				// reach a terminal as escape sequences.
				return nil, fmt.Errorf("feedback: zip: %q: %w", f.Name, err)
			}
			return rc, nil
		}
		return nil, fmt.Errorf("feedback: zip holds no .xml file: %w", ErrNotReport)
	}
	trimmed := bytes.TrimLeft(data, "\ufeff \t\r\n")
	if !bytes.HasPrefix(trimmed, []byte("<")) {
		return nil, fmt.Errorf("feedback: neither gzip, zip nor XML: %w", ErrNotReport)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Validate checks what the schema requires and what a consumer relies
// on: the first problem found is returned.
func (f *Feedback) Validate() error {
	m := f.Metadata
	switch {
	case strings.TrimSpace(m.OrgName) == "":
		return errors.New("feedback: no org_name")
	case strings.TrimSpace(m.ReportID) == "":
		return errors.New("feedback: no report_id")
	case m.DateRange.Begin <= 0 || m.DateRange.End < m.DateRange.Begin:
		return fmt.Errorf("feedback: date_range %d-%d", m.DateRange.Begin, m.DateRange.End)
	case strings.TrimSpace(f.PolicyPublished.Domain) == "":
		return errors.New("feedback: no policy_published domain")
	case len(f.Records) == 0:
		return errors.New("feedback: no record")
	case len(f.Records) > MaxRecords:
		return fmt.Errorf("feedback: %d records", len(f.Records))
	}
	for i, r := range f.Records {
		if _, err := netip.ParseAddr(strings.TrimSpace(r.Row.SourceIP)); err != nil {
			return fmt.Errorf("feedback: record %d: source_ip %q", i+1, r.Row.SourceIP)
		}
		if r.Row.Count < 0 || r.Row.Count > MaxCount {
			return fmt.Errorf("feedback: record %d: count %d not in 0-%d", i+1, r.Row.Count, int64(MaxCount))
		}
		switch r.Row.PolicyEvaluated.Disposition {
		case "none", "pass", "quarantine", "reject":
		default:
			return fmt.Errorf("feedback: record %d: disposition %q", i+1, r.Row.PolicyEvaluated.Disposition)
		}
		if strings.TrimSpace(r.Identifiers.HeaderFrom) == "" {
			return fmt.Errorf("feedback: record %d: no header_from", i+1)
		}
	}
	return nil
}

// Attachment is a report file found in a message.
type Attachment struct {
	Filename string
	Data     []byte
}

// Attachments returns the parts of a mail message that may hold a
// report (by media type or file name), decoded; the message itself when
// it is a single such part.
func Attachments(r io.Reader) ([]Attachment, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(&headerLimit{r: io.LimitReader(r, MaxMessage)}))
	if err != nil {
		return nil, fmt.Errorf("feedback: message: %w", err)
	}
	var out []Attachment
	err = walk(msg.Header, msg.Body, 0, &out)
	return out, err
}

// maxHeader bounds a report message's header section: net/mail keeps
// every field, and reporters' headers are a few KB.
const maxHeader = 256 << 10

// headerLimit fails a read that goes past maxHeader octets before the
// empty line that ends the header section.
type headerLimit struct {
	r       io.Reader
	n       int
	lineLen int
	done    bool
	err     error // sticky: bufio hands an error on once
}

func (h *headerLimit) Read(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n, err := h.r.Read(p)
	if h.done {
		return n, err
	}
	for i, c := range p[:n] {
		switch c {
		case '\n':
			if h.lineLen == 0 {
				h.done = true
				return n, err
			}
			h.lineLen = 0
		case '\r':
		default:
			h.lineLen++
		}
		if h.n+i >= maxHeader {
			h.err = fmt.Errorf("feedback: header section over %d octets: %w", maxHeader, ErrLimit)
			return 0, h.err
		}
	}
	h.n += n
	return n, err
}

type header interface{ Get(string) string }

func walk(h header, body io.Reader, depth int, out *[]Attachment) error {
	if depth > 8 {
		return errors.New("feedback: MIME nested too deep")
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("feedback: MIME: %w", err)
			}
			if err := walk(p.Header, p, depth+1, out); err != nil {
				return err
			}
		}
	}
	name := params["name"]
	if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
		name = dp["filename"]
	}
	if !reportPart(mt, name) {
		return nil
	}
	if len(*out) >= MaxAttachments {
		return fmt.Errorf("feedback: more than %d report attachments, the rest not read: %w", MaxAttachments, ErrLimit)
	}
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body) // line breaks are skipped
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxMessage))
	if err != nil {
		return fmt.Errorf("feedback: %q: %w", name, err)
	}
	*out = append(*out, Attachment{Filename: path.Base(name), Data: data})
	return nil
}

func reportPart(mediaType, name string) bool {
	switch mediaType {
	case "application/gzip", "application/x-gzip", "application/zip", "application/x-zip-compressed", "application/x-zip",
		"text/xml", "application/xml":
		return true
	}
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".xml") || strings.HasSuffix(n, ".xml.gz") || strings.HasSuffix(n, ".gz") || strings.HasSuffix(n, ".zip")
}
