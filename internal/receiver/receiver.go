// Package receiver is a small SMTP server that runs the receive pipeline on
// every message and stores what it accepts in a Maildir: the lab's MX, so
// a whole mail set-up is tested on one machine without Postfix. It only
// translates between SMTP and the pipeline; every decision is the
// pipeline's.
package receiver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"mailwall/internal/dkim"
	"mailwall/internal/verdict"
)

// Delivery is what happened to one message.
type Delivery struct {
	Envelope verdict.Envelope
	Result   verdict.Result
	Path     string // the stored file; "" when refused
	Err      error  // a failure inside the receiver (the client got 451)
}

// Config says how to receive.
type Config struct {
	// Addr is the "host:port" to listen on; loopback in a lab.
	Addr     string
	Hostname string // the greeting's name
	// Maildir receives accepted mail (new/), and quarantined mail in its
	// .Quarantine folder (Maildir++).
	Maildir string
	// Domains the server takes mail for; empty takes any recipient (a lab
	// catching everything).
	Domains  []string
	Pipeline *verdict.Checker
	// TLS, when set, offers STARTTLS.
	TLS *tls.Config
	// MaxMessageBytes bounds a message; 0 means 50 MB.
	MaxMessageBytes int64
	// Timeout bounds the checks of one message; 0 means 30s.
	Timeout time.Duration
	Logger  *slog.Logger
	// OnDelivery, when set, is called after each message's decision.
	OnDelivery func(Delivery)
	// CheckRcpt, when set, is asked at each accepted RCPT, as Postfix
	// asks a policy server (check_policy_service): a non-nil Refusal
	// refuses the recipient with it.
	CheckRcpt func(env verdict.Envelope, rcpt string) *Refusal
}

// Refusal is an SMTP reply refusing a recipient.
type Refusal struct {
	Code     int    // 4xx or 5xx
	Enhanced [3]int // RFC 3463
	Message  string
}

// Server is a running receiver.
type Server struct {
	cfg  Config
	smtp *smtp.Server
	ln   net.Listener
	seq  atomic.Uint64
}

// Listen creates the Maildir and starts listening; Serve answers.
func Listen(cfg Config) (*Server, error) {
	if cfg.Pipeline == nil {
		return nil, errors.New("receiver: no pipeline")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 50 << 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	for _, dir := range []string{cfg.Maildir, filepath.Join(cfg.Maildir, ".Quarantine")} {
		for _, sub := range []string{"tmp", "new", "cur"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				return nil, fmt.Errorf("receiver: maildir: %w", err)
			}
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln}
	s.smtp = smtp.NewServer(backend{s})
	s.smtp.Domain = cfg.Hostname
	s.smtp.TLSConfig = cfg.TLS
	s.smtp.MaxMessageBytes = cfg.MaxMessageBytes
	s.smtp.MaxRecipients = 100
	s.smtp.ReadTimeout = 5 * time.Minute
	s.smtp.WriteTimeout = 5 * time.Minute
	s.smtp.ErrorLog = slogAdapter{cfg.Logger}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers connections until Close.
func (s *Server) Serve() error {
	err := s.smtp.Serve(s.ln)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops the server and its sessions.
func (s *Server) Close() error { return s.smtp.Close() }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Warn(strings.TrimSpace(fmt.Sprintln(v...))) }

type backend struct{ s *Server }

// NewSession runs at HELO/EHLO: the HELO stage decides here.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	var client netip.Addr
	if ta, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		client = ta.AddrPort().Addr().Unmap()
	}
	helo := c.Hostname()
	sess := &session{s: b.s, client: client, helo: helo}
	act, reply, why := b.s.cfg.Pipeline.CheckHelo(helo)
	switch act {
	case verdict.Reject, verdict.TempFail:
		b.s.cfg.Logger.Info("helo rejected", "client", client.String(), "helo", helo, "reason", why, "reply", reply)
		return nil, replyError(reply, act)
	case verdict.Quarantine:
		sess.heloHold = why
	}
	return sess, nil
}

type session struct {
	s        *Server
	client   netip.Addr
	helo     string
	heloHold string
	env      verdict.Envelope
}

func (s *session) Reset()        { s.env = verdict.Envelope{} }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.env = verdict.Envelope{ClientIP: s.client, Helo: s.helo, MailFrom: from,
		QueueID: fmt.Sprintf("%X%04X", time.Now().Unix(), s.s.seq.Add(1)&0xffff)}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if len(s.s.cfg.Domains) > 0 {
		at := strings.LastIndexByte(to, '@')
		domain := strings.ToLower(to[at+1:])
		ok := false
		for _, d := range s.s.cfg.Domains {
			if strings.EqualFold(d, domain) {
				ok = true
			}
		}
		if !ok {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "<" + to + ">: Relay access denied"}
		}
	}
	if check := s.s.cfg.CheckRcpt; check != nil {
		if r := check(s.env, to); r != nil {
			return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Message}
		}
	}
	s.env.Rcpts = append(s.env.Rcpts, to)
	return nil
}

// Data checks the message while spooling it, then stores it or refuses it
// as the pipeline decided.
func (s *session) Data(r io.Reader) error {
	cfg := &s.s.cfg
	spool, err := os.CreateTemp(filepath.Join(cfg.Maildir, "tmp"), "spool-")
	if err != nil {
		return s.internalError(err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	res, fields, err := cfg.Pipeline.CheckMessage(ctx, s.env, io.TeeReader(r, spool))
	if err != nil {
		io.Copy(io.Discard, r)
		return s.internalError(err)
	}
	if s.heloHold != "" && res.Action == verdict.Accept {
		res.Action, res.Reasons = verdict.Quarantine, append(res.Reasons, s.heloHold)
	}
	d := Delivery{Envelope: s.env, Result: res}
	cfg.Logger.Info("message", "queue_id", s.env.QueueID, "client", s.client.String(), "helo", s.helo, "from", s.env.MailFrom,
		"action", string(res.Action), "stage", res.Stage, "verdict", res.Verdict, "reasons", strings.Join(res.Reasons, "; "))
	switch res.Action {
	case verdict.Reject, verdict.TempFail:
		s.deliver(d)
		return replyError(res.Reply, res.Action)
	}
	folder := cfg.Maildir
	if res.Action == verdict.Quarantine {
		folder = filepath.Join(cfg.Maildir, ".Quarantine")
	}
	d.Path, err = s.store(folder, spool, res, fields)
	if err != nil {
		d.Err = err
		s.deliver(d)
		return s.internalError(err)
	}
	s.deliver(d)
	return nil
}

func (s *session) deliver(d Delivery) {
	if s.s.cfg.OnDelivery != nil {
		s.s.cfg.OnDelivery(d)
	}
}

func (s *session) internalError(err error) error {
	s.s.cfg.Logger.Error("receiver failure", "queue_id", s.env.QueueID, "err", err)
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later"}
}

// store writes the message with the pipeline's header changes into a
// Maildir folder: tmp/ first, then a rename into new/ (the Maildir rule
// that readers never see a partial file).
func (s *session) store(folder string, spool *os.File, res verdict.Result, fields []dkim.Field) (string, error) {
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	br := bufio.NewReader(spool)
	if _, err := dkim.ReadHeader(br); err != nil {
		return "", fmt.Errorf("receiver: re-reading the spooled header: %w", err)
	}
	host, _ := os.Hostname()
	name := fmt.Sprintf("%d.M%dP%dQ%d.%s", time.Now().Unix(), time.Now().Nanosecond()/1000, os.Getpid(), s.s.seq.Add(1), strings.ReplaceAll(host, "/", "_"))
	tmp := filepath.Join(folder, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "Return-Path: <%s>\r\n", s.env.MailFrom)
	for _, h := range res.Headers {
		fmt.Fprintf(w, "%s:%s\r\n", h.Name, strings.ReplaceAll(strings.ReplaceAll(h.Value, "\r\n", "\n"), "\n", "\r\n"))
	}
	subject := s.s.cfg.Pipeline.SubjectTagged(res, fields)
	seen := map[string]int{}
	for _, fl := range fields {
		key := strings.ToLower(fl.Name)
		seen[key]++
		if removed(res.Remove, key, seen[key]) {
			continue
		}
		if subject != "" && key == "subject" {
			fmt.Fprintf(w, "%s:%s\r\n", fl.Name, subject)
			subject = ""
			continue
		}
		w.WriteString(fl.Raw)
	}
	w.WriteString("\r\n")
	_, err = io.Copy(w, br)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("receiver: store: %w", err)
	}
	final := filepath.Join(folder, "new", name)
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("receiver: store: %w", err)
	}
	return final, nil
}

func removed(refs []verdict.HeaderReference, name string, index int) bool {
	for _, r := range refs {
		if strings.EqualFold(r.Name, name) && r.Index == index {
			return true
		}
	}
	return false
}

// replyError turns a pipeline reply ("550 5.7.1 text") into an SMTP error,
// with a generic reply of the right class when it has none.
func replyError(reply string, act verdict.Action) error {
	code, enh, text := 550, smtp.EnhancedCode{5, 7, 1}, "Message rejected"
	if act == verdict.TempFail {
		code, enh, text = 451, smtp.EnhancedCode{4, 7, 1}, "Temporary failure, try again later"
	}
	f := strings.SplitN(reply, " ", 3)
	if len(f) >= 2 {
		if c, err := strconv.Atoi(f[0]); err == nil && c >= 400 && c < 600 && (c >= 500) == (code >= 500) {
			code = c
			rest := strings.Join(f[1:], " ")
			if e, ok := parseEnhanced(f[1]); ok {
				enh, rest = e, ""
				if len(f) == 3 {
					rest = f[2]
				}
			}
			if rest != "" {
				text = rest
			}
		}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
}

func parseEnhanced(s string) (smtp.EnhancedCode, bool) {
	p := strings.Split(s, ".")
	if len(p) != 3 {
		return smtp.EnhancedCode{}, false
	}
	var e smtp.EnhancedCode
	for i := range p {
		n, err := strconv.Atoi(p[i])
		if err != nil {
			return smtp.EnhancedCode{}, false
		}
		e[i] = n
	}
	return e, true
}
