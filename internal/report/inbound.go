package report

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"mailwall/internal/authres"
	"mailwall/internal/feedback"
	"mailwall/internal/store"
)

// Inbound stores the aggregate reports sent to us about our domains. A
// report is believed only when the message that carried it passed DMARC
// (RFC 9990 §3.3): anyone can write one, and a forged report could lead
// an admin to authorize a spammer's address. Others are stored apart,
// marked unauthenticated, and left out of the domain's picture.
type Inbound struct {
	Store *store.Store
	// Domains are ours, lower case: a report whose policy_published
	// domain is neither one of them nor below one is refused. Empty:
	// any domain, as nothing is known to compare with.
	Domains []string
	// AuthServID is the authserv-id of our Authentication-Results,
	// which vouch for messages read from a Maildir.
	AuthServID string
	// PerReporterPerDay bounds the reports stored from one reporter in
	// 24 hours (all unauthenticated ones count as one reporter); 0: no
	// bound.
	PerReporterPerDay int
}

// Auth is what vouches for a report: the DMARC result of the message
// that carried it.
type Auth struct {
	Pass     bool   // the message's From passed DMARC
	Reporter string // that From's domain
	Why      string // how this was found, or why not
}

// unauthenticatedReporter is the rate limit's one bucket for all
// unauthenticated reports: their From domain is the sender's choice.
const unauthenticatedReporter = "(unauthenticated)"

// reporter is who the rate limit counts a report against: the
// organizational domain of an authenticated From (by the Public Suffix
// List), so that a sender cannot take a new allowance with each
// subdomain.
func (a Auth) reporter() string {
	if !a.Pass || a.Reporter == "" {
		return unauthenticatedReporter
	}
	d := strings.TrimSuffix(strings.ToLower(a.Reporter), ".")
	if org, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return org
	}
	return d
}

// VerdictAuth is the Auth of a message judged here: the milter knows
// its DMARC result.
func VerdictAuth(dmarcResult, headerFrom string) Auth {
	a := Auth{Pass: dmarcResult == "pass" && headerFrom != "", Reporter: strings.ToLower(headerFrom), Why: "dmarc=" + dmarcResult}
	if headerFrom != "" {
		a.Why += " header.from=" + strings.ToLower(headerFrom)
	}
	return a
}

// maxHeaderSection bounds the header read for MessageAuth.
const maxHeaderSection = 256 << 10

// MessageAuth reads the DMARC result of a stored message from the
// topmost Authentication-Results field of ours (authServID): our milter
// removes fields that claim our id before it adds its own (RFC 8601
// §5), so the topmost is ours when the message passed through it. The
// result must be dmarc=pass for the message's one From domain.
func MessageAuth(msg []byte, authServID string) Auth {
	end := -1 // the end of the empty line that ends the header section
	if i := bytes.Index(msg, []byte("\n\r\n")); i >= 0 {
		end = i + 3
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	if end < 0 || end > maxHeaderSection {
		return Auth{Why: "no header section of under 256 KB"}
	}
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg[:end]))).ReadMIMEHeader()
	if err != nil {
		return Auth{Why: "unreadable header: " + err.Error()}
	}
	froms := h.Values("From")
	if len(froms) != 1 {
		// RFC 7489 §6.6.1: no single author domain, no DMARC pass.
		return Auth{Why: fmt.Sprintf("%d From fields", len(froms))}
	}
	var fromDomain string
	if addrs, err := mail.ParseAddressList(froms[0]); err == nil && len(addrs) == 1 {
		if at := strings.LastIndexByte(addrs[0].Address, '@'); at >= 0 {
			fromDomain = strings.ToLower(addrs[0].Address[at+1:])
		}
	}
	if fromDomain == "" {
		return Auth{Why: "no single From address"}
	}
	if authServID == "" {
		return Auth{Reporter: fromDomain, Why: "no authserv-id to look for"}
	}
	for _, v := range h.Values("Authentication-Results") {
		if !authres.IsOurs(strings.TrimSpace(v), authServID) {
			continue
		}
		ar, err := authres.Parse(v)
		if err != nil {
			return Auth{Reporter: fromDomain, Why: "our Authentication-Results unreadable"}
		}
		for _, r := range ar.Results {
			if r.Method != "dmarc" {
				continue
			}
			why := "dmarc=" + r.Value + " header.from=" + r.Prop("header", "from") + " (Authentication-Results of " + authServID + ")"
			pass := strings.EqualFold(r.Value, "pass") && strings.EqualFold(r.Prop("header", "from"), fromDomain)
			return Auth{Pass: pass, Reporter: fromDomain, Why: why}
		}
		return Auth{Reporter: fromDomain, Why: "no dmarc result in our Authentication-Results"}
	}
	return Auth{Reporter: fromDomain, Why: "no Authentication-Results of " + authServID}
}

// ErrRefused marks a report not stored: about a domain not ours, or
// over its reporter's rate limit.
var ErrRefused = errors.New("report refused")

// ours says whether a report's policy domain is ours.
func (in *Inbound) ours(domain string) bool {
	if len(in.Domains) == 0 {
		return true
	}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	for _, d := range in.Domains {
		d = strings.TrimSuffix(strings.ToLower(d), ".")
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

// Ingest parses one report file and stores it. A malformed report is
// stored too, flagged with its error (and, when authenticated and under
// store.MaxKeptRaw, kept raw); the error is also returned. store.ErrDuplicate means the same
// bytes were stored before; ErrRefused that nothing was stored.
func (in *Inbound) Ingest(ctx context.Context, source, filename string, data []byte, auth Auth, now time.Time) (*store.ReceivedReport, error) {
	b := feedback.MessageBudget()
	return in.ingest(ctx, source, filename, data, auth, now, &b)
}

func (in *Inbound) ingest(ctx context.Context, source, filename string, data []byte, auth Auth, now time.Time, b *feedback.Budget) (*store.ReceivedReport, error) {
	reporter := auth.reporter()
	if in.PerReporterPerDay > 0 {
		n, err := in.Store.ReceivedFrom(ctx, reporter, now.Add(-24*time.Hour))
		if err != nil {
			return nil, err
		}
		if n >= in.PerReporterPerDay {
			return nil, fmt.Errorf("report: %d reports from %q in 24 hours, the most reports.inbound.per_reporter_per_day allows: %w", n, reporter, ErrRefused)
		}
	}
	rr := &store.ReceivedReport{ReceivedAt: now, Source: source, Filename: filename, Authenticated: auth.Pass, Auth: auth.Why, Reporter: reporter}
	f, perr := b.Parse(data)
	if f != nil {
		// A report that names no domain is kept flagged, with the reason
		// it could not be read.
		if d := strings.TrimSpace(f.PolicyPublished.Domain); d != "" && !in.ours(d) {
			return nil, fmt.Errorf("report: about %q, not one of our domains (reports.inbound.domains): %w", f.PolicyPublished.Domain, ErrRefused)
		}
		fill(rr, f)
	}
	if perr != nil {
		rr.Error = perr.Error()
	}
	if err := in.Store.SaveReceived(ctx, rr, data); err != nil {
		return rr, err
	}
	return rr, perr
}

func fill(rr *store.ReceivedReport, f *feedback.Feedback) {
	m := f.Metadata
	rr.OrgName, rr.Email, rr.ReportID = strings.TrimSpace(m.OrgName), strings.TrimSpace(m.Email), strings.TrimSpace(m.ReportID)
	rr.Domain = strings.ToLower(strings.TrimSpace(f.PolicyPublished.Domain))
	rr.Begin, rr.End = time.Unix(m.DateRange.Begin, 0).UTC(), time.Unix(m.DateRange.End, 0).UTC()
	pp := f.PolicyPublished
	var pol []string
	for _, kv := range [][2]string{{"p", pp.P}, {"sp", pp.SP}, {"np", pp.NP}, {"adkim", pp.ADKIM}, {"aspf", pp.ASPF}, {"t", pp.Testing}, {"pct", pp.Pct}, {"fo", pp.FO}} {
		if v := strings.TrimSpace(kv[1]); v != "" {
			pol = append(pol, kv[0]+"="+v)
		}
	}
	rr.Policy = strings.Join(pol, " ")
	for _, r := range f.Records {
		rec := store.ReceivedRecord{
			SourceIP: strings.TrimSpace(r.Row.SourceIP), Count: r.Row.Count, Disposition: r.Row.PolicyEvaluated.Disposition,
			DKIMAligned: r.Row.PolicyEvaluated.DKIM, SPFAligned: r.Row.PolicyEvaluated.SPF, HeaderFrom: strings.TrimSpace(r.Identifiers.HeaderFrom),
		}
		if r.Identifiers.EnvelopeFrom != nil {
			rec.EnvelopeFrom = *r.Identifiers.EnvelopeFrom
		}
		var dk []string
		for _, d := range r.AuthResults.DKIM {
			dk = append(dk, fmt.Sprintf("%s/%s=%s", d.Domain, d.Selector, d.Result))
		}
		if n := r.AuthResults.MoreDKIM; n > 0 {
			dk = append(dk, fmt.Sprintf("(+%d more)", n))
		}
		rec.DKIM = strings.Join(dk, " ")
		if s := r.AuthResults.SPF; s != nil {
			rec.SPF = s.Domain + "=" + s.Result
		}
		var reasons []string
		for _, x := range r.Row.PolicyEvaluated.Reasons {
			reasons = append(reasons, strings.TrimSpace(x.Type+" "+x.Comment))
		}
		rec.Reasons = strings.Join(reasons, "; ")
		rr.Records = append(rr.Records, rec)
	}
	rr.Messages = f.Messages()
}

// IngestMessage stores every report attached to a mail message, within
// one budget for the message (feedback.MessageBudget). It returns the
// reports stored, and an error naming each that failed; a message
// without any report attachment is an error too.
func (in *Inbound) IngestMessage(ctx context.Context, source string, msg []byte, auth Auth, now time.Time) ([]*store.ReceivedReport, error) {
	atts, aerr := feedback.Attachments(bytes.NewReader(msg))
	if aerr != nil && len(atts) == 0 {
		return nil, aerr
	}
	if len(atts) == 0 {
		return nil, fmt.Errorf("report: no report attached: %w", feedback.ErrNotReport)
	}
	var (
		out  []*store.ReceivedReport
		errs []error
	)
	if aerr != nil {
		errs = append(errs, aerr)
	}
	b := feedback.MessageBudget()
	for _, a := range atts {
		rr, err := in.ingest(ctx, source, a.Filename, a.Data, auth, now, &b)
		if err != nil && !errors.Is(err, store.ErrDuplicate) {
			// The file name is the sender's: quoted for terminals.
			errs = append(errs, fmt.Errorf("%q: %w", a.Filename, err))
		}
		if rr != nil && rr.ID != 0 {
			out = append(out, rr)
		}
	}
	return out, errors.Join(errs...)
}

// MaildirResult counts what an import did.
type MaildirResult struct {
	Messages, Reports, Duplicates, Malformed int
	// Unauthenticated reports were stored apart; Refused ones not at all.
	Unauthenticated, Refused int
	Errors                   []string
}

// ImportMaildir reads the messages in dir's new/ (and cur/ too when all
// is set), stores their reports and moves each message read from new/ to
// cur/ marked seen, as a mail reader would, so the next run skips it.
// Each message's Authentication-Results of ours say whether its reports
// are believed (MessageAuth).
func (in *Inbound) ImportMaildir(ctx context.Context, dir string, all bool, now time.Time) (MaildirResult, error) {
	var res MaildirResult
	subdirs := []string{"new"}
	if all {
		subdirs = append(subdirs, "cur")
	}
	for _, sub := range subdirs {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return res, fmt.Errorf("report: maildir: %w", err)
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(dir, sub, e.Name())
			msg, err := readMessage(path)
			if err == nil {
				res.Messages++
				in.importMessage(ctx, dir, e.Name(), msg, now, &res)
			} else {
				res.Errors = append(res.Errors, err.Error())
			}
			if sub == "new" {
				name := e.Name()
				if !strings.Contains(name, ":2,") {
					name += ":2,S"
				}
				if err := os.Rename(path, filepath.Join(dir, "cur", name)); err != nil {
					res.Errors = append(res.Errors, err.Error())
				}
			}
		}
	}
	return res, nil
}

func (in *Inbound) importMessage(ctx context.Context, dir, name string, msg []byte, now time.Time, res *MaildirResult) {
	rrs, err := in.IngestMessage(ctx, "maildir:"+dir, msg, MessageAuth(msg, in.AuthServID), now)
	for _, rr := range rrs {
		res.Reports++
		if rr.Error != "" {
			res.Malformed++
		}
		if !rr.Authenticated {
			res.Unauthenticated++
		}
	}
	if errors.Is(err, ErrRefused) {
		res.Refused++
	}
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("%q: %v", name, err))
	}
	if len(rrs) == 0 && err == nil {
		res.Duplicates++
	}
}

// readMessage reads a message file of at most feedback.MaxMessage octets.
func readMessage(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	msg, err := io.ReadAll(io.LimitReader(f, feedback.MaxMessage+1))
	if err != nil {
		return nil, err
	}
	if len(msg) > feedback.MaxMessage {
		return nil, fmt.Errorf("report: %q: over %d octets, not read: %w", filepath.Base(path), feedback.MaxMessage, feedback.ErrLimit)
	}
	return msg, nil
}
