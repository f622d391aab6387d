package policyd

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"

	"mailwall/internal/lists"
	"mailwall/internal/spf"
)

// ListReply is the text of a refusal by the site's block list (RFC 3463
// 5.7.1: delivery not authorized).
const ListReply = "550 5.7.1 sender is on this site's block list"

// SetLists makes later requests consult the allow and block lists of c
// (nil: none). Like SetGreylist it is apart from Reload: the lists live
// in the store, which opens after the listeners.
func (s *Server) SetLists(c *lists.Cache) { s.lists.Store(c) }

// listSet is the current lists, nil when there are none.
func (s *Server) listSet() *lists.Set {
	c := s.lists.Load()
	if c == nil {
		return nil
	}
	if set := c.Set(); set.Len() > 0 {
		return set
	}
	return nil
}

// checkListsBefore runs before SPF and the blocklists with what is known
// without SPF: the client address and the claimed MAIL FROM. A block
// entry (IP or sender, which needs no authentication) refuses; an allowed
// client is exempt from the SPF rejection, the blocklists and
// greylisting, as policyd-spf's Whitelist. A sender's allow entry needs
// SPF's pass, so it waits for checkListsAfter.
func (s *Server) checkListsBefore(set *lists.Set, ip netip.Addr, sender string, req Request, detail func() string) *Response {
	d := set.Check(lists.Query{IP: ip, MailFrom: sender})
	switch {
	case d.Blocked():
		s.logList(req, "reject", d.Block.String())
		return &Response{Action: Reject, Text: ListReply, listHit: true}
	case d.Allowed():
		s.logList(req, "allow", d.Allow.String())
		return &Response{Action: Prepend, Text: "X-Comment: SPF skipped for allow-listed client - " + detail(), exempt: true, listHit: true}
	}
	return nil
}

// checkListsAfter exempts from greylisting a message whose MAIL FROM
// passed SPF and is on the allow list: at RCPT, SPF is the only
// authentication known (DMARC needs the header).
func (s *Server) checkListsAfter(set *lists.Set, sender string, resp *Response, req Request) {
	if sender == "" || resp.Outcome.Result != spf.Pass || resp.Outcome.Identity != spf.MailFrom {
		return
	}
	// The client was matched before SPF; only the sender is new.
	if d := set.Check(lists.Query{MailFrom: sender, MailFromAuth: true}); d.Allowed() {
		s.logList(req, "allow", d.Allow.String())
		resp.exempt = true
	}
}

// listRcpt applies recipient entries to one recipient's answer: one who
// wants everything gets the message whatever SPF, the blocklists or
// greylisting said (the SPF header still goes with the first recipient);
// a blocked one is refused. ok false: no entry.
func (s *Server) listRcpt(set *lists.Set, resp Response, req Request) (Response, bool) {
	rcpt := strings.ToLower(req["recipient"])
	if set == nil || rcpt == "" {
		return resp, false
	}
	d := set.Check(lists.Query{Rcpts: []string{rcpt}})
	switch {
	case d.Blocked():
		s.logList(req, "reject", d.Block.String())
		return Response{Action: Reject, Text: ListReply, listHit: true}, true
	case d.Allowed():
		s.logList(req, "allow", d.Allow.String())
		if resp.Action != Prepend {
			return Response{Action: Dunno, exempt: true, listHit: true}, true
		}
		resp.exempt = true
		return resp, true
	}
	return resp, false
}

func (s *Server) logList(req Request, action, hit string) {
	if s.ObserveLists != nil {
		list := "allow"
		if action == "reject" {
			list = "block"
		}
		s.ObserveLists(list)
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "lists", slog.String("queue_id", req["queue_id"]),
		slog.String("client", req["client_address"]), slog.String("sender", req["sender"]), slog.String("recipient", req["recipient"]),
		slog.String("action", action), slog.String("entry", hit))
}
