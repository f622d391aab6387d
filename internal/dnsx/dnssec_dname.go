package dnsx

import (
	"strings"

	"github.com/miekg/dns"
)

// synthesizedFrom decides how an unsigned CNAME set of an answer is
// validated when a DNAME of the same answer covers its owner (RFC 6672
// §5.3.1, RFC 4035 §3.2.3 and §5.3): the CNAME was synthesized by the
// server, so it carries no RRSIG; it stands on the DNAME's signature
// provided it is exactly the synthesis RFC 6672 §2.2 makes. It returns the
// DNAME set to validate in its place, or nil and, when a DNAME covers the
// owner but the CNAME is not its synthesis, why (the reason a bogus
// answer gives).
func synthesizedFrom(cname *rrSet, sets []*rrSet) (*rrSet, string) {
	if len(cname.sigs) > 0 || len(cname.rrs) != 1 {
		return nil, "" // a signed CNAME is validated as itself
	}
	// The DNAME with the closest owner above the CNAME's (RFC 6672 §2.3:
	// the one a server would have used).
	var dname *rrSet
	for _, s := range sets {
		if s.rtype != dns.TypeDNAME || len(s.rrs) != 1 || s.name == cname.name || !dns.IsSubDomain(s.name, cname.name) {
			continue
		}
		if dname == nil || dns.CountLabel(s.name) > dns.CountLabel(dname.name) {
			dname = s
		}
	}
	if dname == nil {
		return nil, ""
	}
	d, ok := dname.rrs[0].(*dns.DNAME)
	if !ok {
		return nil, ""
	}
	want := SynthesizeDNAME(cname.name, d)
	got := strings.ToLower(Fqdn(cname.rrs[0].(*dns.CNAME).Target))
	if want == "" || got != want {
		show := func(n string) string { return strings.TrimSuffix(n, ".") }
		return nil, "CNAME " + show(cname.name) + " -> " + show(got) + " does not match its synthesis from DNAME " +
			show(dname.name) + " -> " + show(want)
	}
	return dname, ""
}

// SynthesizeDNAME is the CNAME target RFC 6672 §2.2 makes for qname from
// d (qname a proper descendant of d's owner): qname's labels below the
// owner followed by the DNAME's target, lower case and fully qualified; ""
// when the result is not a domain name (too long: the answer is YXDOMAIN).
func SynthesizeDNAME(qname string, d *dns.DNAME) string {
	qname, owner := strings.ToLower(Fqdn(qname)), strings.ToLower(Fqdn(d.Hdr.Name))
	if qname == owner || !dns.IsSubDomain(owner, qname) {
		return ""
	}
	prefix := qname[:len(qname)-len(owner)] // ends with "." unless the owner is the root
	if owner == "." {
		prefix = qname
	}
	target := strings.ToLower(Fqdn(d.Target))
	out := prefix + target
	if target == "." {
		out = prefix
	}
	if _, ok := dns.IsDomainName(out); !ok || len(out) > 254 {
		return ""
	}
	return out
}
