package labdns

import (
	"strings"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// DNAME (RFC 6672): a name whose closest ancestor in the zone holds a
// DNAME is answered with that DNAME and a CNAME synthesized from it, and
// the answer goes on at the CNAME's target (§2.3). The DNAME RRset is
// signed like any other; the synthesized CNAME is not (§5.3.1: a
// validator checks it against the DNAME instead).

// dnameAbove is the DNAME at the closest proper ancestor of qname within
// z, the apex included, or nil.
func (z *Zone) dnameAbove(qname string) *dns.DNAME {
	for n := qname; n != z.Origin; {
		i, end := dns.NextLabel(n, 0)
		if end {
			return nil
		}
		n = n[i:]
		for _, rr := range z.names[n] {
			if d, ok := rr.(*dns.DNAME); ok {
				return d
			}
		}
	}
	return nil
}

// synthesize is the CNAME RFC 6672 §2.2 makes from d for qname: the
// owner's labels at the end of qname replaced by the DNAME's target, with
// the DNAME's TTL (§3.1). It is nil when the result would be longer than
// a domain name may be (the answer is then YXDOMAIN, §2.2). A zone signed
// with WrongDNAMESynthesis points it elsewhere, as a forger would.
func (z *Zone) synthesize(qname string, d *dns.DNAME) *dns.CNAME {
	target := dnsx.SynthesizeDNAME(qname, d)
	if target == "" {
		return nil
	}
	if z.sec != nil && z.sec.wrongSynthesis {
		target = child("forged", target)
	}
	return &dns.CNAME{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: d.Hdr.Ttl}, Target: target}
}

// dnameStep answers qname through a DNAME above it when there is one
// (ok): the DNAME and the synthesized CNAME go into msg, and next is the
// name the answer goes on with; rcode is YXDOMAIN when the synthesis
// overflows.
func (z *Zone) dnameStep(msg *dns.Msg, qname string) (next string, rcode int, ok bool) {
	d := z.dnameAbove(qname)
	if d == nil {
		return "", 0, false
	}
	msg.Answer = append(msg.Answer, d)
	c := z.synthesize(qname, d)
	if c == nil {
		return "", dns.RcodeYXDomain, true
	}
	msg.Answer = append(msg.Answer, c)
	return strings.ToLower(c.Target), dns.RcodeSuccess, true
}

// synthesized reports whether the CNAME set at name in answer was made
// from a DNAME of the answer (its owner a proper ancestor of name): it has
// no RRSIG of its own to add.
func synthesized(answer []dns.RR, name string) bool {
	for _, rr := range answer {
		if d, ok := rr.(*dns.DNAME); ok {
			if o := strings.ToLower(d.Hdr.Name); o != name && dns.IsSubDomain(o, name) {
				return true
			}
		}
	}
	return false
}
