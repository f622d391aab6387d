package domaincheck

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// SectionDNSSEC holds the findings on the zone's DNSSEC state: DS at the
// parent, DNSKEY, signatures on the records mail depends on, algorithms
// and NSEC3 parameters (issue 27).
const SectionDNSSEC = "dnssec"

// SignatureWarnDays is how close to its expiry a signature makes a
// warning: a signer that stopped re-signing has that long before every
// validator finds the zone bogus and the domain's mail defers.
const SignatureWarnDays = 7

// Bounds on what one zone may make the check do (KeyTrap, CVE-2023-50387:
// many keys times many signatures).
const (
	maxCheckedKeys = 16
	maxCheckedSigs = 8
	maxCheckedDS   = 16
	// maxVerifications bounds the signature checks of one domain's
	// check; maxRSAModulusBytes the RSA keys tried (4096 bits, RFC 3110 §2,
	// as validators do): a 262,144-bit modulus costs seconds to verify.
	maxVerifications   = 64
	maxRSAModulusBytes = 4096 / 8
)

const signFix = "re-sign the zone and check that the signer runs (BIND dnssec-policy, OpenDNSSEC, or the DNS host's DNSSEC switch)"

// dnssec checks the zone holding domain as a validator would meet it,
// asking the zone's own servers (DO bit set) for keys and signatures and
// the resolver for the DS at the parent.
func (r *run) dnssec(domain string) {
	zone, hosts, err := r.zoneOf(domain)
	if err != nil {
		if errors.Is(err, dnsx.ErrBogus) {
			r.add(SectionDNSSEC, Fail, domain, "answers are bogus to a validating resolver: "+err.Error()+"; every check of the domain's mail ends in temperror", signFix)
		}
		return // ns reports the failure
	}
	if zone == "" {
		return
	}
	addr := r.authServer(hosts)
	if addr == "" {
		r.add(SectionDNSSEC, Info, zone, "no name server address to ask for DNSSEC records", "")
		return
	}
	var ds []*dns.DS
	dsAns, err := r.c.Resolver.Query(r.ctx, zone, dns.TypeDS)
	if err != nil {
		st := Warn
		if errors.Is(err, dnsx.ErrBogus) {
			st = Fail
		}
		r.add(SectionDNSSEC, st, zone, lookupError("DS", err), "")
		return
	}
	for _, rr := range dsAns.Records {
		if d, ok := rr.(*dns.DS); ok && len(ds) < maxCheckedDS {
			ds = append(ds, d)
		}
	}
	keyResp, err := r.askDO(addr, zone, dns.TypeDNSKEY)
	if err != nil {
		st := Warn
		if len(ds) == 0 {
			st = Info // no DS: validators do not ask for keys either
		}
		r.add(SectionDNSSEC, st, zone, lookupError("DNSKEY", err), "")
		return
	}
	keys, keySigs := dnssecSet(keyResp, zone, dns.TypeDNSKEY)
	var dnskeys []*dns.DNSKEY
	for _, rr := range keys {
		k, ok := rr.(*dns.DNSKEY)
		if !ok || k.Flags&dns.ZONE == 0 || len(dnskeys) >= maxCheckedKeys {
			continue
		}
		if oversizeRSA(k) {
			r.add(SectionDNSSEC, Fail, zone, fmt.Sprintf("DNSKEY %d is an RSA key over 4096 bits: validators refuse it (RFC 3110 §2)", k.KeyTag()),
				"roll to a key of 2048 bits, or to algorithm 13 (ECDSA P-256)")
			continue
		}
		dnskeys = append(dnskeys, k)
	}
	switch {
	case len(ds) == 0 && len(dnskeys) == 0:
		// Info, not a warning: most zones are unsigned, and mail works.
		r.add(SectionDNSSEC, Info, zone, "not signed: the zone has no DNSKEY and its parent no DS, so DNSSEC protects none of its records (SPF, DKIM keys, DMARC) from forged answers",
			"sign the zone (most DNS hosts offer DNSSEC as one switch) and publish its DS at the registrar")
		return
	case len(dnskeys) == 0:
		r.add(SectionDNSSEC, Fail, zone, fmt.Sprintf("the parent publishes %d DS but the zone has no DNSKEY: validators find every answer bogus, and mail checks of the domain end in temperror", len(ds)),
			"sign the zone again with the key the DS names, or remove the DS at the registrar")
		return
	case len(ds) == 0:
		r.add(SectionDNSSEC, Warn, zone, fmt.Sprintf("unsigned delegation: the zone is signed (%d DNSKEY) but its parent has no DS, so validators treat its answers as insecure", len(dnskeys)),
			"publish the DS at the registrar: "+dsOf(dnskeys))
	default:
		r.dsMatch(zone, ds, dnskeys)
	}
	r.algorithms(zone, dnskeys)
	r.signatures(addr, zone, domain, keys, keySigs, dnskeys)
	r.nsec3(addr, zone)
}

// authServer is the address of the first of hosts that has one.
func (r *run) authServer(hosts []string) string {
	for _, h := range hosts {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if addrs, err := dnsx.IPs(r.ctx, r.c.Resolver, h, qt); err == nil && len(addrs) > 0 {
				return r.c.serverAddr(addrs[0].String())
			}
		}
	}
	return ""
}

// askDO asks one authoritative server with the DO bit (RFC 3225), so the
// answer carries its RRSIGs, over TCP when UDP is truncated.
func (r *run) askDO(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	c := &dns.Client{Timeout: r.c.timeout()}
	resp, _, err := c.ExchangeContext(r.ctx, m, addr)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(r.ctx, m, addr)
	}
	if err != nil {
		return nil, &dnsx.Error{Name: name, Type: qtype, Temporary: true, Err: err}
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return nil, &dnsx.Error{Name: name, Type: qtype, Temporary: true, Err: fmt.Errorf("%w: %s from %s", dnsx.ErrServFail, dns.RcodeToString[resp.Rcode], addr)}
	}
	return resp, nil
}

// dnssecSet is the RRset name/qtype of an answer and the RRSIGs over it.
func dnssecSet(resp *dns.Msg, name string, qtype uint16) ([]dns.RR, []*dns.RRSIG) {
	var set []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range resp.Answer {
		h := rr.Header()
		if !strings.EqualFold(h.Name, dns.Fqdn(name)) {
			continue
		}
		if s, ok := rr.(*dns.RRSIG); ok {
			if s.TypeCovered == qtype && len(sigs) < maxCheckedSigs {
				sigs = append(sigs, s)
			}
		} else if h.Rrtype == qtype {
			set = append(set, rr)
		}
	}
	return set, sigs
}

// dsOf is the SHA-256 DS (RFC 4509) of the zone's key-signing keys (SEP
// flag), or of all its keys when none has it: what to publish.
func dsOf(keys []*dns.DNSKEY) string {
	var out []string
	for _, sep := range []bool{true, false} {
		for _, k := range keys {
			if (k.Flags&dns.SEP != 0) == sep {
				if d := k.ToDS(dns.SHA256); d != nil {
					out = append(out, strings.ReplaceAll(d.String(), "\t", " "))
				}
			}
		}
		if len(out) > 0 {
			break
		}
	}
	return strings.Join(out, "; ")
}

// dsMatch checks that a DS at the parent names a key of the zone (RFC
// 4035 §5.2), and its digest type (RFC 8624 §3.3).
func (r *run) dsMatch(zone string, ds []*dns.DS, keys []*dns.DNSKEY) {
	var matched *dns.DS
	for _, d := range ds {
		for _, k := range keys {
			if k.KeyTag() != d.KeyTag || k.Algorithm != d.Algorithm {
				continue
			}
			if kd := k.ToDS(d.DigestType); kd != nil && strings.EqualFold(kd.Digest, d.Digest) {
				if matched == nil || matched.DigestType < d.DigestType {
					matched = d
				}
			}
		}
	}
	if matched == nil {
		tags := make([]string, len(ds))
		for i, d := range ds {
			tags[i] = fmt.Sprint(d.KeyTag)
		}
		r.add(SectionDNSSEC, Fail, zone, fmt.Sprintf("no DNSKEY of the zone matches the DS at the parent (key tag %s): validators find every answer bogus, and mail checks of the domain end in temperror", strings.Join(tags, ", ")),
			"publish the DS of the current key at the registrar: "+dsOf(keys))
		return
	}
	r.add(SectionDNSSEC, Pass, zone, fmt.Sprintf("DS at the parent (key tag %d, algorithm %d, digest type %d) matches a DNSKEY of the zone", matched.KeyTag, matched.Algorithm, matched.DigestType), "")
	if matched.DigestType == dns.SHA1 {
		r.add(SectionDNSSEC, Warn, zone, "the DS uses SHA-1 (digest type 1), which RFC 8624 §3.3 says not to publish",
			"publish a SHA-256 DS (digest type 2) instead: "+dsOf(keys))
	}
}

// algorithms grades the keys' algorithms as RFC 8624 §3.1 does for
// signing.
func (r *run) algorithms(zone string, keys []*dns.DNSKEY) {
	var algs []uint8
	for _, k := range keys {
		if !slices.Contains(algs, k.Algorithm) {
			algs = append(algs, k.Algorithm)
		}
	}
	slices.Sort(algs)
	const roll = "roll the keys to algorithm 13 (ECDSA P-256, small and fast) or 8 (RSA/SHA-256)"
	for _, a := range algs {
		name := fmt.Sprintf("algorithm %d (%s)", a, dns.AlgorithmToString[a])
		switch a {
		case dns.RSASHA256, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519, dns.ED448:
			r.add(SectionDNSSEC, Pass, zone, name+" is one validators support (RFC 8624)", "")
		case dns.RSASHA1, dns.RSASHA1NSEC3SHA1:
			r.add(SectionDNSSEC, Fail, zone, name+" signs with SHA-1: RFC 8624 says not to, and validators that refuse SHA-1 (RHEL 9, newer resolvers) treat the zone as insecure", roll)
		case dns.RSASHA512:
			r.add(SectionDNSSEC, Warn, zone, name+" is not recommended (RFC 8624 §3.1): some validators do not support it", roll)
		default:
			r.add(SectionDNSSEC, Fail, zone, name+" must not be used (RFC 8624 §3.1): validators treat the zone as insecure or fail it", roll)
		}
	}
}

// signatures checks the RRSIGs over the key set and the records mail
// depends on: present, made by a key of the zone, verifying, in their
// validity period and not within SignatureWarnDays of its end.
func (r *run) signatures(addr, zone, domain string, keySet []dns.RR, keySigs []*dns.RRSIG, keys []*dns.DNSKEY) {
	now := time.Now()
	var earliest time.Time
	var checked, expiring []string
	bad := false
	budget := maxVerifications
	check := func(name string, qtype uint16, set []dns.RR, sigs []*dns.RRSIG) {
		what := strings.TrimSuffix(name, ".") + " " + dns.TypeToString[qtype]
		if budget <= 0 {
			bad = true
			r.add(SectionDNSSEC, Info, what, fmt.Sprintf("RRSIGs not checked: the zone's keys and signatures need more than the %d verifications a check makes", maxVerifications), "")
			return
		}
		if len(sigs) == 0 {
			bad = true
			r.add(SectionDNSSEC, Fail, what, "no RRSIG: validators find the answer bogus", signFix)
			return
		}
		var valid, expired, future *dns.RRSIG
		for _, s := range sigs {
			if !verifies(s, keys, set, &budget) {
				continue
			}
			switch {
			case s.ValidityPeriod(now):
				if valid == nil || sigTime(s.Expiration, now).After(sigTime(valid.Expiration, now)) {
					valid = s
				}
			case sigTime(s.Inception, now).After(now):
				future = s
			default:
				expired = s
			}
		}
		switch {
		case valid != nil:
			exp := sigTime(valid.Expiration, now)
			if earliest.IsZero() || exp.Before(earliest) {
				earliest = exp
			}
			checked = append(checked, what)
			if exp.Sub(now) < SignatureWarnDays*24*time.Hour {
				expiring = append(expiring, what)
			}
		case expired != nil:
			bad = true
			r.add(SectionDNSSEC, Fail, what, fmt.Sprintf("RRSIG expired on %s: validators find the answer bogus", sigTime(expired.Expiration, now).UTC().Format(time.DateTime)), signFix)
		case future != nil:
			bad = true
			r.add(SectionDNSSEC, Fail, what, fmt.Sprintf("RRSIG not valid before %s: validators find the answer bogus", sigTime(future.Inception, now).UTC().Format(time.DateTime)), "check the signer's clock; "+signFix)
		default:
			bad = true
			r.add(SectionDNSSEC, Fail, what, fmt.Sprintf("no RRSIG (of %d) verifies with a DNSKEY of the zone: validators find the answer bogus", len(sigs)), signFix)
		}
	}
	check(zone, dns.TypeDNSKEY, keySet, keySigs)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{zone, dns.TypeSOA}, {domain, dns.TypeTXT}, {domain, dns.TypeMX}, {"_dmarc." + domain, dns.TypeTXT}} {
		resp, err := r.askDO(addr, q.name, q.qtype)
		if err != nil {
			r.add(SectionDNSSEC, Warn, strings.TrimSuffix(q.name, "."), lookupError(dns.TypeToString[q.qtype], err), "")
			continue
		}
		if set, sigs := dnssecSet(resp, q.name, q.qtype); len(set) > 0 {
			check(q.name, q.qtype, set, sigs)
		}
	}
	if len(expiring) > 0 {
		// One finding for all: a signer that stopped stops for every set.
		r.add(SectionDNSSEC, Warn, zone, fmt.Sprintf("RRSIGs expire within %d days, the first in %s (%s), on %s: once they do, validators find the answers bogus and the domain's mail defers",
			SignatureWarnDays, days(earliest.Sub(now)), earliest.UTC().Format(time.DateTime), strings.Join(expiring, ", ")), signFix)
		return
	}
	if !bad && len(checked) > 0 {
		r.add(SectionDNSSEC, Pass, zone, fmt.Sprintf("signatures valid on %s; the first expires in %s (%s)", strings.Join(checked, ", "), days(earliest.Sub(now)), earliest.UTC().Format(time.DateTime)), "")
	}
}

// verifies reports whether sig, by a key of the zone, verifies set;
// each signature check spends one of *budget.
func verifies(sig *dns.RRSIG, keys []*dns.DNSKEY, set []dns.RR, budget *int) bool {
	for _, k := range keys {
		if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm || *budget <= 0 {
			continue
		}
		*budget--
		if sig.Verify(k, set) == nil {
			return true
		}
	}
	return false
}

// oversizeRSA reports whether k is an RSA key with more than 4096 bits
// of modulus, judged from its length before any arithmetic.
func oversizeRSA(k *dns.DNSKEY) bool {
	switch k.Algorithm {
	case dns.RSAMD5, dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512:
		raw, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil || len(raw) < 3 {
			return false // malformed: Verify fails it at no cost
		}
		// RFC 3110 §2: exponent length (one byte, or zero and two),
		// exponent, modulus.
		explen, off := int(raw[0]), 1
		if explen == 0 {
			explen, off = int(raw[1])<<8|int(raw[2]), 3
		}
		return len(raw)-off-explen > maxRSAModulusBytes
	}
	return false
}

// sigTime is an RRSIG time field as a time near now (RFC 4034 §3.1.5:
// serial number arithmetic, so the 32-bit field wraps).
func sigTime(v uint32, now time.Time) time.Time {
	return now.Add(time.Duration(int32(v-uint32(now.Unix()))) * time.Second)
}

func days(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%.0f hours", d.Hours())
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// nsec3 checks the NSEC3 parameters against RFC 9276 §3.1: no additional
// iterations and no salt.
func (r *run) nsec3(addr, zone string) {
	resp, err := r.askDO(addr, zone, dns.TypeNSEC3PARAM)
	if err != nil {
		r.add(SectionDNSSEC, Warn, zone, lookupError("NSEC3PARAM", err), "")
		return
	}
	set, _ := dnssecSet(resp, zone, dns.TypeNSEC3PARAM)
	if len(set) == 0 {
		r.add(SectionDNSSEC, Info, zone, "names are denied with NSEC (no NSEC3PARAM)", "")
		return
	}
	p, ok := set[0].(*dns.NSEC3PARAM)
	if !ok {
		return
	}
	const fix = "set NSEC3 iterations 0 and no salt (RFC 9276): BIND dnssec-policy nsec3param iterations 0 optout no salt-length 0; Knot nsec3-iterations: 0, nsec3-salt-length: 0"
	clean := true
	if p.Iterations > 0 {
		clean = false
		msg := fmt.Sprintf("NSEC3 with %d additional iterations: RFC 9276 §3.1 asks for 0; they cost validators and protect nothing", p.Iterations)
		if p.Iterations > 100 {
			msg += "; above 100 many validators (mailwall's too) treat the zone as insecure"
		}
		r.add(SectionDNSSEC, Warn, zone, msg, fix)
	}
	if p.Salt != "" && p.Salt != "-" {
		clean = false
		r.add(SectionDNSSEC, Warn, zone, "NSEC3 salt "+p.Salt+": RFC 9276 §3.1 says to use none", fix)
	}
	if clean {
		r.add(SectionDNSSEC, Pass, zone, "NSEC3 with no additional iterations and no salt (RFC 9276)", "")
	}
}
