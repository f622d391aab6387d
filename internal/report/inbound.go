package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"mailwall/internal/feedback"
	"mailwall/internal/store"
)

// Ingest parses one report file and stores it. A malformed report is
// stored too, flagged with its error and kept raw; the error is also
// returned. store.ErrDuplicate means the same bytes were stored before.
func Ingest(ctx context.Context, st *store.Store, source, filename string, data []byte, now time.Time) (*store.ReceivedReport, error) {
	rr := &store.ReceivedReport{ReceivedAt: now, Source: source, Filename: filename}
	f, perr := feedback.Parse(data)
	if f != nil {
		fill(rr, f)
	}
	if perr != nil {
		rr.Error = perr.Error()
	}
	if err := st.SaveReceived(ctx, rr, data); err != nil {
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

// IngestMessage stores every report attached to a mail message. It
// returns the reports stored, and an error naming each that failed; a
// message without any report attachment is an error too.
func IngestMessage(ctx context.Context, st *store.Store, source string, msg []byte, now time.Time) ([]*store.ReceivedReport, error) {
	atts, err := feedback.Attachments(bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	if len(atts) == 0 {
		return nil, fmt.Errorf("report: no report attached: %w", feedback.ErrNotReport)
	}
	var (
		out  []*store.ReceivedReport
		errs []error
	)
	for _, a := range atts {
		rr, err := Ingest(ctx, st, source, a.Filename, a.Data, now)
		if err != nil && !errors.Is(err, store.ErrDuplicate) {
			errs = append(errs, fmt.Errorf("%s: %w", a.Filename, err))
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
	Errors                                   []string
}

// ImportMaildir reads the messages in dir's new/ (and cur/ too when all
// is set), stores their reports and moves each message read from new/ to
// cur/ marked seen, as a mail reader would, so the next run skips it.
func ImportMaildir(ctx context.Context, st *store.Store, dir string, all bool, now time.Time) (MaildirResult, error) {
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
			msg, err := os.ReadFile(path)
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
				continue
			}
			res.Messages++
			rrs, err := IngestMessage(ctx, st, "maildir:"+dir, msg, now)
			for _, rr := range rrs {
				res.Reports++
				if rr.Error != "" {
					res.Malformed++
				}
			}
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", e.Name(), err))
			}
			if len(rrs) == 0 && err == nil {
				res.Duplicates++
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
