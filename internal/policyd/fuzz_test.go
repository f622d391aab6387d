package policyd

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReadRequest: any byte stream yields requests, ErrMalformed, or an
// I/O error; never a panic, and never a request without its type check.
func FuzzReadRequest(f *testing.F) {
	f.Add(request("127.0.0.2", "mail.example.test", "a@example.test", "1.1") + "\n\n")
	f.Add("request=smtpd_access_policy\r\nclient_address=::1\r\n\r\n\n\nrequest=smtpd_access_policy\n\n")
	f.Add("=\n\n")
	f.Add("novalue\n")
	f.Fuzz(func(t *testing.T, in string) {
		r := NewReader(strings.NewReader(in))
		for range 100 {
			req, err := ReadRequest(r)
			if err == nil && req["request"] != "smtpd_access_policy" {
				t.Fatalf("accepted request of type %q", req["request"])
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				return
			}
			if errors.Is(err, io.EOF) {
				return
			}
		}
	})
}
