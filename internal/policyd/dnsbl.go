package policyd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/dnsbl"
	"mailwall/internal/dnsx"
)

// BlocklistAction is what a blocklist score at or above the reject
// threshold does.
type BlocklistAction string

// The actions of dnsbl.action.
const (
	BlocklistReject BlocklistAction = "reject" // 554 5.7.1, as reject_rbl_client
	BlocklistDefer  BlocklistAction = "defer"  // DEFER_IF_PERMIT 4.7.1
	BlocklistNone   BlocklistAction = "none"   // logged and counted only
)

// DefaultBlocklistReply is Postfix's reject_rbl_client text.
const DefaultBlocklistReply = "Service unavailable; Client host [{ip}] blocked using {zone}"

// Blocklists are the DNS block and allow lists asked about the client at
// its first RCPT of a message, with postscreen's weighted scoring
// (postconf(5) postscreen_dnsbl_sites, postscreen_dnsbl_threshold,
// postscreen_dnsbl_allowlist_threshold).
type Blocklists struct {
	Sites []dnsbl.Site
	// Timeout bounds each query, Budget all zones together; a zone not
	// answered in time adds nothing (a timeout never blocks mail).
	Timeout, Budget time.Duration
	// A sum of weights at or above RejectThreshold (at least 1) takes
	// Action.
	RejectThreshold int
	Action          BlocklistAction
	// A sum at or below AllowlistThreshold (negative; 0: off) exempts
	// the client from greylisting.
	AllowlistThreshold int
	// A sum at or above GreylistThreshold (0: off) greylists the client
	// even when the greylist's mode would not.
	GreylistThreshold int
	// Reply is the text after the code: {zone}, {ip}, {reason} (the
	// list's TXT, asked only when Reply uses it). Empty:
	// DefaultBlocklistReply.
	Reply string
	// ReplyNames are shown instead of zones (postscreen_dnsbl_reply_map):
	// a zone with an access key in it must not reach the client.
	ReplyNames map[string]string
	// ZoneActions give a zone its own action (reject or defer): a
	// listing there (with a positive weight) takes it whatever the sum
	// and Action say, as Postfix's reject_rbl_client for that zone
	// beside postscreen's scoring of the others.
	ZoneActions map[string]BlocklistAction
}

// BlocklistCheck is one client's check, for metrics: each zone's outcome
// (listed, not_listed, error, refused) and what it led to (reject,
// defer, scored: at the threshold with action none, greylist,
// allowlisted, none).
type BlocklistCheck struct {
	Zones  map[string]string
	Action string
	Took   time.Duration
}

// blocklister is a Blocklists ready to ask.
type blocklister struct {
	cfg     Blocklists
	checker *dnsbl.Checker
	zones   []string // distinct zones of the sites, for per-zone outcomes
}

func newBlocklister(b *Blocklists, r dnsx.Resolver, log *slog.Logger) *blocklister {
	if b == nil || len(b.Sites) == 0 || r == nil {
		return nil
	}
	cfg := *b
	if cfg.Reply == "" {
		cfg.Reply = DefaultBlocklistReply
	}
	if cfg.RejectThreshold < 1 {
		cfg.RejectThreshold = 1
	}
	if cfg.Action == "" {
		cfg.Action = BlocklistReject
	}
	seen := map[string]bool{}
	var zones []string
	for _, s := range cfg.Sites {
		if !seen[s.Zone] {
			seen[s.Zone] = true
			zones = append(zones, s.Zone)
		}
	}
	return &blocklister{cfg: cfg, zones: zones, checker: dnsbl.New(r, dnsbl.Options{IPSites: cfg.Sites, Timeout: cfg.Timeout,
		Budget: cfg.Budget, TXT: strings.Contains(cfg.Reply, "{reason}"), Logger: log})}
}

// blocklistVerdict is what the blocklists decided for one message.
type blocklistVerdict struct {
	resp        *Response // a rejection or deferral; nil: go on
	allowlisted bool      // exempt from greylisting
	greyReason  string    // greylist whatever the mode says, for this reason
}

// checkBlocklists asks the lists about ip. It runs before SPF, as
// postscreen runs before smtpd: one cached A query per zone, in
// parallel, is the cheapest check there is, and a listed client then
// costs no SPF lookups. Errors and timeouts add nothing to the score.
func (s *Server) checkBlocklists(ctx context.Context, ru *rules, ip netip.Addr, req Request) (v blocklistVerdict) {
	bl := ru.bl
	if bl == nil || req["sasl_username"] != "" {
		return v
	}
	defer func() {
		if p := recover(); p != nil {
			s.internalErrors.Add(1)
			s.log.Error("blocklist check failed inside mailwall: not blocked", "panic", fmt.Sprint(p), "client_address", ip.String())
			v = blocklistVerdict{}
		}
	}()
	start := time.Now()
	res := bl.checker.CheckIP(ctx, ip)
	took := time.Since(start)
	action, v := bl.judge(res, ip)
	logBlocklist(s.log, req["queue_id"], ip, res, action, took)
	if s.ObserveDNSBL != nil {
		s.ObserveDNSBL(BlocklistCheck{Zones: bl.outcomes(res), Action: action, Took: took})
	}
	return v
}

// judge maps a check's score to what it leads to (postscreen's order: the
// reject threshold, then the allow-list threshold) and the action's name
// for logs and metrics.
func (bl *blocklister) judge(res *dnsbl.Result, ip netip.Addr) (action string, v blocklistVerdict) {
	action = "none"
	if h, act := bl.zoneAction(res); act != "" {
		// A zone's own action; reject before defer (zoneAction).
		if act == BlocklistReject {
			v.resp = &Response{Action: Reject, Text: "554 5.7.1 " + bl.replyFor(h, ip)}
		} else {
			v.resp = &Response{Action: Defer, Text: "4.7.1 " + bl.replyFor(h, ip)}
		}
		return string(act), v
	}
	switch {
	case res.Score >= bl.cfg.RejectThreshold && bl.cfg.Action == BlocklistReject:
		action = "reject"
		v.resp = &Response{Action: Reject, Text: "554 5.7.1 " + bl.reply(res, ip)}
	case res.Score >= bl.cfg.RejectThreshold && bl.cfg.Action == BlocklistDefer:
		action = "defer"
		v.resp = &Response{Action: Defer, Text: "4.7.1 " + bl.reply(res, ip)}
	case bl.cfg.GreylistThreshold > 0 && res.Score >= bl.cfg.GreylistThreshold:
		action = "greylist"
		v.greyReason = fmt.Sprintf("%s has a blocklist score of %d (%s)", ip, res.Score, bl.zoneNames(res))
	case res.Score >= bl.cfg.RejectThreshold:
		action = "scored"
	case bl.cfg.AllowlistThreshold < 0 && res.Score <= bl.cfg.AllowlistThreshold:
		action = "allowlisted"
		v.allowlisted = true
	}
	return action, v
}

// RcptBlocklists are Blocklists asked outside the policy server, by the
// milter at RCPT for a site that runs no policy server: the same query,
// score and decision as the policy server's.
type RcptBlocklists struct {
	bl  *blocklister
	log *slog.Logger
	// Observe, when set, hears each check (for metrics); it must not
	// block.
	Observe func(BlocklistCheck)
}

// NewRcptBlocklists readies b on r; nil when b lists no site.
func NewRcptBlocklists(b *Blocklists, r dnsx.Resolver, log *slog.Logger) *RcptBlocklists {
	if log == nil {
		log = slog.Default()
	}
	bl := newBlocklister(b, r, log)
	if bl == nil {
		return nil
	}
	return &RcptBlocklists{bl: bl, log: log}
}

// RcptBlocklistVerdict is what the blocklists decided about one client.
type RcptBlocklistVerdict struct {
	// Reply is the refusal as an SMTP reply ("554 5.7.1 ..." or, for
	// dnsbl.action defer, "450 4.7.1 ..."); "" lets the client on.
	Reply string
	// Allowlisted: the allow lists' sum exempts the client from
	// greylisting. GreyReason, when set, greylists it whatever the
	// greylist's mode says.
	Allowlisted bool
	GreyReason  string
}

// Check asks the lists about ip, logs what they said as the policy
// server does, and decides. Errors and timeouts add nothing.
func (g *RcptBlocklists) Check(ctx context.Context, ip netip.Addr, queueID string) RcptBlocklistVerdict {
	ip = ip.Unmap()
	start := time.Now()
	res := g.bl.checker.CheckIP(ctx, ip)
	took := time.Since(start)
	action, v := g.bl.judge(res, ip)
	logBlocklist(g.log, queueID, ip, res, action, took)
	if g.Observe != nil {
		g.Observe(BlocklistCheck{Zones: g.bl.outcomes(res), Action: action, Took: took})
	}
	out := RcptBlocklistVerdict{Allowlisted: v.allowlisted, GreyReason: v.greyReason}
	if v.resp != nil {
		out.Reply = v.resp.Text
		if v.resp.Action == Defer {
			// Postfix answers DEFER_IF_PERMIT with 450.
			out.Reply = "450 " + v.resp.Text
		}
	}
	return out
}

// outcomes gives each configured zone's outcome in res.
func (bl *blocklister) outcomes(res *dnsbl.Result) map[string]string {
	out := make(map[string]string, len(bl.zones))
	for _, z := range bl.zones {
		out[z] = "not_listed"
	}
	for _, h := range res.Hits {
		out[h.Zone] = "listed"
	}
	for _, e := range res.Errors {
		if e.Kind == dnsbl.TempError {
			out[e.Zone] = "error"
		} else {
			// Refusal codes and answers outside 127/8: the list will
			// not answer us; the admin must act.
			out[e.Zone] = "refused"
		}
	}
	return out
}

// zoneAction is the hit of a zone with its own action, and the action: a
// reject zone's before a defer zone's, the first listed of each. None:
// "".
func (bl *blocklister) zoneAction(res *dnsbl.Result) (dnsbl.Hit, BlocklistAction) {
	if len(bl.cfg.ZoneActions) == 0 {
		return dnsbl.Hit{}, ""
	}
	var found dnsbl.Hit
	var act BlocklistAction
	for _, h := range res.Hits {
		a := bl.cfg.ZoneActions[h.Zone]
		if h.Weight <= 0 || (a != BlocklistReject && a != BlocklistDefer) {
			continue
		}
		if a == BlocklistReject {
			return h, a
		}
		if act == "" {
			found, act = h, a
		}
	}
	return found, act
}

// reply fills in the reply text for the listing of the highest weight.
func (bl *blocklister) reply(res *dnsbl.Result, ip netip.Addr) string {
	var top dnsbl.Hit
	for _, h := range res.Hits {
		if h.Weight > top.Weight {
			top = h
		}
	}
	return bl.replyFor(top, ip)
}

// replyFor fills in the reply text for the listing h.
func (bl *blocklister) replyFor(top dnsbl.Hit, ip netip.Addr) string {
	msg := strings.NewReplacer("{zone}", bl.replyName(top.Zone), "{ip}", ip.String(), "{reason}", top.Reason).Replace(bl.cfg.Reply)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, msg)
}

func (bl *blocklister) replyName(zone string) string {
	if n, ok := bl.cfg.ReplyNames[zone]; ok {
		return n
	}
	return zone
}

// zoneNames lists the listing zones by their public names.
func (bl *blocklister) zoneNames(res *dnsbl.Result) string {
	var names []string
	seen := map[string]bool{}
	for _, h := range res.Hits {
		if n := bl.replyName(h.Zone); h.Weight > 0 && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// logBlocklist logs a client with hits or errors (info; warn for
// refusals), and unlisted clients at debug: that is most mail.
func logBlocklist(log *slog.Logger, queueID string, ip netip.Addr, res *dnsbl.Result, action string, took time.Duration) {
	level := slog.LevelDebug
	if len(res.Hits) > 0 || len(res.Errors) > 0 {
		level = slog.LevelInfo
	}
	var hits, errs []string
	for _, h := range res.Hits {
		as := make([]string, len(h.Answers))
		for i, a := range h.Answers {
			as[i] = a.String()
		}
		hits = append(hits, h.Zone+"="+strings.Join(as, ",")+"*"+strconv.Itoa(h.Weight))
	}
	for _, e := range res.Errors {
		errs = append(errs, e.Zone+": "+e.Kind.String())
		if e.Kind != dnsbl.TempError {
			level = slog.LevelWarn
		}
	}
	if !log.Enabled(context.Background(), level) {
		return
	}
	log.LogAttrs(context.Background(), level, "dnsbl", slog.String("queue_id", queueID), slog.String("client", ip.String()),
		slog.Int("score", res.Score), slog.String("hits", strings.Join(hits, " ")), slog.String("errors", strings.Join(errs, "; ")),
		slog.String("action", action), slog.Duration("took", took))
}
