// Package dkim signs and verifies DomainKeys Identified Mail signatures
// (RFC 6376) with rsa-sha256, ed25519-sha256 (RFC 8463) and, for
// verification only, when the verifier is told to accept it, and reported
// as weak, rsa-sha1 (RFC 8301 §3.1). Bodies are hashed as they stream by,
// so a message of any size costs constant memory; each signature gets its
// own result, named as RFC 8601 names them. A message's verification work
// is bounded: RSA keys of at most 4096 bits with e=65537, at most
// MaxSignedHeaders names in h=, fields selected through a HeaderIndex in
// linear time, the first MaxSignatures signatures, and a Budget.
package dkim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Field is one header field as received: Raw holds the whole field, name,
// colon, value and folded continuation lines, each line ending in CRLF.
type Field struct {
	Name string // as written, without trailing white space
	Raw  string
}

// Value returns the field body after the colon, unfolded lines included,
// without the final CRLF.
func (f Field) Value() string {
	_, v, _ := strings.Cut(f.Raw, ":")
	return strings.TrimSuffix(v, "\r\n")
}

// NewField makes a field from a name and a value as a milter or an API
// hands them over; folded lines may end in LF or CRLF.
func NewField(name, value string) Field {
	v := strings.ReplaceAll(value, "\r\n", "\n")
	v = strings.ReplaceAll(v, "\n", "\r\n")
	return Field{Name: name, Raw: name + ":" + v + "\r\n"}
}

// Limits on a message header: beyond them the message is not parsed.
const (
	maxHeaderBytes  = 1 << 20
	maxHeaderFields = 1000
)

// ErrHeaderTooLarge is returned for headers past the limits above.
var ErrHeaderTooLarge = errors.New("dkim: message header too large")

// ReadHeader reads the header fields of a message up to and including the
// empty line, leaving r at the start of the body. Bare LF line ends are
// taken as CRLF, as mail stored on disk often has them.
func ReadHeader(r *bufio.Reader) ([]Field, error) {
	var fields []Field
	var cur strings.Builder
	total := 0
	flush := func() error {
		if cur.Len() == 0 {
			return nil
		}
		raw := cur.String()
		cur.Reset()
		colon := strings.IndexByte(raw, ':')
		if colon <= 0 {
			return fmt.Errorf("dkim: malformed header line %.40q", raw)
		}
		fields = append(fields, Field{Name: strings.TrimRight(raw[:colon], " \t"), Raw: raw})
		if len(fields) > maxHeaderFields {
			return ErrHeaderTooLarge
		}
		return nil
	}
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A very long line: keep reading it whole.
			buf := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(buf) > maxHeaderBytes {
					return nil, ErrHeaderTooLarge
				}
				line, err = r.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		total += len(line)
		if total > maxHeaderBytes {
			return nil, ErrHeaderTooLarge
		}
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return fields, flush()
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			// The empty line that ends the header.
			return fields, flush()
		}
		if content[0] != ' ' && content[0] != '\t' {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		cur.Write(content)
		cur.WriteString("\r\n")
		if errors.Is(err, io.EOF) {
			return fields, flush()
		}
	}
}

// FieldsString joins fields back into a header block.
func FieldsString(fields []Field) string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f.Raw)
	}
	return b.String()
}
