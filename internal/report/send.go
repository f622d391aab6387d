package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"mailwall/internal/dmarc"
	"mailwall/internal/store"
)

// Sender delivers the stored reports over an SMTP relay, each once to
// each destination.
//
// Exactly once: a delivery is claimed ("sending") before the SMTP
// transaction and marked sent right after the relay's reply to DATA. Only
// the holder of the store's send lock sends (a PostgreSQL advisory lock,
// or an flock for SQLite: both die with their holder), so a delivery
// found "sending" by the lock holder was left by a sender that died, and
// it is sent again. A relay that loses the connection before the end of
// DATA has not taken the message, so that re-send is no duplicate; the one
// window left is from our final "." to our commit after the relay's
// reply, RFC 1047's, which no SMTP client can close (tens of
// milliseconds on a local relay). The Report-ID and
// file name are the same on a re-send, as RFC 9990 §3.3 asks, so a
// consumer can still tell.
type Sender struct {
	Store *store.Store
	DMARC *dmarc.Evaluator // checks external destinations (RFC 9990 §4)
	// Relay is host:port of the MTA that sends the reports on: the local
	// Postfix, which applies its own TLS policy outbound and, through the
	// milter, DKIM-signs them (reports must pass DMARC, RFC 9990 §3.3).
	Relay    string
	Hostname string // EHLO name
	From     string // envelope and header From: an address of ours that passes DMARC
	Receiver string // our domain, in the Subject
	// MaxAttempts before a delivery is given up (default 8); the wait
	// doubles from 15 minutes.
	MaxAttempts int
	Timeout     time.Duration // per SMTP conversation (default 2 minutes)
	Now         func() time.Time
	Log         *slog.Logger
	Outcome     func(outcome string) // metrics, may be nil
}

// SendLock is the name of the store lock the sender holds.
const SendLock = "report-send"

// ErrLocked means another process is sending reports now.
var ErrLocked = errors.New("report: another mailwall is sending reports")

// Summary counts the outcomes of one run.
type Summary struct {
	Sent, Retry, Failed, Dropped, Recovered int
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Send delivers the due deliveries (every pending one when all is set,
// ignoring the back-off).
func (s *Sender) Send(ctx context.Context, all bool) (Summary, error) {
	var sum Summary
	unlock, ok, err := s.Store.TryLock(ctx, SendLock)
	if err != nil {
		return sum, err
	}
	if !ok {
		return sum, ErrLocked
	}
	defer unlock()
	n, err := s.Store.RecoverDeliveries(ctx)
	if err != nil {
		return sum, err
	}
	sum.Recovered = int(n)
	if n > 0 {
		s.log().Warn("dmarc reports: deliveries interrupted by a crash are sent again", "count", n)
	}
	var due []store.Delivery
	if all {
		due, err = s.Store.DueDeliveries(ctx, time.Time{})
	} else {
		due, err = s.Store.DueDeliveries(ctx, s.now())
	}
	if err != nil {
		return sum, err
	}
	reports := map[int64]*store.ReportOut{}
	for _, d := range due {
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		r := reports[d.Report]
		if r == nil {
			if r, err = s.Store.Report(ctx, d.Report, ""); err != nil {
				return sum, err
			}
			reports[d.Report] = r
		}
		outcome, err := s.deliver(ctx, r, d)
		if err != nil {
			return sum, err
		}
		if outcome == "" {
			continue // claimed by another run meanwhile: not ours to count
		}
		switch outcome {
		case store.Sent:
			sum.Sent++
		case store.Pending:
			sum.Retry++
		case store.Failed:
			sum.Failed++
		case store.Dropped:
			sum.Dropped++
		}
		if s.Outcome != nil {
			if outcome == store.Pending {
				outcome = "retry"
			}
			s.Outcome(outcome)
		}
	}
	return sum, nil
}

func (s *Sender) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// deliver makes one attempt and records its outcome: the new state, or
// "" when the delivery was no longer pending.
func (s *Sender) deliver(ctx context.Context, r *store.ReportOut, d store.Delivery) (string, error) {
	uri := dmarc.URI{URI: d.URI, MaxSize: d.MaxSize}
	finish := func(state, why string) (string, error) {
		d.State, d.LastError = state, why
		if state == store.Sent {
			d.SentAt, d.LastError = s.now(), ""
		}
		lvl := slog.LevelInfo
		if state != store.Sent {
			lvl = slog.LevelWarn
		}
		s.log().Log(ctx, lvl, "dmarc report delivery", "report_id", r.ReportID, "to", d.URI, "state", state, "attempt", d.Attempts, "why", why)
		return state, s.Store.FinishDelivery(ctx, d)
	}
	// An address outside the domain's organization must consent, and may
	// redirect to another address on its host (RFC 9990 §4).
	rcpts := []dmarc.URI{uri}
	if s.DMARC != nil {
		ok, notes, err := s.DMARC.Destinations(ctx, r.PolicyDomain, rcpts)
		if err != nil {
			// A DNS failure: try later, no attempt counted.
			d.NextTry = s.now().Add(15 * time.Minute)
			d.LastError = err.Error()
			return store.Pending, s.Store.FinishDelivery(ctx, d)
		}
		if len(ok) == 0 {
			return finish(store.Dropped, strings.Join(notes, "; "))
		}
		rcpts = ok
	}
	claimed, err := s.Store.ClaimDelivery(ctx, d.ID)
	if err != nil || !claimed {
		return "", err
	}
	d.Attempts++
	d.MessageID = "<" + r.ReportID + ">"
	for _, rc := range rcpts {
		// The address is the one the destination check was made on:
		// decoded and checked once (dmarc.URI.Mailbox), then used as is.
		to, err := rc.Mailbox()
		if err != nil {
			return finish(store.Dropped, err.Error())
		}
		msg := s.message(r, to)
		// RFC 7489 §6.2's "!size": the destination takes no report
		// bigger than this; the whole message is what arrives.
		if limit := rc.MaxSize; limit > 0 && int64(len(msg)) > limit {
			return finish(store.Dropped, fmt.Sprintf("report message of %d bytes is over the destination's limit of %d", len(msg), limit))
		}
		if err := s.smtp(ctx, to, msg); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Code >= 500 {
				return finish(store.Failed, err.Error())
			}
			max := s.MaxAttempts
			if max <= 0 {
				max = 8
			}
			if d.Attempts >= max {
				return finish(store.Failed, fmt.Sprintf("gave up after %d attempts: %v", d.Attempts, err))
			}
			d.NextTry = s.now().Add(15 * time.Minute << (d.Attempts - 1))
			return finish(store.Pending, err.Error())
		}
	}
	return finish(store.Sent, "")
}

// message is the report mail (RFC 9990 §3.3): Subject per the ABNF, the
// gzipped XML as an application/gzip attachment named as the ABNF says,
// and the Report-ID as Message-ID so a re-send is recognizable.
func (s *Sender) message(r *store.ReportOut, to string) []byte {
	var b bytes.Buffer
	boundary := "mailwall-report-" + fmt.Sprint(r.ID)
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", s.From)
	hdr("To", to)
	hdr("Date", s.now().UTC().Format(time.RFC1123Z))
	hdr("Subject", fmt.Sprintf("Report Domain: %s\r\n Submitter: %s\r\n Report-ID: <%s>", r.PolicyDomain, s.Receiver, r.ReportID))
	hdr("Message-ID", "<"+r.ReportID+">")
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-generated")
	hdr("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "DMARC aggregate report (RFC 9990) for %s from %s.\r\nPeriod: %s to %s UTC; %d messages in %d records.\r\n\r\n",
		r.PolicyDomain, s.Receiver, r.Begin.Format("2006-01-02 15:04:05"), r.End.Format("2006-01-02 15:04:05"), r.Messages, r.Records)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/gzip; %s\r\nContent-Disposition: attachment; %s\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		boundary, mime.FormatMediaType("x", map[string]string{"name": r.Filename})[2:], mime.FormatMediaType("x", map[string]string{"filename": r.Filename})[2:])
	enc := base64.StdEncoding.EncodeToString(r.GZ)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// smtp sends one message through the relay.
func (s *Sender) smtp(ctx context.Context, to string, msg []byte) error {
	return relayMail(ctx, s.Relay, s.Hostname, s.From, to, msg, s.Timeout)
}

// relayMail sends one message through an SMTP relay.
func relayMail(ctx context.Context, relay, hostname, from, to string, msg []byte, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	// Only a plain mailbox goes into RCPT TO: nothing that could end the
	// path early or add ESMTP parameters (issue 23).
	if _, err := dmarc.CheckMailbox(to); err != nil {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: fmt.Sprintf("report: not sent to %q: %v", to, err)}
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", relay)
	if err != nil {
		return fmt.Errorf("relay %s: %w", relay, err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(hostname); err != nil {
		return fmt.Errorf("relay %s: %w", relay, err)
	}
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("relay %s: MAIL FROM: %w", relay, err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return fmt.Errorf("relay %s: RCPT TO %s: %w", relay, to, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("relay %s: DATA: %w", relay, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("relay %s: DATA: %w", relay, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("relay %s: end of DATA: %w", relay, err)
	}
	c.Quit()
	return nil
}
