package milter

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/cputime"
)

// nopFilter continues at every stage: the benchmark measures the server.
type nopFilter struct{}

func (nopFilter) Connect(Conn, *Macros) Response              { return Continue }
func (nopFilter) Helo(string, *Macros) Response               { return Continue }
func (nopFilter) MailFrom(string, []string, *Macros) Response { return Continue }
func (nopFilter) RcptTo(string, []string, *Macros) Response   { return Continue }
func (nopFilter) Header(string, string) Response              { return Continue }
func (nopFilter) EndOfHeaders(*Macros) Response               { return Continue }
func (nopFilter) Body([]byte) Response                        { return Continue }
func (nopFilter) EndOfMessage(m *Macros, _ *Modifier) Response {
	m.Get("i")
	return Continue
}
func (nopFilter) Abort() {}
func (nopFilter) Close() {}

// BenchmarkSession runs whole sessions as Postfix sends them (macros at
// each stage, 12 header fields, a 4 KB body), one connection each: the
// server's own cost per message, without a filter's.
func BenchmarkSession(b *testing.B) {
	benchSession(b, []byte(strings.Repeat("A line of an ordinary message body, nothing to see here.\r\n", 70)))
}

// BenchmarkSession1MB is BenchmarkSession with a 1 MB body, sent in
// chunks of 64 KiB as Postfix sends it: the server's reads.
func BenchmarkSession1MB(b *testing.B) {
	benchSession(b, []byte(strings.Repeat("A line of an ordinary message body, nothing to see here.\r\n", 1<<20/60)))
}

func benchSession(b *testing.B, body []byte) {
	s := &Server{NewFilter: func() Filter { return nopFilter{} }, Actions: ActAddHeader | ActChangeHeader | ActQuarantine,
		NoReply: ProtoNRConn | ProtoNRHelo | ProtoNRMail | ProtoNRRcpt | ProtoNREOH, Log: slog.New(slog.DiscardHandler)}
	addr := benchServe(b, s)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process()
	defer func() { b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op") }()
	for range b.N {
		c, err := Dial("tcp", addr, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.Macro('C', "j", "mx.example.test", "{daemon_name}", "smtpd", "v", "Postfix 3.7.11")
		c.Connect("mail.example.test", netip.MustParseAddr("192.0.2.1"), 40000)
		c.Macro('H', "{tls_version}", "TLSv1.3", "{cipher}", "TLS_AES_256_GCM_SHA384")
		c.Helo("mail.example.test")
		c.Macro('M', "i", "4ABCD1234", "{auth_type}", "", "{auth_authen}", "", "{mail_addr}", "alice@example.test")
		c.Mail("<alice@example.test>", "SIZE=4000")
		c.Macro('R', "{rcpt_addr}", "bob@example.test")
		c.Rcpt("<bob@example.test>")
		for i := range 12 {
			c.Header("X-Header-"+string(rune('A'+i)), " a value of an ordinary length, like most")
		}
		c.Macro('N', "i", "4ABCD1234")
		c.EndOfHeaders()
		c.Body(body)
		c.Macro('E', "i", "4ABCD1234")
		if _, r, err := c.EndOfMessage(); err != nil || r.Code != 'c' {
			b.Fatalf("end of message: %v %v", r, err)
		}
		c.Close()
	}
}

func benchServe(b *testing.B, s *Server) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	b.Cleanup(s.Shutdown)
	return ln.Addr().String()
}
