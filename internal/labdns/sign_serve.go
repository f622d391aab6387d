package labdns

import (
	"sort"
	"strings"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// zoneOf returns the zone that holds an RRset: a DS at a zone's apex
// belongs to the parent (RFC 4035 §3.1.4.1), everything else to the zone
// with the longest origin.
func (zs zoneSet) zoneOf(name string, rtype uint16) *Zone {
	z := zs.find(name)
	if rtype == dns.TypeDS && z != nil && z.Origin == name && name != "." {
		if p := zs.find(parentName(name)); p != nil {
			return p
		}
	}
	return z
}

func parentName(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}

// addDNSSEC adds to an answer for a client that set the DO bit (RFC 3225)
// the RRSIGs of its RRsets and the NSEC or NSEC3 records that prove what it
// denies (RFC 4035 §3.1, RFC 5155 §7.2). Unsigned zones add nothing.
func addDNSSEC(msg *dns.Msg, zones zoneSet, qname string, qtype uint16) {
	var sets []sigKey
	seen := map[sigKey]bool{}
	target := qname
	answered := false
	for _, rr := range msg.Answer {
		h := rr.Header()
		k := sigKey{strings.ToLower(h.Name), h.Rrtype}
		if !seen[k] {
			seen[k] = true
			sets = append(sets, k)
		}
		if k.name == target {
			if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME && h.Rrtype != qtype {
				target = strings.ToLower(c.Target)
			} else {
				answered = true
			}
		}
	}
	var extra []dns.RR
	added := map[string]bool{}
	addProof := func(z *Zone, rr dns.RR) {
		if rr == nil || added[rr.Header().Name+"/"+dns.TypeToString[rr.Header().Rrtype]] {
			return
		}
		added[rr.Header().Name+"/"+dns.TypeToString[rr.Header().Rrtype]] = true
		extra = append(extra, rr)
		extra = append(extra, z.sec.sigs[sigKey{rr.Header().Name, rr.Header().Rrtype}]...)
	}
	for _, k := range sets {
		z := zones.zoneOf(k.name, k.rtype)
		if z == nil || z.sec == nil || k.rtype == dns.TypeCNAME && synthesized(msg.Answer, k.name) {
			continue
		}
		if sigs, ok := z.sec.sigs[k]; ok {
			msg.Answer = append(msg.Answer, sigs...)
			continue
		}
		// RFC 4035 §3.1.3.3: an answer synthesized from a wildcard carries
		// the wildcard's RRSIG (its Labels field tells the expansion) and
		// the proof that the name itself does not exist.
		ce := z.closestEncloser(k.name)
		for _, sig := range z.sec.sigs[sigKey{child("*", ce), k.rtype}] {
			c := dns.Copy(sig)
			c.Header().Name = k.name
			msg.Answer = append(msg.Answer, c)
		}
		if z.sec.nsec3 != nil {
			addProof(z, z.nsec3Covering(nextCloser(k.name, ce)))
		} else {
			addProof(z, z.nsecCovering(k.name))
		}
	}
	if !answered {
		for _, rr := range msg.Ns {
			soa, ok := rr.(*dns.SOA)
			if !ok {
				continue
			}
			z := zones[strings.ToLower(soa.Hdr.Name)]
			if z == nil || z.sec == nil {
				continue
			}
			extra = append(extra, z.sec.sigs[sigKey{z.Origin, dns.TypeSOA}]...)
			nx := msg.Rcode == dns.RcodeNameError
			ce := z.closestEncloser(target)
			switch {
			case z.sec.nsec3 != nil && nx:
				// RFC 5155 §7.2.2: closest encloser proof and the
				// wildcard at it denied.
				addProof(z, z.nsec3Matching(ce))
				addProof(z, z.nsec3Covering(nextCloser(target, ce)))
				addProof(z, z.nsec3Covering(child("*", ce)))
			case z.sec.nsec3 != nil:
				// RFC 5155 §7.2.3 (NODATA), §7.2.4 (DS at an opt-out
				// delegation: closest encloser proof instead).
				if m := z.nsec3Matching(target); m != nil {
					addProof(z, m)
				} else {
					// The closest ancestor with an NSEC3 of its own.
					ce := parentName(target)
					for ce != z.Origin && z.nsec3Matching(ce) == nil {
						ce = parentName(ce)
					}
					addProof(z, z.nsec3Matching(ce))
					addProof(z, z.nsec3Covering(nextCloser(target, ce)))
				}
			case nx:
				// RFC 4035 §3.1.3.2: the name and the wildcard that could
				// have matched it do not exist.
				addProof(z, z.nsecCovering(target))
				addProof(z, z.nsecCovering(child("*", ce)))
			default:
				// RFC 4035 §3.1.3.1: the NSEC at the name shows its types.
				if n := z.nsecAt(target); n != nil {
					addProof(z, n)
				} else {
					addProof(z, z.nsecCovering(target)) // empty non-terminal
				}
			}
		}
	}
	msg.Ns = append(msg.Ns, extra...)
}

// closestEncloser is the longest existing ancestor-or-self of name in z.
func (z *Zone) closestEncloser(name string) string {
	for n := name; ; {
		if z.exists[n] || n == z.Origin {
			return n
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			return z.Origin
		}
		n = n[i:]
	}
}

// nextCloser is the name one label longer than ce on the way to name
// (RFC 5155 §1.3).
func nextCloser(name, ce string) string {
	labels := dns.SplitDomainName(name)
	n := dns.CountLabel(ce) + 1
	if n > len(labels) {
		return name
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-n:], "."))
}

func (z *Zone) nsecAt(name string) *dns.NSEC {
	for _, n := range z.sec.nsec {
		if n.Hdr.Name == name {
			return n
		}
	}
	return nil
}

// nsecCovering is the NSEC whose owner is the last one before name.
func (z *Zone) nsecCovering(name string) dns.RR {
	chain := z.sec.nsec
	if len(chain) == 0 {
		return nil
	}
	i := sort.Search(len(chain), func(i int) bool { return dnsx.CanonicalCompare(chain[i].Hdr.Name, name) > 0 })
	if i == 0 {
		i = len(chain) // before the apex cannot happen inside the zone; wrap
	}
	return chain[i-1]
}

func (z *Zone) nsec3Hash(name string) string {
	p := z.sec.param
	return strings.ToLower(dns.HashName(name, dns.SHA1, p.Iterations, p.Salt))
}

func (z *Zone) nsec3Matching(name string) dns.RR {
	h := child(z.nsec3Hash(name), z.Origin)
	for _, n := range z.sec.nsec3 {
		if n.Hdr.Name == h {
			return n
		}
	}
	return nil
}

func (z *Zone) nsec3Covering(name string) dns.RR {
	h := z.nsec3Hash(name)
	chain := z.sec.nsec3
	if len(chain) == 0 {
		return nil
	}
	owner := func(i int) string {
		return strings.TrimSuffix(chain[i].Hdr.Name, "."+strings.TrimPrefix(z.Origin, "."))
	}
	i := sort.Search(len(chain), func(i int) bool { return owner(i) > h })
	if i == 0 {
		i = len(chain) // before the first hash: the last NSEC3 wraps round
	}
	return chain[i-1]
}

// child is the name label.parent, right for the root too.
func child(label, parent string) string {
	if parent == "." {
		return label + "."
	}
	return label + "." + parent
}
