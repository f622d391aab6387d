// Package sendtest builds well-formed test messages (Date, Message-ID,
// MIME), signs them with DKIM when given a key, and sends them over SMTP
// from a chosen source address, keeping the whole dialogue so an admin sees
// every reply. Binding to 127.0.0.x lets one machine play several sending
// hosts.
package sendtest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"mailwall/internal/dkim"
)

// Message describes a test message.
type Message struct {
	From, To string // addresses, without angle brackets
	Subject  string
	Body     string // plain text; a default line when empty
	Date     time.Time
	// Signing, when Key is set: DKIM with d=Domain, s=Selector.
	Domain, Selector string
	Key              crypto.Signer
	// Bulk makes the message meet what Gmail, Yahoo and Outlook.com
	// ask of bulk mail (package domaincheck's sending checks): one-click
	// unsubscribe (RFC 8058: List-Unsubscribe with an https and a mailto
	// URI, List-Unsubscribe-Post), signed by the From domain. It needs
	// Key, and Domain the From address's domain.
	Bulk bool
	// Unsubscribe is the https URI for Bulk; "" makes one at the From
	// domain.
	Unsubscribe string
}

// Build returns the message in wire form (CRLF line ends), signed when m
// has a key.
func Build(m Message) (string, error) {
	if m.Date.IsZero() {
		m.Date = time.Now()
	}
	if m.Subject == "" {
		m.Subject = "mailwall send-test"
	}
	body := m.Body
	if body == "" {
		body = fmt.Sprintf("A test message from mailwall send-test, written %s.\n", m.Date.Format(time.RFC1123Z))
	}
	body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(body, "\r\n") {
		body += "\r\n"
	}
	id := make([]byte, 12)
	rand.Read(id)
	if m.Bulk {
		if m.Key == nil || !strings.EqualFold(m.Domain, domainOf(m.From)) {
			return "", fmt.Errorf("sendtest: bulk mail must be DKIM-signed by the From domain %s (a key, and d= that domain), for DMARC alignment", domainOf(m.From))
		}
		if m.Unsubscribe == "" {
			m.Unsubscribe = "https://" + domainOf(m.From) + "/unsubscribe?id=" + hex.EncodeToString(id)
		}
		if !strings.HasPrefix(strings.ToLower(m.Unsubscribe), "https://") || strings.ContainsAny(m.Unsubscribe, "<>, \r\n") {
			return "", fmt.Errorf("sendtest: unsubscribe URI %q: want https:// without spaces, commas or angle brackets (RFC 8058 §3.1)", m.Unsubscribe)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Date: %s\r\n", m.Date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: <%s>\r\n", m.From)
	fmt.Fprintf(&b, "To: <%s>\r\n", m.To)
	fmt.Fprintf(&b, "Subject: %s\r\n", m.Subject)
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), domainOf(m.From))
	if m.Bulk {
		// RFC 8058 §3.1; the signer's default h= covers both (§4).
		fmt.Fprintf(&b, "List-Unsubscribe: <%s>,\r\n <mailto:unsubscribe@%s?subject=unsubscribe>\r\n", m.Unsubscribe, domainOf(m.From))
		b.WriteString("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	if isASCII(body) {
		b.WriteString("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n")
	} else {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	msg := b.String()
	if m.Key == nil {
		return msg, nil
	}
	s := &dkim.Signer{Domain: m.Domain, Selector: m.Selector, Key: m.Key}
	sig, err := s.Sign(strings.NewReader(msg))
	if err != nil {
		return "", fmt.Errorf("sendtest: sign: %w", err)
	}
	return sig + msg, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Line is one line of the dialogue: sent by the client ("C") or the
// server ("S").
type Line struct {
	From string `json:"from"`
	Text string `json:"text"`
}

// Options says how to send.
type Options struct {
	Server   string     // host:port
	SourceIP netip.Addr // zero: the system's choice
	Helo     string
	// TLS: STARTTLS is used when the server offers it. InsecureTLS skips
	// certificate checks (a lab with a self-signed certificate);
	// NoTLS never starts TLS.
	InsecureTLS, NoTLS bool
	Timeout            time.Duration // the whole exchange; 0 means 60s
}

// Result is what the server said.
type Result struct {
	Dialogue []Line `json:"dialogue"`
	TLS      bool   `json:"tls"`
	// Code and Reply are the final reply to the message (after DATA's end)
	// or the reply that refused it.
	Code  int    `json:"code"`
	Reply string `json:"reply"`
}

// Accepted reports whether the server took the message.
func (r *Result) Accepted() bool { return r.Code/100 == 2 }

// Send delivers message from envelope sender from to rcpt. A refusal is not
// an error: it is in the Result. Errors are network and protocol failures.
func Send(ctx context.Context, o Options, from, rcpt, message string) (*Result, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	if o.SourceIP.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: o.SourceIP.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", o.Server)
	if err != nil {
		return nil, fmt.Errorf("sendtest: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	s := &session{res: &Result{}, text: textproto.NewConn(conn)}
	err = s.run(o, conn, from, rcpt, message)
	var refused *textproto.Error
	if errors.As(err, &refused) {
		s.res.Code, s.res.Reply = refused.Code, refused.Msg
		s.cmd("QUIT")
		s.text.ReadResponse(221)
		return s.res, nil
	}
	if err != nil {
		return s.res, fmt.Errorf("sendtest: %s: %w", o.Server, err)
	}
	return s.res, nil
}

type session struct {
	res  *Result
	text *textproto.Conn
}

func (s *session) cmd(format string, args ...any) error {
	line := fmt.Sprintf(format, args...)
	s.res.Dialogue = append(s.res.Dialogue, Line{"C", line})
	return s.text.PrintfLine("%s", line)
}

// reply reads a reply, records it and fails unless its code is want (a
// one-digit want matches the class).
func (s *session) reply(want int) (int, string, error) {
	code, msg, err := s.text.ReadResponse(want)
	if code != 0 {
		lines := strings.Split(msg, "\n")
		for i, l := range lines {
			sep := " "
			if i < len(lines)-1 {
				sep = "-"
			}
			s.res.Dialogue = append(s.res.Dialogue, Line{"S", fmt.Sprintf("%d%s%s", code, sep, l)})
		}
	}
	return code, msg, err
}

func (s *session) run(o Options, conn net.Conn, from, rcpt, message string) error {
	if _, _, err := s.reply(2); err != nil {
		return err
	}
	ext, err := s.ehlo(o.Helo)
	if err != nil {
		return err
	}
	if ext["STARTTLS"] && !o.NoTLS {
		if err := s.cmd("STARTTLS"); err != nil {
			return err
		}
		if _, _, err := s.reply(220); err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(o.Server)
		tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: o.InsecureTLS})
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("STARTTLS: %w (a lab's self-signed certificate needs --tls-insecure)", err)
		}
		s.text = textproto.NewConn(tc)
		s.res.TLS = true
		s.res.Dialogue = append(s.res.Dialogue, Line{"C", "(TLS " + tls.VersionName(tc.ConnectionState().Version) + " " + tls.CipherSuiteName(tc.ConnectionState().CipherSuite) + ")"})
		if _, err := s.ehlo(o.Helo); err != nil {
			return err
		}
	}
	if err := s.cmd("MAIL FROM:<%s>", from); err != nil {
		return err
	}
	if _, _, err := s.reply(250); err != nil {
		return err
	}
	if err := s.cmd("RCPT TO:<%s>", rcpt); err != nil {
		return err
	}
	if _, _, err := s.reply(25); err != nil {
		return err
	}
	if err := s.cmd("DATA"); err != nil {
		return err
	}
	if _, _, err := s.reply(354); err != nil {
		return err
	}
	w := s.text.DotWriter()
	// DotWriter turns "\n" into CRLF itself.
	if _, err := w.Write([]byte(strings.ReplaceAll(message, "\r\n", "\n"))); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	s.res.Dialogue = append(s.res.Dialogue, Line{"C", fmt.Sprintf("(message, %d octets)", len(message))}, Line{"C", "."})
	code, msg, err := s.reply(250)
	if err != nil {
		return err
	}
	s.res.Code, s.res.Reply = code, msg
	s.cmd("QUIT")
	s.reply(221)
	return nil
}

// ehlo greets and returns the extensions offered; a server without ESMTP
// gets HELO.
func (s *session) ehlo(helo string) (map[string]bool, error) {
	if err := s.cmd("EHLO %s", helo); err != nil {
		return nil, err
	}
	_, msg, err := s.reply(250)
	if err != nil {
		if err := s.cmd("HELO %s", helo); err != nil {
			return nil, err
		}
		_, _, err := s.reply(250)
		return map[string]bool{}, err
	}
	ext := map[string]bool{}
	for _, l := range strings.Split(msg, "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			ext[strings.ToUpper(f[0])] = true
		}
	}
	return ext, nil
}
