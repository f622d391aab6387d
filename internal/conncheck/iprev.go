// Package conncheck holds the checks made on an SMTP client before the
// message: iprev (forward-confirmed reverse DNS, RFC 8601 §3), S25R rules
// for dynamic-looking client names, HELO syntax, and Postfix regexp:
// access tables read as Postfix reads them.
package conncheck

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// IPRev is an iprev result (RFC 8601 §2.7.3).
type IPRev struct {
	Result string `json:"result"` // pass, fail, temperror, permerror
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Names are all PTR names, verified or not.
	Names []string `json:"names,omitempty"`
}

// maxPTRNames bounds the forward lookups, as SPF does (RFC 7208 §4.6.4).
const maxPTRNames = 10

// CheckIPRev looks up the client's PTR names and confirms one of them
// resolves back to the client's address.
func CheckIPRev(ctx context.Context, r dnsx.Resolver, ip netip.Addr) IPRev {
	ip = ip.Unmap()
	names, err := dnsx.PTR(ctx, r, ip)
	if err != nil {
		if dnsx.IsTemporary(err) {
			return IPRev{Result: "temperror", Reason: err.Error()}
		}
		return IPRev{Result: "permerror", Reason: err.Error()}
	}
	if len(names) == 0 {
		return IPRev{Result: "permerror", Reason: "no PTR record for " + ip.String()}
	}
	qtype := dns.TypeA
	if ip.Is6() {
		qtype = dns.TypeAAAA
	}
	out := IPRev{Result: "fail", Names: names}
	var tempErr error
	for _, n := range names[:min(len(names), maxPTRNames)] {
		ips, err := dnsx.IPs(ctx, r, n, qtype)
		if err != nil {
			if dnsx.IsTemporary(err) {
				tempErr = err
			}
			continue
		}
		for _, a := range ips {
			if a.Unmap() == ip {
				out.Result, out.Name = "pass", n
				return out
			}
		}
	}
	if tempErr != nil {
		out.Result, out.Reason = "temperror", tempErr.Error()
		return out
	}
	out.Reason = "no PTR name resolves back to " + ip.String() + " (" + strings.Join(names, ", ") + ")"
	return out
}
