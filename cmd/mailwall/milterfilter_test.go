package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/milter"
)

// TestMilterHeaderLimits: past max_header_fields or max_header_bytes the
// filter keeps no more fields (nor those it had), answers with the
// configured reply from then on, and never starts the pipeline, so the
// DKIM and ARC verifiers never see the header.
func TestMilterHeaderLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits headerLimits
		fields int
		value  string
		reply  string
	}{
		{"fields, reject", headerLimits{fields: 1000, bytes: 1 << 20}, 200_000, " x", "552 5.3.4 Message header has more than 1000 fields"},
		{"fields, tempfail", headerLimits{fields: 1000, bytes: 1 << 20, tempfail: true}, 1001, " x", "452 4.3.4 Message header has more than 1000 fields, try again later"},
		{"octets", headerLimits{fields: 1000, bytes: 1 << 20}, 200, " " + strings.Repeat("v", 10_000), "552 5.3.4 Message header exceeds 1048576 octets"},
		{"within", headerLimits{fields: 1000, bytes: 1 << 20}, 1000, " x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &milterFilter{log: slog.New(slog.DiscardHandler), limits: tc.limits}
			var m milter.Macros
			f.MailFrom("<a@example.test>", nil, &m)
			final := -1
			for i := range tc.fields {
				r := f.Header(fmt.Sprintf("X-F%d", i), tc.value)
				if len(f.fields) > tc.limits.fields {
					t.Fatalf("%d fields kept", len(f.fields))
				}
				if r.Final() {
					final = i
					break // the server calls the filter no more
				}
			}
			if tc.reply == "" {
				if final >= 0 || len(f.fields) != tc.fields {
					t.Fatalf("refused at field %d, kept %d, within the limits", final, len(f.fields))
				}
				return
			}
			if final < 0 || len(f.fields) != 0 {
				t.Fatalf("not refused (final at %d), or %d fields still kept", final, len(f.fields))
			}
			if r := f.EndOfHeaders(&m); r.String() != "reply "+tc.reply {
				t.Errorf("end of headers: %v", r)
			}
			if f.msg != nil {
				t.Error("the pipeline started")
			}
			if r := f.EndOfMessage(&m, nil); r.String() != "reply "+tc.reply {
				t.Errorf("end of message: %v, want %q", r, tc.reply)
			}
			f.EndOfMessageSent()
			// The next message on the connection starts afresh.
			f.MailFrom("<a@example.test>", nil, &m)
			if r := f.Header("Subject", " hello"); r.Final() || len(f.fields) != 1 {
				t.Errorf("next message: %v, %d fields", r, len(f.fields))
			}
		})
	}
}

// TestServeMilterLimits runs serve with small header and connection
// limits and checks the replies through its milter: the config reaches
// the filter and the server.
func TestServeMilterLimits(t *testing.T) {
	dns := labDNS(t)
	milterAddr := serveMilter(t, dns, "  max_header_fields: 50\n  too_many_headers: tempfail\n  handshake_timeout: 1s\n  max_connections_per_peer: 3\n", "")

	c := dialMilter(t, milterAddr)
	c.Connect("mail.example.test", netip.MustParseAddr("192.0.2.1"), 25)
	c.Helo("mail.example.test")
	c.Macro('M', "i", "4QiD9")
	c.Mail("<alice@example.test>")
	c.Rcpt("<bob@rcpt.test>")
	for i := range 5000 {
		c.Header(fmt.Sprintf("X-F%d", i), " x")
	}
	c.EndOfHeaders()
	c.Body([]byte("hello\r\n"))
	_, reply, err := c.EndOfMessage()
	if err != nil || reply.Text != "452 4.3.4 Message header has more than 50 fields, try again later" {
		t.Fatalf("5,000 fields: %v %v", reply, err)
	}

	// A second session and a connection that does not negotiate make
	// three from this address: a fourth is closed at once, the third
	// after the handshake timeout.
	c2, err := milter.Dial("tcp", milterAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	third, err := net.Dial("tcp", milterAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	start := time.Now()
	time.Sleep(50 * time.Millisecond) // the third accepted first
	fourth, err := net.Dial("tcp", milterAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer fourth.Close()
	for _, conn := range []net.Conn{third, fourth} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	if _, err := fourth.Read(make([]byte, 1)); err != io.EOF || time.Since(start) > 700*time.Millisecond {
		t.Errorf("a fourth connection from one address: %v after %v, want closed at once", err, time.Since(start))
	}
	if _, err := third.Read(make([]byte, 1)); err != io.EOF || time.Since(start) < 700*time.Millisecond || time.Since(start) > 4*time.Second {
		t.Errorf("an unnegotiated connection: %v after %v, want closed after 1 s", err, time.Since(start))
	}
}
