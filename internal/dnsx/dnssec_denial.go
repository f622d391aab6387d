package dnsx

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// maxDenialSets bounds the NSEC/NSEC3 RRsets looked at in one response.
const maxDenialSets = 8

// denial is the verified NSEC or NSEC3 records of an authority section.
type denial struct {
	zone  string
	nsec  []*dns.NSEC
	nsec3 []*dns.NSEC3
	ttl   uint32
	// hashes caches NSEC3 hashes by name: each costs up to
	// MaxNSEC3Iterations+1 SHA-1 rounds.
	hashes map[string]string
}

// denialOf verifies the NSEC and NSEC3 RRsets of ns with st's keys. A
// failed signature makes the whole denial bogus. st must be secure.
func (v *Validator) denialOf(ns []*rrSet, st *zoneState, b *budget) (*denial, string) {
	d := &denial{zone: st.name, ttl: ^uint32(0), hashes: map[string]string{}}
	n := 0
	for _, set := range ns {
		if set.rtype != dns.TypeNSEC && set.rtype != dns.TypeNSEC3 {
			continue
		}
		if n++; n > maxDenialSets {
			return nil, fmt.Sprintf("more than %d NSEC/NSEC3 RRsets", maxDenialSets)
		}
		if !dns.IsSubDomain(st.name, set.name) {
			continue // another zone's: proves nothing here
		}
		if sig, reason := v.verify(set, st, b); sig == nil {
			return nil, fmt.Sprintf("%s %s: %s", show(set.name), dns.TypeToString[set.rtype], reason)
		}
		for _, rr := range set.rrs {
			d.ttl = min(d.ttl, rr.Header().Ttl)
			switch r := rr.(type) {
			case *dns.NSEC:
				d.nsec = append(d.nsec, r)
			case *dns.NSEC3:
				d.nsec3 = append(d.nsec3, r)
			}
		}
	}
	return d, ""
}

func hasBit(bits []uint16, t uint16) bool { return slices.Contains(bits, t) }

// parentSide reports whether a type bitmap is that of a delegation point
// seen from the parent: NS without SOA. Such a record proves nothing about
// names at or below the cut but a DS (RFC 6840 §4.1).
func parentSide(bits []uint16) bool {
	return hasBit(bits, dns.TypeNS) && !hasBit(bits, dns.TypeSOA)
}

// nsecAt returns the NSEC owned by name.
func (d *denial) nsecAt(name string) *dns.NSEC {
	for _, n := range d.nsec {
		if Fqdn(n.Hdr.Name) == name {
			return n
		}
	}
	return nil
}

// nsecCovering returns the NSEC that proves name absent.
func (d *denial) nsecCovering(name string) *dns.NSEC {
	for _, n := range d.nsec {
		if nsecCovers(Fqdn(n.Hdr.Name), Fqdn(n.NextDomain), name) {
			return n
		}
	}
	return nil
}

// nsec3Params checks the parameters of the NSEC3 records: an unknown hash
// or more iterations than MaxNSEC3Iterations make the answer insecure (RFC
// 5155 §8.1, RFC 9276 §3.2).
func (v *Validator) nsec3Params(d *denial) (Security, string) {
	for _, n := range d.nsec3 {
		if n.Hash != dns.SHA1 {
			return Insecure, fmt.Sprintf("%s: NSEC3 hash algorithm %d not supported", show(d.zone), n.Hash)
		}
		if n.Iterations > v.cfg.MaxNSEC3Iterations {
			return Insecure, fmt.Sprintf("%s: NSEC3 with %d iterations, more than %d (RFC 9276 §3.2)", show(d.zone), n.Iterations, v.cfg.MaxNSEC3Iterations)
		}
	}
	return Secure, ""
}

func (d *denial) hash(name string, n *dns.NSEC3) string {
	key := name + "/" + n.Salt + "/" + fmt.Sprint(n.Iterations)
	if h, ok := d.hashes[key]; ok {
		return h
	}
	h := dns.HashName(name, dns.SHA1, n.Iterations, n.Salt)
	d.hashes[key] = h
	return h
}

func nsec3Owner(n *dns.NSEC3) string {
	i, _ := dns.NextLabel(n.Hdr.Name, 0)
	if i == 0 {
		return ""
	}
	return strings.ToUpper(n.Hdr.Name[:i-1])
}

// nsec3Matching returns the NSEC3 whose owner is the hash of name.
func (d *denial) nsec3Matching(name string) *dns.NSEC3 {
	for _, n := range d.nsec3 {
		if nsec3Owner(n) == d.hash(name, n) {
			return n
		}
	}
	return nil
}

// nsec3Covering returns the NSEC3 whose interval holds the hash of name
// (RFC 5155 §8.3), the last of the chain wrapping round.
func (d *denial) nsec3Covering(name string) *dns.NSEC3 {
	for _, n := range d.nsec3 {
		h, own, next := d.hash(name, n), nsec3Owner(n), strings.ToUpper(n.NextDomain)
		switch {
		case own < next && own < h && h < next:
			return n
		case own >= next && (h > own || h < next): // last in the chain
			return n
		}
	}
	return nil
}

// closestEncloser is the closest encloser proof of RFC 5155 §8.3: the
// longest ancestor of name with a matching NSEC3 whose next closer name is
// covered. It returns the encloser and the covering NSEC3, or "".
func (d *denial) closestEncloser(name string) (string, *dns.NSEC3, string) {
	for n := name; n != d.zone; {
		nc := n
		n = parentOf(n)
		if !dns.IsSubDomain(d.zone, n) {
			break
		}
		m := d.nsec3Matching(n)
		if m == nil {
			continue
		}
		if n != d.zone && parentSide(m.TypeBitMap) || hasBit(m.TypeBitMap, dns.TypeDNAME) {
			return "", nil, "NSEC3 at " + show(n) + " is a delegation or DNAME, it cannot deny names below it"
		}
		cov := d.nsec3Covering(nc)
		if cov == nil {
			return "", nil, "no NSEC3 covers the next closer name " + show(nc)
		}
		return n, cov, ""
	}
	return "", nil, "no closest encloser proof for " + show(name)
}

// wildcardOf is *.ce.
func wildcardOf(ce string) string {
	if ce == "." {
		return "*."
	}
	return "*." + ce
}

// validateDenial checks that a negative answer for name/qtype (NXDOMAIN,
// or NODATA when rcode is NOERROR) is proven: NSEC (RFC 4035 §5.4) or NSEC3
// (RFC 5155 §8.4-8.7).
func (v *Validator) validateDenial(ctx context.Context, c *Client, resp *dns.Msg, ns []*rrSet, name string, qtype uint16, b *budget) (Security, string, error) {
	what := show(name) + " " + dns.TypeToString[qtype]
	zone := ""
	for _, set := range ns {
		if (set.rtype == dns.TypeSOA || set.rtype == dns.TypeNSEC || set.rtype == dns.TypeNSEC3) && len(set.sigs) > 0 {
			if s := Fqdn(set.sigs[0].SignerName); dns.IsSubDomain(s, name) {
				zone = s
				break
			}
		}
	}
	if zone == "" {
		for _, set := range ns {
			if set.rtype == dns.TypeSOA && dns.IsSubDomain(set.name, name) {
				zone = set.name
			}
		}
	}
	if zone == "" {
		if st := v.insecureAbove(name); st != nil {
			return Insecure, st.reason, nil
		}
		z, err := v.findZone(ctx, c, name, qtype)
		if err != nil {
			return 0, "", err
		}
		zone = z
	}
	st, err := v.zone(ctx, c, zone, b, 0)
	if err != nil || st.status != Secure {
		return statusOf(st), reasonOf(st), err
	}
	for _, set := range ns {
		if set.rtype == dns.TypeSOA && set.name == st.name {
			if sig, reason := v.verify(set, st, b); sig == nil {
				return Bogus, show(set.name) + " SOA: " + reason, nil
			}
		}
	}
	d, reason := v.denialOf(ns, st, b)
	if d == nil {
		return Bogus, reason, nil
	}
	nx := resp.Rcode == dns.RcodeNameError
	switch {
	case len(d.nsec3) > 0:
		if s, r := v.nsec3Params(d); s != Secure {
			return s, r, nil
		}
		s, r := d.nsec3Deny(name, qtype, nx)
		if s == Bogus {
			r = what + ": " + r
		}
		return s, r, nil
	case len(d.nsec) > 0:
		if r := d.nsecDeny(name, qtype, nx); r != "" {
			return Bogus, what + ": " + r, nil
		}
		return Secure, "", nil
	}
	return Bogus, what + ": denied without NSEC or NSEC3 in signed zone " + show(st.name), nil
}

// nsecDeny checks an NSEC denial (RFC 4035 §5.4, RFC 6840 §4.1, §4.3);
// "" when it holds, else why not.
func (d *denial) nsecDeny(name string, qtype uint16, nx bool) string {
	if !nx {
		if n := d.nsecAt(name); n != nil {
			switch {
			case hasBit(n.TypeBitMap, qtype):
				return "NSEC lists the type as present"
			case hasBit(n.TypeBitMap, dns.TypeCNAME):
				return "NSEC says the name is a CNAME"
			case qtype != dns.TypeDS && name != d.zone && parentSide(n.TypeBitMap):
				return "NSEC is the parent's side of a delegation"
			}
			return ""
		}
		n := d.nsecCovering(name)
		if n == nil {
			return "no NSEC at or covering the name"
		}
		if dns.IsSubDomain(name, Fqdn(n.NextDomain)) {
			return "" // an empty non-terminal (RFC 4035 §3.1.3.1 second case)
		}
		// RFC 4035 §3.1.3.4: wildcard NODATA, the NSEC at *.ce.
		ce := nsecEncloser(name, n)
		if w := d.nsecAt(wildcardOf(ce)); w != nil && !hasBit(w.TypeBitMap, qtype) && !hasBit(w.TypeBitMap, dns.TypeCNAME) {
			return ""
		}
		return "the NSEC covering the name does not prove NODATA"
	}
	n := d.nsecCovering(name)
	if n == nil {
		return "no NSEC covers the name"
	}
	if o := Fqdn(n.Hdr.Name); o != d.zone && dns.IsSubDomain(o, name) && parentSide(n.TypeBitMap) {
		return "NSEC at " + show(o) + " is a delegation, it cannot deny names below it"
	}
	ce := nsecEncloser(name, n)
	if d.nsecCovering(wildcardOf(ce)) == nil {
		return "no NSEC denies the wildcard " + show(wildcardOf(ce))
	}
	return ""
}

// nsecEncloser is the closest encloser an NSEC covering name implies: the
// longer of the names name shares with the NSEC's owner and next name
// (RFC 4035 §5.4).
func nsecEncloser(name string, n *dns.NSEC) string {
	a := dns.CompareDomainName(name, n.Hdr.Name)
	b := dns.CompareDomainName(name, n.NextDomain)
	return lastLabels(name, max(a, b))
}

// nsec3Deny checks an NSEC3 denial (RFC 5155 §8.4-8.7).
func (d *denial) nsec3Deny(name string, qtype uint16, nx bool) (Security, string) {
	if !nx {
		if m := d.nsec3Matching(name); m != nil {
			switch {
			case hasBit(m.TypeBitMap, qtype):
				return Bogus, "NSEC3 lists the type as present"
			case hasBit(m.TypeBitMap, dns.TypeCNAME):
				return Bogus, "NSEC3 says the name is a CNAME"
			case qtype != dns.TypeDS && name != d.zone && parentSide(m.TypeBitMap):
				return Bogus, "NSEC3 is the parent's side of a delegation"
			}
			return Secure, ""
		}
		ce, cov, why := d.closestEncloser(name)
		if ce == "" {
			return Bogus, why
		}
		// §8.6: a DS NODATA at an opt-out delegation is insecure.
		if qtype == dns.TypeDS && cov.Flags&1 == 1 {
			return Insecure, show(name) + ": delegation covered by NSEC3 opt-out (RFC 5155 §6)"
		}
		// §8.7: wildcard NODATA.
		if w := d.nsec3Matching(wildcardOf(ce)); w != nil && !hasBit(w.TypeBitMap, qtype) && !hasBit(w.TypeBitMap, dns.TypeCNAME) {
			return Secure, ""
		}
		return Bogus, "no NSEC3 matches the name"
	}
	ce, cov, why := d.closestEncloser(name)
	if ce == "" {
		return Bogus, why
	}
	if d.nsec3Covering(wildcardOf(ce)) == nil {
		return Bogus, "no NSEC3 denies the wildcard " + show(wildcardOf(ce))
	}
	if cov.Flags&1 == 1 {
		// RFC 5155 §9.2: the name may lie in an unsigned delegation the
		// opt-out span hides.
		return Insecure, show(name) + ": NXDOMAIN under NSEC3 opt-out (RFC 5155 §9.2)"
	}
	return Secure, ""
}

// denyDS is the chain of trust at a name without DS: the parent's signed
// proof says whether it is an insecure delegation (RFC 4035 §5.2), covered
// by opt-out (RFC 5155 §8.6), or not a delegation at all, which makes a
// zone claimed there bogus.
func (v *Validator) denyDS(ctx context.Context, c *Client, resp *dns.Msg, name string, b *budget, depth int) (*zoneState, error) {
	ns := rrSets(resp.Ns)
	parent := ""
	for _, set := range ns {
		if (set.rtype == dns.TypeNSEC || set.rtype == dns.TypeNSEC3 || set.rtype == dns.TypeSOA) && len(set.sigs) > 0 {
			parent = Fqdn(set.sigs[0].SignerName)
			break
		}
	}
	if parent == "" {
		for _, set := range ns {
			if set.rtype == dns.TypeSOA {
				parent = set.name
			}
		}
	}
	if parent == "" {
		p, err := v.findZone(ctx, c, name, dns.TypeDS)
		if err != nil {
			return nil, err
		}
		parent = p
	}
	if parent == name || !dns.IsSubDomain(parent, name) {
		return bogus(name, "%s DS: denied by %s, not by the parent zone", show(name), show(parent)), nil
	}
	pst, err := v.zone(ctx, c, parent, b, depth+1)
	if err != nil {
		return nil, err
	}
	if pst.status != Secure {
		return inherit(name, pst), nil
	}
	d, reason := v.denialOf(ns, pst, b)
	if d == nil {
		return bogus(name, "%s DS: %s", show(name), reason), nil
	}
	insecure := func(r string) *zoneState {
		return &zoneState{name: name, status: Insecure, reason: r, expires: v.expiry(d.ttl)}
	}
	bits := func(types []uint16) *zoneState {
		switch {
		case hasBit(types, dns.TypeDS):
			return bogus(name, "%s DS: the parent's proof lists a DS it did not send", show(name))
		case hasBit(types, dns.TypeNS) && !hasBit(types, dns.TypeSOA):
			return insecure(fmt.Sprintf("%s: delegation from %s without DS (insecure, RFC 4035 §5.2)", show(name), show(parent)))
		}
		return bogus(name, "%s: not a delegation in %s, yet named as a zone", show(name), show(parent))
	}
	switch {
	case len(d.nsec3) > 0:
		if s, r := v.nsec3Params(d); s != Secure {
			return insecure(r), nil
		}
		if m := d.nsec3Matching(name); m != nil {
			return bits(m.TypeBitMap), nil
		}
		ce, cov, why := d.closestEncloser(name)
		if ce != "" && cov.Flags&1 == 1 {
			return insecure(fmt.Sprintf("%s: delegation covered by NSEC3 opt-out in %s (RFC 5155 §6)", show(name), show(parent))), nil
		}
		if why == "" {
			why = "no NSEC3 matches it"
		}
		return bogus(name, "%s DS: %s", show(name), why), nil
	case len(d.nsec) > 0:
		if n := d.nsecAt(name); n != nil {
			return bits(n.TypeBitMap), nil
		}
		return bogus(name, "%s DS: no NSEC at the name proves the DS absent", show(name)), nil
	}
	return bogus(name, "%s DS: no DS and no signed proof of its absence from %s", show(name), show(parent)), nil
}

// provesNoName checks, for an answer expanded from the wildcard at *.ce,
// that owner itself does not exist (RFC 4035 §5.3.4, RFC 5155 §8.8).
func (v *Validator) provesNoName(owner, ce string, ns []*rrSet, st *zoneState, b *budget) (bool, Security, string) {
	d, reason := v.denialOf(ns, st, b)
	if d == nil {
		return false, Bogus, reason
	}
	if len(d.nsec3) > 0 {
		if s, r := v.nsec3Params(d); s != Secure {
			return false, s, r
		}
		labels := dns.SplitDomainName(owner)
		nc := lastLabels(owner, min(len(labels), dns.CountLabel(ce)+1))
		return d.nsec3Covering(nc) != nil, Secure, ""
	}
	return d.nsecCovering(owner) != nil, Secure, ""
}
