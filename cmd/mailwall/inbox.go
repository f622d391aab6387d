package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/report"
	"mailwall/internal/store"
)

// maxReportMessage bounds the copy of a message to a report address.
const maxReportMessage = 20 << 20

// reportInbox takes the mail sent to the configured report addresses
// (reports.inbound.addresses) off the milter and stores its reports,
// in the background: the mail itself is delivered as usual.
type reportInbox struct {
	addrs   map[string]bool
	in      *report.Inbound
	log     *slog.Logger
	outcome func(string) // metrics, may be nil
	sem     chan struct{}
}

func newReportInbox(cfg *config.Config, st *store.Store, log *slog.Logger, outcome func(string)) *reportInbox {
	addrs := cfg.Reports.Inbound.Addresses
	if len(addrs) == 0 || st == nil {
		return nil
	}
	in := &reportInbox{addrs: map[string]bool{}, in: newInbound(cfg, st), log: log, outcome: outcome, sem: make(chan struct{}, 2)}
	for _, a := range addrs {
		in.addrs[strings.ToLower(a)] = true
	}
	return in
}

func (in *reportInbox) wants(rcpt string) bool { return in.addrs[strings.ToLower(rcpt)] }

func (in *reportInbox) count(outcome string) {
	if in.outcome != nil {
		in.outcome(outcome)
	}
}

// take stores the reports in msg without holding the milter; auth is
// the message's DMARC result, which decides whether they are believed.
func (in *reportInbox) take(msg []byte, tooBig bool, queueID string, auth report.Auth) {
	if tooBig {
		in.log.Warn("dmarc report message too big to read; delivered unread", "queue_id", queueID, "limit", maxReportMessage)
		in.count("malformed")
		return
	}
	select {
	case in.sem <- struct{}{}:
	default:
		in.log.Warn("dmarc report reader busy; message delivered unread", "queue_id", queueID)
		return
	}
	go func() {
		defer func() { <-in.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rrs, err := in.in.IngestMessage(ctx, "milter", msg, auth, time.Now())
		for _, rr := range rrs {
			switch {
			case rr.Error != "":
				in.count("malformed")
			case !rr.Authenticated:
				in.count("received_unauthenticated")
			default:
				in.count("received")
			}
			in.log.Info("dmarc report received", "queue_id", queueID, "org", rr.OrgName, "report_id", rr.ReportID, "domain", rr.Domain, "messages", rr.Messages,
				"authenticated", rr.Authenticated, "auth", rr.Auth, "error", rr.Error)
		}
		if errors.Is(err, report.ErrRefused) {
			in.count("refused")
		}
		if err != nil && !errors.Is(err, store.ErrDuplicate) {
			in.log.Warn("dmarc report message", "queue_id", queueID, "auth", auth.Why, "err", err)
		}
	}()
}
