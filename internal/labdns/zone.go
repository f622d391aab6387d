// Package labdns is an authoritative DNS server for lab zones: it reads
// RFC 1035 zone files as BIND writes them and answers for them on loopback,
// so a whole mail set-up (SPF, DKIM, DMARC, MX, PTR) can be tested on one
// machine. It never recurses: names outside its zones are REFUSED.
package labdns

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// Zone is the data of one zone, keyed by lower-case owner name.
type Zone struct {
	Origin string // apex, FQDN, lower case
	SOA    *dns.SOA
	names  map[string][]dns.RR
	// exists holds every owner name and every empty non-terminal between
	// an owner and the apex, so NODATA and NXDOMAIN are told apart
	// (RFC 8020).
	exists map[string]bool
	sec    *zoneSec // DNSSEC signatures and denial chain; nil: unsigned (sign.go)
}

// NewZone builds a zone from records. Exactly one SOA, at the apex, is
// required; records outside the apex's subtree are an error.
func NewZone(rrs []dns.RR) (*Zone, error) {
	z := &Zone{names: make(map[string][]dns.RR), exists: make(map[string]bool)}
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok {
			if z.SOA != nil {
				return nil, fmt.Errorf("labdns: two SOA records (%s and %s)", z.SOA.Hdr.Name, soa.Hdr.Name)
			}
			z.SOA = soa
			z.Origin = strings.ToLower(soa.Hdr.Name)
		}
	}
	if z.SOA == nil {
		return nil, fmt.Errorf("labdns: zone has no SOA record")
	}
	for _, rr := range rrs {
		name := strings.ToLower(rr.Header().Name)
		if !dns.IsSubDomain(z.Origin, name) {
			return nil, fmt.Errorf("labdns: %s is outside zone %s", name, z.Origin)
		}
		rr.Header().Name = name
		z.names[name] = append(z.names[name], rr)
		for n := name; ; {
			z.exists[n] = true
			if n == z.Origin {
				break
			}
			i, end := dns.NextLabel(n, 0)
			if n = n[i:]; end {
				n = "." // the root zone's apex (a signed lab's, sign.go)
			}
		}
	}
	return z, nil
}

// ParseZoneFile reads a zone file. origin is used until the file sets
// $ORIGIN; when empty, it is guessed from the file name (example.test.zone,
// db.example.test, example.test) so BIND-style files load as they are.
func ParseZoneFile(path, origin string) (*Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("labdns: %w", err)
	}
	defer f.Close()
	if origin == "" {
		origin = originFromFileName(path)
	}
	zp := dns.NewZoneParser(f, dns.Fqdn(origin), path)
	zp.SetIncludeAllowed(false)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("labdns: %w", err)
	}
	z, err := NewZone(rrs)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return z, nil
}

func originFromFileName(path string) string {
	base := filepath.Base(path)
	for _, suffix := range []string{".zone", ".db", ".hosts"} {
		base = strings.TrimSuffix(base, suffix)
	}
	base = strings.TrimPrefix(base, "db.")
	return base
}

// Records returns every record of the zone, SOA first, in a stable order:
// the order an AXFR sends them (RFC 5936 §2.2 wants the SOA first and last).
func (z *Zone) Records() []dns.RR {
	names := make([]string, 0, len(z.names))
	for n := range z.names {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		li, lj := dns.CountLabel(names[i]), dns.CountLabel(names[j])
		if li != lj {
			return li < lj
		}
		return names[i] < names[j]
	})
	out := []dns.RR{z.SOA}
	for _, n := range names {
		for _, rr := range z.names[n] {
			if rr != dns.RR(z.SOA) {
				out = append(out, rr)
			}
		}
	}
	return out
}

// lookup answers qname/qtype from the zone as an authoritative server does,
// following CNAMEs within zones (resolve is called for targets in other
// zones of the same server). It fills msg's Answer and Ns sections and
// returns the RCODE.
func (z *Zone) lookup(msg *dns.Msg, qname string, qtype uint16, other func(string) *Zone) int {
	for hop := 0; hop < 8; hop++ {
		if next, rcode, ok := z.dnameStep(msg, qname); ok { // RFC 6672 §2.3 (sign_dname.go)
			if rcode != dns.RcodeSuccess {
				return rcode
			}
			if z = other(next); z == nil {
				return dns.RcodeSuccess // target outside our zones: the resolver chases it
			}
			qname = next
			continue
		}
		rrs, ok := z.names[qname]
		if !ok {
			rrs, ok = z.wildcard(qname)
		}
		if !ok {
			if z.exists[qname] {
				z.addSOA(msg)
				return dns.RcodeSuccess
			}
			z.addSOA(msg)
			return dns.RcodeNameError
		}
		var cname *dns.CNAME
		found := false
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == qtype || qtype == dns.TypeANY {
				msg.Answer = append(msg.Answer, rr)
				found = true
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if found || cname == nil || qtype == dns.TypeCNAME {
			if !found {
				z.addSOA(msg)
			}
			return dns.RcodeSuccess
		}
		msg.Answer = append(msg.Answer, cname)
		qname = strings.ToLower(cname.Target)
		next := other(qname)
		if next == nil {
			return dns.RcodeSuccess // target outside our zones: the resolver chases it
		}
		z = next
	}
	return dns.RcodeServerFailure // CNAME loop
}

// wildcard implements the simple case of RFC 4592: *.<closest encloser>
// answers for names that do not exist, with the owner rewritten.
func (z *Zone) wildcard(qname string) ([]dns.RR, bool) {
	if z.exists[qname] {
		return nil, false
	}
	for n := qname; n != z.Origin; {
		i, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
		if z.exists[n] {
			rrs, ok := z.names["*."+n]
			if !ok {
				return nil, false
			}
			out := make([]dns.RR, len(rrs))
			for j, rr := range rrs {
				out[j] = dns.Copy(rr)
				out[j].Header().Name = qname
			}
			return out, true
		}
	}
	return nil, false
}

// addSOA puts the SOA in the authority section of a negative answer, its
// TTL lowered to MINIMUM as RFC 2308 §3 asks.
func (z *Zone) addSOA(msg *dns.Msg) {
	soa := dns.Copy(z.SOA).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	msg.Ns = append(msg.Ns, soa)
}
