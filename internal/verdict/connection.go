// The connection stage, before the body: HELO (tables, syntax), iprev,
// S25R and SPF for MAIL FROM.

package verdict

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"mailwall/internal/conncheck"
	"mailwall/internal/debuglog"
	"mailwall/internal/lists"
	"mailwall/internal/spf"
)

// CheckHelo runs the HELO stage: the regexp tables, then syntax. It
// returns the action and the SMTP reply Postfix would give.
func (c *Checker) CheckHelo(helo string) (Action, string, string) {
	for _, t := range c.HeloTables {
		res, ok := t.Lookup(helo)
		if !ok {
			continue
		}
		d := conncheck.ParseAction(res)
		if act, ok := heloRefusal(d.Kind); ok {
			return act, d.Reply("Helo command", helo), fmt.Sprintf("%s: %s", t.Name, res)
		}
		switch d.Kind {
		case "hold":
			return Quarantine, "", fmt.Sprintf("%s: %s", t.Name, res)
		case "ok":
			return Accept, "", ""
		}
	}
	if reply := conncheck.HeloSyntax(helo, c.Policy.HeloRequireFQDN); reply != "" {
		return c.Policy.HeloInvalid, reply, "invalid HELO " + helo
	}
	return Accept, "", ""
}

// CheckHeloClient is CheckHelo for a client at ip: a client the site's
// allow list names by address or network passes the HELO stage whatever
// its HELO, as Postfix's "smtpd_helo_restrictions = check_client_access
// ..., check_helo_access ..." lets an OK for the client end the list
// before any HELO table or syntax rule is read (postconf(5)
// smtpd_helo_restrictions; postscreen's allow list likewise skips its
// tests). ip may be the zero Addr (unknown): CheckHelo.
func (c *Checker) CheckHeloClient(ip netip.Addr, helo string) (Action, string, string) {
	if c.clientAllowed(ip) {
		return Accept, "", ""
	}
	if c.isNotChecked(ip) {
		return Accept, "", ""
	}
	return c.CheckHelo(helo)
}

// isNotChecked reports whether ip is in NotChecked.
func (c *Checker) isNotChecked(ip netip.Addr) bool {
	for _, p := range c.NotChecked {
		if ip.IsValid() && p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// clientAllowed reports whether an allow entry names ip (an address or a
// network: the only entries known before MAIL FROM, and the only ones
// that need no authentication).
func (c *Checker) clientAllowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	set := c.Lists.Set()
	if set.Len() == 0 {
		return false
	}
	return set.Check(lists.Query{IP: ip}).Allowed()
}

// heloRefusal is the action of a HELO table decision that refuses:
// Reject or TempFail, and false for the kinds that do not.
func heloRefusal(kind string) (Action, bool) {
	switch kind {
	case "reject":
		return Reject, true
	case "defer", "defer_if_permit", "defer_if_reject":
		return TempFail, true
	}
	return "", false
}

// HeloCanRefuse reports whether CheckHelo can answer Reject or TempFail.
// The milter asks Postfix to wait for its answer at HELO only then: the
// wait is a round trip per connection, about a third of the time one
// message takes when connections come one at a time.
func (c *Checker) HeloCanRefuse() bool {
	if c.Policy.HeloInvalid == Reject || c.Policy.HeloInvalid == TempFail {
		return true
	}
	for _, t := range c.HeloTables {
		for _, r := range t.Rules() {
			if _, ok := heloRefusal(conncheck.ParseAction(r.Result).Kind); ok {
				return true
			}
			if action, _, _ := strings.Cut(strings.TrimSpace(r.Result), " "); strings.Contains(action, "$") {
				return true // the action comes from the match: it may refuse
			}
		}
	}
	return false
}

// IsInternal reports whether mail from ip (or an authenticated user) is
// ours to sign rather than to check.
func (c *Checker) IsInternal(env Envelope) bool {
	if env.AuthUser != "" || env.Local {
		return true
	}
	for _, p := range c.Internal {
		if p.Contains(env.ClientIP.Unmap()) {
			return true
		}
	}
	return false
}

// Start begins a message. The connection and SPF checks run here, before
// the body arrives.
func (c *Checker) Start(ctx context.Context, env Envelope) *Message {
	m := &Message{c: c, ctx: ctx, env: env, internal: c.IsInternal(env), dbg: debuglog.From(ctx)}
	m.res.Action = Accept
	m.res.Internal = m.internal
	if m.internal {
		return m
	}
	if c.isNotChecked(env.ClientIP) {
		// Passed on unchecked and unsigned: Finish's internal path, with
		// no signer.
		m.internal, m.notChecked, m.res.NotChecked = true, true, true
		m.res.Reasons = append(m.res.Reasons, "not checked: the client is in checks.not_checked")
		return m
	}
	act, reply, why := c.CheckHeloClient(env.ClientIP, env.Helo)
	m.res.Helo = "pass"
	if why != "" {
		m.res.Helo = "fail"
		m.res.decide(act, "helo", why, reply)
	}
	m.res.IPRev = conncheck.CheckIPRev(ctx, c.Resolver, env.ClientIP)
	switch m.res.IPRev.Result {
	case "fail", "permerror":
		m.res.decide(c.Policy.IPRevFail, "iprev", m.res.IPRev.Result+": "+m.res.IPRev.Reason, "")
	case "temperror":
		m.res.Reasons = append(m.res.Reasons, "iprev: temperror: "+m.res.IPRev.Reason)
	}
	if c.S25R != nil {
		name := ""
		if m.res.IPRev.Result == "pass" {
			name = m.res.IPRev.Name
		}
		if rule, hit := c.S25R.Match(env.ClientIP, name); hit {
			m.res.S25R = rule
			m.res.decide(c.Policy.S25R, "s25r", "dynamic-looking client ("+rule+")", "")
		}
	}
	m.res.SPF = c.SPF.CheckMailFrom(ctx, env.ClientIP, env.MailFrom, env.Helo)
	switch m.res.SPF.Result {
	case spf.Fail:
		m.res.decide(c.Policy.SPFFail, "spf", "fail: "+m.res.SPF.Explanation, "550 5.7.23 SPF fail: "+m.res.SPF.Explanation)
	case spf.TempError:
		m.res.Reasons = append(m.res.Reasons, "spf: temperror: "+m.res.SPF.Problem)
	}
	if m.dbg != nil {
		m.debugStart()
	}
	return m
}
