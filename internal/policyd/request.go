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
	"strings"
)

// Request is one policy request: the attribute lines Postfix sends, up to
// the empty line.
type Request map[string]string

// Limits on a request, far above what Postfix sends, so a misbehaving
// client cannot make the server hold unbounded memory.
const (
	maxLineLength = 8192
	maxAttributes = 128
)

// ErrMalformed marks a request that does not follow the protocol. The
// request was read to its end, so the connection can go on.
var ErrMalformed = errors.New("malformed policy request")

// ReadRequest reads one request. It returns io.EOF at a clean end of the
// connection; an error wrapping ErrMalformed for a request whose lines are
// not name=value (the request is consumed, the caller answers DUNNO); other
// errors mean the connection is unusable.
func ReadRequest(r *bufio.Reader) (Request, error) {
	req := Request{}
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
		if line == "" {
			if lines == 0 {
				continue // stray empty line between requests
			}
			break
		}
		lines++
		name, value, ok := strings.Cut(line, "=")
		switch {
		case bad != nil:
		case !ok || name == "":
			bad = fmt.Errorf("%w: line %d has no name=value: %.60q", ErrMalformed, lines, line)
		case len(req) >= maxAttributes:
			bad = fmt.Errorf("%w: more than %d attributes", ErrMalformed, maxAttributes)
		default:
			req[name] = value
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

// readLine reads one LF-terminated line (CR stripped) of bounded length.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		buf = append(buf, chunk...)
		if len(buf) > maxLineLength {
			return "", fmt.Errorf("policy request line longer than %d bytes", maxLineLength)
		}
		if !isPrefix {
			return string(bytes.TrimSuffix(buf, []byte("\r"))), nil
		}
	}
}
