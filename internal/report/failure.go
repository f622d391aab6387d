package report

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
)

// FailedMessage is what a failure report tells of one message.
type FailedMessage struct {
	Arrival  time.Time
	SourceIP netip.Addr
	QueueID  string
	MailFrom string
	Rcpts    []string
	// Delivery is what was done with it, as RFC 6591 §3.1's
	// Delivery-Result says: delivered, spam, policy, reject or other.
	Delivery    string
	DMARC       dmarc.Result
	SPF         string // the SPF result for MAIL FROM (or HELO)
	SPFDomain   string
	DKIM        []dkim.Result
	AuthResults string // our Authentication-Results value
	Header      []byte // the message's header block as received
}

// FailureKind says whether the Domain Owner asked for a report on m, and
// as which Auth-Failure type (RFC 6591 §3.2.1, RFC 9991 §4): "" for no
// report. The fo= options are RFC 9989 §4.7's; a record with psd=y gets
// none (RFC 9991 §2), nor one without ruf=.
func FailureKind(m *FailedMessage) string {
	rec := m.DMARC.Record
	if rec == nil || len(rec.RUF) == 0 || rec.PSD == 'y' || (m.DMARC.Result != dmarc.Pass && m.DMARC.Result != dmarc.Fail) {
		return ""
	}
	if isAutomatic(m.Header) {
		return "" // no report on a report, or an auto-reply: loops (RFC 9991 §5.1)
	}
	fo := rec.FO
	if len(fo) == 0 {
		fo = []string{"0"}
	}
	var dkimFailed, bodyHash bool
	for _, r := range m.DKIM {
		if r.Status == dkim.Fail || r.Status == dkim.PermError {
			dkimFailed = true
			bodyHash = bodyHash || strings.Contains(strings.ToLower(r.Reason), "body hash")
		}
	}
	kind := ""
	for _, o := range fo {
		switch strings.TrimSpace(o) {
		case "0": // all mechanisms failed to produce an aligned pass
			if !m.DMARC.DKIMAligned && !m.DMARC.SPFAligned {
				return "dmarc"
			}
		case "1": // any mechanism failed to produce an aligned pass
			if !m.DMARC.DKIMAligned || !m.DMARC.SPFAligned {
				return "dmarc"
			}
		case "d":
			if dkimFailed && kind == "" {
				kind = "signature"
				if bodyHash {
					kind = "bodyhash"
				}
			}
		case "s":
			if m.SPF == "fail" && kind == "" {
				kind = "spf"
			}
		}
	}
	return kind
}

// FailureReporter mails DMARC failure reports (RFC 9991) to the ruf=
// addresses, soon after the failure, in the background. Reports are made
// of the header block only (text/rfc822-headers, never the body), with
// the local parts of addresses replaced by tokens, and rate-limited per
// Policy Domain and in all. They are best effort: a report not sent
// within three attempts, or still queued when mailwall stops, is logged
// and lost; aggregate reports are the record that counts.
type FailureReporter struct {
	DMARC     *dmarc.Evaluator // destinations and SPF-DNS lookups
	Relay     string           // host:port of the MTA that sends them on
	Hostname  string           // EHLO name
	From      string           // envelope and header From
	Receiver  string           // our domain, for Message-ID and the text
	UserAgent string           // "mailwall/VERSION"
	// PerDomain and Total cap reports per hour, for one Policy Domain and
	// for all (RFC 9991 §2: a rate limit is a MUST). Defaults 5 and 100.
	PerDomain, Total int
	Timeout          time.Duration // per SMTP conversation
	Now              func() time.Time
	Log              *slog.Logger
	Outcome          func(outcome string) // metrics, may be nil
	// RetryAfter is the wait before another attempt (default 5 minutes).
	RetryAfter time.Duration

	mu      sync.Mutex
	windows map[string]*window // per policy domain, "" for all
	queue   chan *failureJob
	secret  []byte // keys the redaction tokens
	started bool
}

type window struct {
	start time.Time
	n     int
}

type failureJob struct {
	m        *FailedMessage
	kind     string
	attempts int
}

const (
	failureQueue     = 256
	failureAttempts  = 3
	maxReportedBytes = 64 << 10 // of the header block
)

// Start runs the sender until ctx ends. Report may only be called after
// it.
func (f *FailureReporter) Start(ctx context.Context) {
	f.mu.Lock()
	if f.started {
		f.mu.Unlock()
		return
	}
	f.started = true
	f.windows = map[string]*window{}
	f.queue = make(chan *failureJob, failureQueue)
	f.secret = make([]byte, 32)
	rand.Read(f.secret)
	f.mu.Unlock()
	go f.run(ctx)
}

// Report queues a report on m if its Domain Owner asked for one and the
// rate limits allow it. It never blocks. It returns what happened:
// "not_requested", "rate_limited", "queue_full" or "queued".
func (f *FailureReporter) Report(m *FailedMessage) string {
	kind := FailureKind(m)
	if kind == "" {
		return "not_requested"
	}
	if !f.allow(m.DMARC.PolicyDomain) {
		f.outcome("failure_rate_limited")
		f.log().Info("dmarc failure report: rate limit reached", "domain", m.DMARC.PolicyDomain, "queue_id", m.QueueID)
		return "rate_limited"
	}
	select {
	case f.queue <- &failureJob{m: m, kind: kind}:
		return "queued"
	default:
		f.outcome("failure_dropped")
		f.log().Warn("dmarc failure report: queue full, dropped", "domain", m.DMARC.PolicyDomain, "queue_id", m.QueueID)
		return "queue_full"
	}
}

// allow counts a report against the hourly windows of its domain and of
// all domains.
func (f *FailureReporter) allow(domain string) bool {
	perDomain, total := f.PerDomain, f.Total
	if perDomain <= 0 {
		perDomain = 5
	}
	if total <= 0 {
		total = 100
	}
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	get := func(key string) *window {
		w := f.windows[key]
		if w == nil || now.Sub(w.start) >= time.Hour {
			w = &window{start: now}
			f.windows[key] = w
		}
		return w
	}
	all, one := get(""), get(strings.ToLower(domain))
	if all.n >= total || one.n >= perDomain {
		return false
	}
	all.n++
	one.n++
	if len(f.windows) > 10000 { // forget domains whose hour is over
		for k, w := range f.windows {
			if now.Sub(w.start) >= time.Hour {
				delete(f.windows, k)
			}
		}
	}
	return true
}

func (f *FailureReporter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			if n := len(f.queue); n > 0 {
				f.log().Warn("dmarc failure reports not sent at shutdown", "count", n)
			}
			return
		case j := <-f.queue:
			f.send(ctx, j)
		}
	}
}

// send makes one attempt at every destination of a report.
func (f *FailureReporter) send(ctx context.Context, j *failureJob) {
	j.attempts++
	m := j.m
	log := f.log().With("domain", m.DMARC.PolicyDomain, "queue_id", m.QueueID, "auth_failure", j.kind)
	rcpts := m.DMARC.Record.RUF
	if f.DMARC != nil {
		ok, notes, err := f.DMARC.FailureDestinations(ctx, m.DMARC.PolicyDomain, rcpts)
		if err != nil {
			f.retry(ctx, j, log, err)
			return
		}
		for _, n := range notes {
			log.Info("dmarc failure report destination dropped", "why", n)
		}
		rcpts = ok
	}
	if len(rcpts) == 0 {
		f.outcome("failure_dropped")
		return
	}
	body := f.message(ctx, j)
	var retry error
	for _, rc := range rcpts {
		// Decoded and checked once; the address checked is the one
		// sent to (issue 23).
		to, err := rc.Mailbox()
		if err != nil {
			log.Info("dmarc failure report destination dropped", "why", err)
			f.outcome("failure_dropped")
			continue
		}
		msg := append(fmt.Appendf(nil, "To: %s\r\n", to), body...)
		if rc.MaxSize > 0 && int64(len(msg)) > rc.MaxSize {
			log.Info("dmarc failure report over the destination's size limit", "to", to, "size", len(msg), "limit", rc.MaxSize)
			f.outcome("failure_dropped")
			continue
		}
		err = relayMail(ctx, f.Relay, f.Hostname, f.From, to, msg, f.Timeout)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			log.Info("dmarc failure report sent", "to", to)
			f.outcome("failure_sent")
		case errors.As(err, &se) && se.Code >= 500:
			log.Warn("dmarc failure report refused", "to", to, "err", err)
			f.outcome("failure_failed")
		default:
			retry = err // the relay is down or said 4xx: all again later
		}
		if retry != nil {
			break
		}
	}
	if retry != nil {
		f.retry(ctx, j, log, retry)
	}
}

func (f *FailureReporter) retry(ctx context.Context, j *failureJob, log *slog.Logger, err error) {
	if j.attempts >= failureAttempts {
		log.Warn("dmarc failure report given up", "attempts", j.attempts, "err", err)
		f.outcome("failure_failed")
		return
	}
	wait := f.RetryAfter
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	log.Info("dmarc failure report will be tried again", "in", wait, "err", err)
	time.AfterFunc(wait, func() {
		if ctx.Err() != nil {
			return
		}
		select {
		case f.queue <- j:
		default:
			f.outcome("failure_dropped")
		}
	})
}

// message is the report without its To: an ARF message (RFC 5965) with
// RFC 6591's auth-failure fields and RFC 9991 §4's additions.
func (f *FailureReporter) message(ctx context.Context, j *failureJob) []byte {
	m := j.m
	var b bytes.Buffer
	id := randomID()
	boundary := "mailwall-failure-" + id
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", f.From)
	hdr("Date", f.now().UTC().Format(time.RFC1123Z))
	hdr("Subject", fmt.Sprintf("DMARC failure report for %s from %s", m.DMARC.HeaderFrom, f.Receiver))
	hdr("Message-ID", "<failure-"+id+"@"+f.Receiver+">")
	hdr("MIME-Version", "1.0")
	// RFC 3834: so that no one answers, or reports on, a report.
	hdr("Auto-Submitted", "auto-generated")
	hdr("Content-Type", `multipart/report; report-type=feedback-report; boundary="`+boundary+`"`)
	b.WriteString("\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is an authentication failure report (RFC 9991) for a message\r\nreceived by %s from IP %s on %s.\r\nAddresses' local parts are redacted; the body is not included.\r\n\r\n",
		f.Receiver, m.SourceIP, m.Arrival.UTC().Format(time.RFC1123Z))

	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/feedback-report\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", boundary)
	hdr("Feedback-Type", "auth-failure")
	hdr("User-Agent", f.UserAgent)
	hdr("Version", "1")
	hdr("Auth-Failure", j.kind)
	if m.AuthResults != "" {
		hdr("Authentication-Results", f.redact(m.AuthResults))
	}
	hdr("Identity-Alignment", identityAlignment(m.DMARC))
	if m.Delivery != "" {
		hdr("Delivery-Result", m.Delivery)
	}
	if d := alignedDKIMFailure(m); d != nil {
		hdr("DKIM-Domain", d.Domain)
		if d.Identifier != "" {
			hdr("DKIM-Identity", f.redact(d.Identifier))
		}
		hdr("DKIM-Selector", d.Selector)
	}
	if !m.DMARC.SPFAligned && m.SPF != "pass" && aligned(m.DMARC, m.SPFDomain) && f.DMARC != nil {
		// RFC 6591 §3.2: the record that failed, as the DNS gave it.
		if txts, err := dnsx.TXT(ctx, f.DMARC.Resolver, m.SPFDomain); err == nil {
			for _, t := range txts {
				if strings.HasPrefix(strings.ToLower(t), "v=spf1") {
					hdr("SPF-DNS", "txt : "+m.SPFDomain+" : "+strings.ReplaceAll(t, "\r\n", " "))
				}
			}
		}
	}
	if m.QueueID != "" {
		hdr("Original-Envelope-Id", m.QueueID)
	}
	hdr("Original-Mail-From", "<"+f.redact(m.MailFrom)+">")
	for _, r := range m.Rcpts {
		hdr("Original-Rcpt-To", "<"+f.redact(r)+">")
	}
	hdr("Arrival-Date", m.Arrival.UTC().Format(time.RFC1123Z))
	if m.SourceIP.IsValid() {
		hdr("Source-IP", m.SourceIP.String())
	}
	hdr("Reported-Domain", m.DMARC.HeaderFrom)
	b.WriteString("\r\n")

	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/rfc822-headers; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	b.Write(f.redactHeader(m.Header))
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// identityAlignment is RFC 9991 §4's Identity-Alignment: the mechanisms
// that failed to authenticate an aligned identity, or "none".
func identityAlignment(r dmarc.Result) string {
	var failed []string
	if !r.DKIMAligned {
		failed = append(failed, "dkim")
	}
	if !r.SPFAligned {
		failed = append(failed, "spf")
	}
	if len(failed) == 0 {
		return "none"
	}
	return strings.Join(failed, ", ")
}

// aligned reports whether domain is the From domain or under its
// Organizational Domain as the evaluation found it: relaxed alignment
// without a tree walk of its own, and the strict modes not applied. It
// only chooses which failure's details a report names; the DMARC result
// itself is the evaluation's.
func aligned(r dmarc.Result, domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	from := strings.ToLower(r.HeaderFrom)
	if domain == "" {
		return false
	}
	if domain == from {
		return true
	}
	if r.OrgDomain == "" {
		return false
	}
	return domain == r.OrgDomain || strings.HasSuffix(domain, "."+r.OrgDomain)
}

// alignedDKIMFailure is the first signature of the From domain's
// organization that did not verify: RFC 9991 §4 wants its DKIM-Domain,
// DKIM-Identity and DKIM-Selector.
func alignedDKIMFailure(m *FailedMessage) *dkim.Result {
	if m.DMARC.DKIMAligned {
		return nil
	}
	for i, r := range m.DKIM {
		if r.Status != dkim.Pass && r.Status != dkim.None && aligned(m.DMARC, r.Domain) {
			return &m.DKIM[i]
		}
	}
	return nil
}

// isAutomatic reports whether a header block is of a machine's message:
// Auto-Submitted other than "no" (RFC 3834), or a feedback report.
func isAutomatic(h []byte) bool {
	for _, line := range strings.Split(strings.ToLower(string(h)), "\n") {
		if v, ok := strings.CutPrefix(line, "auto-submitted:"); ok && !strings.HasPrefix(strings.TrimSpace(v), "no") {
			return true
		}
		if strings.Contains(line, "report-type=feedback-report") || strings.Contains(line, `report-type="feedback-report"`) {
			return true
		}
	}
	return false
}

// addrSpec finds the addresses in header text: a local part (dot-atom or
// quoted string) and a domain (or address literal). "=" is left out of
// the local part although RFC 5322 allows it, so that
// "smtp.mailfrom=user@domain" keeps its property name; of an SRS address
// only what follows the last "=" is redacted, the original user.
var addrSpec = regexp.MustCompile(`([A-Za-z0-9!#$%&'*+/?^_{|}~.-]+|"[^"\r\n]*")@([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[^\]\r\n]+\])`)

// redact replaces the local part of every address in s by a token: the
// same local part gives the same token within one run of mailwall, so a
// report consumer can still tell recipients apart (RFC 6590's approach).
func (f *FailureReporter) redact(s string) string {
	return addrSpec.ReplaceAllStringFunc(s, func(a string) string {
		i := strings.LastIndexByte(a, '@')
		return f.token(a[:i]) + a[i:]
	})
}

func (f *FailureReporter) token(local string) string {
	mac := hmac.New(sha256.New, f.secret)
	mac.Write([]byte(strings.ToLower(strings.Trim(local, `"`))))
	return lowerBase32(mac.Sum(nil))[:10]
}

// keptWhole are fields whose "@" is no address: message identifiers.
var keptWhole = map[string]bool{"message-id": true, "in-reply-to": true, "references": true, "content-id": true, "resent-message-id": true}

// redactHeader redacts a header block field by field, cut at a field
// boundary after maxReportedBytes.
func (f *FailureReporter) redactHeader(h []byte) []byte {
	var out bytes.Buffer
	for len(h) > 0 {
		// A field runs to a CRLF (or LF) not followed by white space.
		end := 0
		for {
			i := bytes.IndexByte(h[end:], '\n')
			if i < 0 {
				end = len(h)
				break
			}
			end += i + 1
			if end >= len(h) || (h[end] != ' ' && h[end] != '\t') {
				break
			}
		}
		field := string(h[:end])
		h = h[end:]
		if strings.TrimSpace(field) == "" {
			break // the blank line that ends the header
		}
		if out.Len()+len(field) > maxReportedBytes {
			break
		}
		name, _, _ := strings.Cut(field, ":")
		if !keptWhole[strings.ToLower(strings.TrimSpace(name))] {
			field = f.redact(field)
		}
		if !strings.HasSuffix(field, "\r\n") {
			field = strings.TrimSuffix(field, "\n") + "\r\n"
		}
		out.WriteString(field)
	}
	return out.Bytes()
}

func randomID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return lowerBase32(b)
}

// lowerBase32 spells b in letters and digits only, for tokens and IDs.
func lowerBase32(b []byte) string {
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func (f *FailureReporter) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *FailureReporter) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (f *FailureReporter) outcome(o string) {
	if f.Outcome != nil {
		f.Outcome(o)
	}
}
