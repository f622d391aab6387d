// The authentication stage, at end of message: DKIM, ARC and DMARC
// (RFC 9989), with the local override for trusted ARC sealers.

package verdict

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"golang.org/x/net/idna"

	"mailwall/internal/arc"
	"mailwall/internal/authres"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/mailbox"
	"mailwall/internal/spf"
)

// authenticate runs DKIM, ARC and DMARC at end of message and decides
// on their outcomes (and on an SPF or DKIM temperror that DMARC did not
// make moot).
func (m *Message) authenticate() {
	c, r := m.c, &m.res
	if m.verify == nil {
		m.EndOfHeaders()
	}
	// DKIM and ARC draw on one budget of verification work per message.
	vctx := dkim.WithBudget(m.ctx, c.DKIM.Budget)
	r.DKIM = m.verify.Finish(vctx)
	if r.DKIM == nil {
		r.DKIM = []dkim.Result{} // "dkim": [] in JSON, not null
	}
	in := dmarc.Input{FromDomains: m.from().domains, SPFResult: string(r.SPF.Result), SourceIP: m.env.ClientIP}
	if len(m.env.Rcpts) > 0 {
		_, in.EnvelopeTo, _ = strings.Cut(m.env.Rcpts[0], "@")
	}
	if _, d, ok := strings.Cut(m.env.MailFrom, "@"); ok {
		in.SPFDomain, in.SPFScope = strings.ToLower(d), "mfrom"
	} else {
		in.SPFDomain, in.SPFScope = strings.ToLower(m.env.Helo), "helo"
	}
	for _, d := range r.DKIM {
		if d.Domain == "" {
			// No d= (the count of signatures past max_signatures, or one
			// too broken to name its domain): nothing to align or report.
			continue
		}
		in.DKIM = append(in.DKIM, dmarc.DKIMResult{Domain: d.Domain, Selector: d.Selector, Result: string(d.Status)})
	}
	r.DMARC = c.DMARC.Evaluate(m.ctx, in)
	if m.arc != nil {
		// Without validation there is no arc= to report, not arc=none.
		r.ARC = m.arc.Finish(vctx)
	}
	if r.ARC.Result == arc.Fail {
		r.Reasons = append(r.Reasons, "arc: fail: "+r.ARC.Reason)
	}
	if r.DMARC.Result == dmarc.Fail {
		if sealer := c.trustedPass(r.ARC, r.DMARC.HeaderFrom); sealer != "" {
			// RFC 9989 §5.4 leaves the final disposition to the receiver;
			// RFC 9990 reports it as the trusted_forwarder override.
			r.Override = "trusted_forwarder " + sealer
			r.DMARC.Disposition = dmarc.PolicyNone
			r.DMARC.Row.Disposition = dmarc.PolicyNone
			r.DMARC.Row.Reasons = append(r.DMARC.Row.Reasons, "trusted_forwarder")
			r.Reasons = append(r.Reasons, fmt.Sprintf("dmarc: fail for %s set aside: trusted ARC sealer %s saw dmarc=pass", r.DMARC.HeaderFrom, sealer))
		}
	}
	switch r.DMARC.Result {
	case dmarc.Fail:
		why := fmt.Sprintf("fail for %s (p=%s, disposition %s): %s", r.DMARC.HeaderFrom, r.DMARC.Policy, r.DMARC.Disposition, r.DMARC.Reason)
		switch r.DMARC.Disposition {
		case dmarc.PolicyReject:
			r.decide(c.Policy.DMARCReject, "dmarc", why, "550 5.7.1 Rejected by DMARC policy for "+r.DMARC.HeaderFrom)
			localPolicy(&r.DMARC.Row, c.Policy.DMARCReject)
		case dmarc.PolicyQuarantine:
			r.decide(c.Policy.DMARCQuarantine, "dmarc", why, "")
			localPolicy(&r.DMARC.Row, c.Policy.DMARCQuarantine)
		default:
			r.Reasons = append(r.Reasons, "dmarc: "+why)
		}
	case dmarc.TempError:
		r.decide(c.Policy.TempError, "dmarc", "temperror: "+r.DMARC.Reason, "451 4.7.5 DMARC check failed temporarily, try again later")
	case dmarc.PermError:
		r.Reasons = append(r.Reasons, "dmarc: permerror: "+r.DMARC.Reason)
	}
	if m.dbg != nil {
		m.debugAuth(in.FromDomains)
	}
	if r.SPF.Result == spf.TempError && r.DMARC.Result != dmarc.Pass {
		r.decide(c.Policy.TempError, "spf", "", "451 4.7.24 SPF check failed temporarily, try again later")
	}
	for _, d := range r.DKIM {
		if d.Status == dkim.TempError && r.DMARC.Result != dmarc.Pass {
			r.decide(c.Policy.TempError, "dkim", "temperror: "+d.Reason, "451 4.7.5 DKIM check failed temporarily, try again later")
		}
	}
}

// trustedPass returns the first trusted sealer of a passing chain whose
// recorded results say dmarc=pass for the From domain, or "".
func (c *Checker) trustedPass(o arc.Outcome, from string) string {
	if o.Result != arc.Pass || len(c.TrustedSealers) == 0 {
		return ""
	}
	for i, sealer := range o.Sealers {
		if !slices.Contains(c.TrustedSealers, strings.ToLower(sealer)) {
			continue
		}
		h, err := authres.Parse(o.Results[i])
		if err != nil {
			continue
		}
		for _, res := range h.Results {
			if res.Method == "dmarc" && strings.EqualFold(res.Value, "pass") &&
				(res.Prop("header", "from") == "" || strings.EqualFold(res.Prop("header", "from"), from)) {
				return sealer
			}
		}
	}
	return ""
}

// forgedResults lists Authentication-Results fields that claim our
// authserv-id: a sender must not be able to hand us our own verdict
// (RFC 8601 §5).
func forgedResults(fields []dkim.Field, id string) []HeaderReference {
	var out []HeaderReference
	n := 0
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		n++
		if authres.IsOurs(strings.TrimSpace(f.Value()), id) {
			out = append(out, HeaderReference{Name: f.Name, Index: n})
		}
	}
	return out
}

// from is the header From, parsed once a message: DMARC reads its
// domains, the lists its addresses.
type from struct {
	addrs, domains []string
}

// from parses the message's From fields, once.
func (m *Message) from() *from {
	if m.fromParsed == nil {
		addrs, doms := parseFrom(m.fields)
		m.fromParsed = &from{addrs, doms}
	}
	return m.fromParsed
}

// parseFrom reads the From fields: their addresses, lower case, and
// their domains as A-labels, the RFC5322.From domains (RFC 9989
// §5.3.1). Every From field counts: a message with two From fields has
// two author domains. A field that does not parse gives its
// domains from anything that looks like @domain, so that a malformed
// From cannot dodge DMARC nor a domain's block entry; as addresses, each
// of those is "@domain".
func parseFrom(fields []dkim.Field) (addrs, domains []string) {
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "From") {
			continue
		}
		v := strings.TrimSpace(strings.ReplaceAll(f.Value(), "\r\n", ""))
		if _, a, ok := mailbox.Simple(v); ok {
			addrs = append(addrs, strings.ToLower(a))
			domains = append(domains, toASCII(a[strings.LastIndexByte(a, '@')+1:]))
			continue
		}
		list, err := mail.ParseAddressList(v)
		if err != nil {
			var found []string
			for _, part := range strings.Split(v, "@")[1:] {
				if end := strings.IndexAny(part, " >,;\t\"()"); end >= 0 {
					part = part[:end]
				}
				if d := strings.TrimRight(part, "."); d != "" {
					found = append(found, toASCII(d))
				}
			}
			// One domain and the one address a mail client shows (a name in
			// a charset net/mail cannot decode, an unquoted comma): the
			// address, so that the lists' address entries match it. The
			// domains stay as they were read either way.
			if a, ok := mailbox.Angle(v); ok && len(found) == 1 && toASCII(a[strings.LastIndexByte(a, '@')+1:]) == found[0] {
				addrs = append(addrs, strings.ToLower(a))
				domains = append(domains, found[0])
				continue
			}
			for _, d := range found {
				domains = append(domains, d)
				addrs = append(addrs, "@"+d)
			}
			continue
		}
		for _, a := range list {
			addrs = append(addrs, strings.ToLower(a.Address))
			if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
				domains = append(domains, toASCII(a.Address[i+1:]))
			}
		}
	}
	return addrs, domains
}

func toASCII(d string) string {
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		return strings.ToLower(a)
	}
	return strings.ToLower(d)
}
