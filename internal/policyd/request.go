// Package policyd is a Postfix policy delegation server
// (https://www.postfix.org/SMTPD_POLICY_README.html) that checks SPF and
// answers as postfix-policyd-spf-python does, so it can take its place in
// main.cf: the same reject policies, the same Received-SPF header.
package policyd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Request is one policy request: the attribute lines Postfix sends, up to
// the empty line.
type Request map[string]string

// Limits on a request, far above what Postfix sends, so a misbehaving
// client cannot make the server hold unbounded memory. A line must fit the
// reader's buffer: NewReader gives one of MaxLineLength bytes.
const (
	MaxLineLength = 8192
	maxAttributes = 128
)

// NewReader returns a reader sized for ReadRequest's line limit.
func NewReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, MaxLineLength) }

// ErrMalformed marks a request that does not follow the protocol. The
// request was read to its end, so the connection can go on.
var ErrMalformed = errors.New("malformed policy request")

// ReadRequest reads one request. It returns io.EOF at a clean end of the
// connection; an error wrapping ErrMalformed for a request whose lines are
// not name=value (the request is consumed, the caller answers DUNNO); other
// errors mean the connection is unusable.
func ReadRequest(r *bufio.Reader) (Request, error) {
	req := make(Request, 16)
	var bad error
	lines := 0
	for {
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, io.EOF) && lines > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			if lines == 0 {
				continue // stray empty line between requests
			}
			break
		}
		lines++
		name, value, ok := bytes.Cut(line, []byte("="))
		switch {
		case bad != nil:
		case !ok || len(name) == 0:
			bad = fmt.Errorf("%w: line %d has no name=value: %.60q", ErrMalformed, lines, line)
		case len(req) >= maxAttributes:
			bad = fmt.Errorf("%w: more than %d attributes", ErrMalformed, maxAttributes)
		default:
			req[attrName(name)] = string(value)
		}
	}
	if bad != nil {
		return nil, bad
	}
	if req["request"] != "smtpd_access_policy" {
		return req, fmt.Errorf("%w: request=%q, want smtpd_access_policy", ErrMalformed, req["request"])
	}
	return req, nil
}

// attrName returns the attribute names Postfix always sends as constants,
// sparing an allocation per line; others are copied.
func attrName(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case "request":
		return "request"
	case "protocol_state":
		return "protocol_state"
	case "protocol_name":
		return "protocol_name"
	case "helo_name":
		return "helo_name"
	case "queue_id":
		return "queue_id"
	case "sender":
		return "sender"
	case "recipient":
		return "recipient"
	case "recipient_count":
		return "recipient_count"
	case "client_address":
		return "client_address"
	case "client_name":
		return "client_name"
	case "reverse_client_name":
		return "reverse_client_name"
	case "instance":
		return "instance"
	}
	return string(b)
}

// readLine reads one LF-terminated line (CR stripped) of bounded length.
// The slice is valid until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("policy request line longer than %d bytes", r.Size())
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
