package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"mailwall/internal/greylist"
)

// greylistTimeout bounds the store's part of one request: past it the
// request is not greylisted (a slow database never holds mail; Postfix
// waits smtpd_policy_service_timeout, 100 s, for the whole answer).
const greylistTimeout = 5 * time.Second

// SetGreylist turns greylisting on with g (nil: off) for later requests.
// It is separate from Reload because the greylist needs the store, which
// opens after the listeners.
//
// The server starts g's write-behind (greylist.StartWriteBehind: a
// deferral answered from a read, its triplet written with others a few
// milliseconds later) and closes g, writing what waits, when another
// replaces it or at Shutdown: the store must stay open until then.
func (s *Server) SetGreylist(g *greylist.Greylister) {
	if g != nil {
		g.StartWriteBehind(s.log)
	}
	if old := s.grey.Swap(g); old != nil && old != g {
		old.Close()
	}
}

// greylistStep runs after SPF let a recipient through (PREPEND or DUNNO):
// it returns a deferral when the recipient's triplet is greylisted, with
// the tarpit to wait before answering (s.tarpit), else ok false. Clients
// exempt from SPF (skip_addresses, allow_ips, allow_domains) are exempt
// here too.
func (s *Server) greylistStep(ru *rules, spfResp Response, req Request) (resp Response, tarpit time.Duration, ok bool) {
	g := s.grey.Load()
	if g == nil || spfResp.exempt || spfResp.allowlisted || (spfResp.Action != Prepend && spfResp.Action != Dunno) {
		return Response{}, 0, false
	}
	defer func() {
		if p := recover(); p != nil {
			s.internalErrors.Add(1)
			s.log.Error("greylisting failed inside mailwall: not greylisted", "panic", fmt.Sprint(p), "client_address", req["client_address"])
			resp, tarpit, ok = Response{}, 0, false
		}
	}()
	ip, err := netip.ParseAddr(req["client_address"])
	if err != nil {
		return Response{}, 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), greylistTimeout)
	d := g.Check(ctx, greylist.Request{IP: ip, ClientName: req["client_name"], Sender: req["sender"], Recipient: req["recipient"],
		Authenticated: req["sasl_username"] != "", Listed: spfResp.greyReason})
	cancel()
	if ru.opts.ObserveGreylist != nil {
		ru.opts.ObserveGreylist(d)
	}
	s.logGreylist(req, d)
	if d.Outcome != greylist.Deferred {
		return Response{}, 0, false
	}
	return Response{Action: Defer, Text: d.Text}, d.Tarpit, true
}

// tarpit waits d before a deferral is answered (taRgrey: much spam
// software gives up during it, and the smtpd process it holds is the
// spammer's loss); Shutdown cuts it short.
func (s *Server) tarpit(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.stop:
	}
}

// logGreylist logs what greylisting did to a subject client (not the
// exempt and not-subject ones: that is most mail).
func (s *Server) logGreylist(req Request, d greylist.Decision) {
	LogGreylist(s.log, req["queue_id"], req["client_address"], req["client_name"], req["sender"], req["recipient"], d)
}

// LogGreylist logs a greylisting decision on log as the policy server
// does (the milter's greylisting logs the same line): a subject client's
// outcome at info, a store failure at warn, nothing for exempt and
// not-subject clients (most mail).
func LogGreylist(log *slog.Logger, queueID, client, clientName, sender, recipient string, d greylist.Decision) {
	if d.Outcome == greylist.Exempt || d.Outcome == greylist.NotSubject {
		return
	}
	level := slog.LevelInfo
	attrs := []slog.Attr{slog.String("queue_id", queueID), slog.String("client", client),
		slog.String("client_name", clientName), slog.String("sender", sender), slog.String("recipient", recipient),
		slog.String("outcome", string(d.Outcome)), slog.String("reason", d.Reason)}
	if d.Outcome == greylist.Deferred {
		attrs = append(attrs, slog.Int64("wait_seconds", int64(d.Wait/time.Second)))
	}
	if d.Err != nil {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("err", d.Err.Error()))
	}
	log.LogAttrs(context.Background(), level, "greylist", attrs...)
}
