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

// Limits against archive and XML bombs (RFC 9990 §7.1).
const (
	MaxXMLSize  = 64 << 20 // bytes of XML after decompression
	MaxZipFiles = 16
	MaxRecords  = 1_000_000
)

// ErrNotReport marks data that is not an aggregate report at all.
var ErrNotReport = errors.New("not a DMARC aggregate report")

// Parse reads an aggregate report: gzip, zip or plain XML, RFC 9990 or
// RFC 7489. It returns what it could read together with an error when
// the report is malformed, so that the caller can keep it, flagged.
func Parse(data []byte) (*Feedback, error) { return parse(data, MaxXMLSize) }

// parse is Parse with a size limit of its own (the fuzz targets use a
// small one: decompressing 64 MB takes seconds under instrumentation).
func parse(data []byte, limit int) (*Feedback, error) {
	body, err := decompress(data, limit)
	if err != nil {
		return nil, err
	}
	var f Feedback
	dec := xml.NewDecoder(bytes.NewReader(body))
	// encoding/xml expands no DTD entities, so billion-laughs documents
	// fail here instead of growing.
	dec.Strict = true
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("feedback: XML: %w", err)
	}
	if f.XMLName.Local != "feedback" {
		return nil, fmt.Errorf("feedback: root element %q: %w", f.XMLName.Local, ErrNotReport)
	}
	if ns := f.XMLName.Space; ns != "" && ns != Namespace {
		return &f, fmt.Errorf("feedback: unknown namespace %q", ns)
	}
	return &f, f.Validate()
}

// decompress undoes gzip or zip (one XML file inside), by magic number.
func decompress(data []byte, limit int) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("feedback: gzip: %w", err)
		}
		return readLimited(zr, "gzip", limit)
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("feedback: zip: %w", err)
		}
		if len(zr.File) > MaxZipFiles {
			return nil, fmt.Errorf("feedback: zip: %d files", len(zr.File))
		}
		for _, f := range zr.File {
			if !strings.HasSuffix(strings.ToLower(f.Name), ".xml") {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				return nil, fmt.Errorf("feedback: zip: %s: %w", f.Name, err)
			}
			defer rc.Close()
			return readLimited(rc, "zip", limit)
		}
		return nil, fmt.Errorf("feedback: zip holds no .xml file: %w", ErrNotReport)
	}
	trimmed := bytes.TrimLeft(data, "\ufeff \t\r\n")
	if !bytes.HasPrefix(trimmed, []byte("<")) {
		return nil, fmt.Errorf("feedback: neither gzip, zip nor XML: %w", ErrNotReport)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("feedback: XML larger than %d bytes", limit)
	}
	return data, nil
}

func readLimited(r io.Reader, what string, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("feedback: %s: %w", what, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("feedback: %s: more than %d bytes of XML", what, limit)
	}
	return b, nil
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
		if r.Row.Count < 0 {
			return fmt.Errorf("feedback: record %d: count %d", i+1, r.Row.Count)
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

// maxMessage bounds a report message read from mail.
const maxMessage = 50 << 20

// Attachments returns the parts of a mail message that may hold a
// report (by media type or file name), decoded; the message itself when
// it is a single such part.
func Attachments(r io.Reader) ([]Attachment, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(io.LimitReader(r, maxMessage)))
	if err != nil {
		return nil, fmt.Errorf("feedback: message: %w", err)
	}
	var out []Attachment
	err = walk(msg.Header, msg.Body, 0, &out)
	return out, err
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
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body) // line breaks are skipped
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxMessage))
	if err != nil {
		return fmt.Errorf("feedback: %s: %w", name, err)
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
