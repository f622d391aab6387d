package domaincheck

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
)

func (r *run) dkim(domain string) {
	found := 0
	selectors := slices.Clone(r.c.Selectors)
	for _, s := range CommonSelectors {
		if !slices.Contains(selectors, s) {
			selectors = append(selectors, s)
		}
	}
	var unknown []string // common selectors whose lookup failed
	for _, sel := range selectors {
		given := slices.Contains(r.c.Selectors, sel)
		name := sel + "._domainkey." + domain
		txts, err := dnsx.TXT(r.ctx, r.c.Resolver, name)
		if err != nil {
			if given {
				r.add(SectionDKIM, Fail, name, lookupError("TXT", err), "")
			} else if dnsx.IsTemporary(err) {
				unknown = append(unknown, sel)
			}
			continue
		}
		if len(txts) == 0 {
			if given {
				r.add(SectionDKIM, Fail, name, "no key record", fmt.Sprintf("publish the record \"mailwall dkim keygen --domain %s --selector %s\" prints", domain, sel))
			}
			continue
		}
		found++
		if len(txts) > 1 {
			r.add(SectionDKIM, Fail, name, fmt.Sprintf("%d TXT records: verifiers take one at random or fail", len(txts)), "keep one key record per selector")
		}
		r.dkimKey(name, txts[0])
	}
	if len(unknown) > 0 {
		r.add(SectionDKIM, Fail, domain, fmt.Sprintf("lookups of the common selectors %s failed temporarily: not checked", strings.Join(unknown, ", ")), "")
		return
	}
	if found == 0 && len(r.c.Selectors) == 0 {
		r.add(SectionDKIM, Warn, domain, fmt.Sprintf("no key found at the common selectors (%s)", strings.Join(CommonSelectors, ", ")), "give the selector your signer uses with --selector")
	}
}

// dkimKey grades one key record (RFC 6376 §3.6.1).
func (r *run) dkimKey(name, record string) {
	k, err := dkim.ParseKey(record)
	switch {
	case errors.Is(err, dkim.ErrKeyRevoked):
		r.add(SectionDKIM, Warn, name, "key revoked (empty p=): signatures with this selector fail", "sign with a current selector; remove the record once no mail in transit uses it")
		return
	case err != nil:
		r.add(SectionDKIM, Fail, name, fmt.Sprintf("key record does not parse: %v", err), "regenerate it with \"mailwall dkim keygen\"")
		return
	}
	if k.Testing {
		r.add(SectionDKIM, Warn, name, "t=y: the domain says it is testing DKIM; verifiers may treat failures as unsigned", "remove t=y once signatures verify")
	}
	if len(k.Hashes) > 0 && !slices.Contains(k.Hashes, "sha256") {
		r.add(SectionDKIM, Fail, name, fmt.Sprintf("h=%s excludes sha256: RFC 8301 forbids rsa-sha1 signatures", strings.Join(k.Hashes, ":")), "remove h= or set h=sha256")
	}
	// RFC 8301 §3.2 asks verifiers to handle 1024 to 4096 bits; a longer
	// key or another exponent than 65537 makes a check cost what the key
	// chooses, and verifiers (mailwall: permerror) refuse it unchecked.
	if why := k.Refusal(); why != "" {
		r.add(SectionDKIM, Fail, name, why+": verifiers refuse the key without checking the signature (mailwall: dkim=permerror), so mail signed with it counts as unsigned",
			"generate a 2048-bit key (exponent 65537) under a new selector: mailwall dkim keygen --bits 2048; then retire this one")
		return
	}
	switch {
	case k.Type == "rsa" && k.Bits < dkim.MinRSABits:
		r.add(SectionDKIM, Fail, name, fmt.Sprintf("RSA key of %d bits: verifiers reject keys under %d bits (RFC 8301 §3.2; mailwall: dkim=policy)", k.Bits, dkim.MinRSABits), "generate a 2048-bit key: mailwall dkim keygen --bits 2048")
	case k.Type == "rsa" && k.Bits < 2048:
		r.add(SectionDKIM, Warn, name, fmt.Sprintf("RSA key of %d bits: weak today; 2048 is the norm", k.Bits), "generate a 2048-bit key under a new selector, then retire this one")
	case k.Type == "rsa":
		r.add(SectionDKIM, Pass, name, fmt.Sprintf("RSA key of %d bits", k.Bits), "")
	case k.Type == "ed25519":
		r.add(SectionDKIM, Pass, name, "ed25519 key (RFC 8463)", "")
		r.add(SectionDKIM, Info, name, "many verifiers do not check ed25519 yet: sign with an RSA key too", "")
	}
}

func (r *run) dmarc(domain string) {
	name := "_dmarc." + domain
	txts, err := dnsx.TXT(r.ctx, r.c.Resolver, name)
	if err != nil {
		r.add(SectionDMARC, Fail, name, lookupError("TXT", err), "")
		return
	}
	var recs []*dmarc.Record
	for _, t := range txts {
		if rec, err := dmarc.ParseRecord(t); err == nil {
			recs = append(recs, rec)
		}
	}
	e := &dmarc.Evaluator{Resolver: r.c.Resolver}
	switch len(recs) {
	case 0:
		// RFC 9989 §4.10: the tree walk may find a policy higher up.
		res := e.Evaluate(r.ctx, dmarc.Input{FromDomains: []string{domain}})
		if pub := res.Row.Published; pub.Domain != "" && pub.Domain != domain {
			p := pub.P
			if pub.SP != "" {
				p = pub.SP
			}
			r.add(SectionDMARC, Warn, name, fmt.Sprintf("no record here; the one at _dmarc.%s applies (p=%s for this subdomain)", pub.Domain, p), "publish a record for this domain if it should differ")
			return
		}
		r.add(SectionDMARC, Fail, name, "no DMARC record: receivers apply no policy and send no reports", fmt.Sprintf("publish %s TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@%s\", then tighten p= once reports show your mail passes", name, domain))
		return
	case 1:
	default:
		r.add(SectionDMARC, Fail, name, fmt.Sprintf("%d DMARC records: receivers apply none of them (RFC 9989 §4.10)", len(recs)), "merge them into one record")
		return
	}
	rec := recs[0]
	for _, w := range rec.Warnings {
		r.add(SectionDMARC, Warn, name, w, "")
	}
	switch {
	case !rec.PValid:
		r.add(SectionDMARC, Fail, name, "p= is missing or invalid", "set p=none, p=quarantine or p=reject")
	case rec.P == dmarc.PolicyNone:
		r.add(SectionDMARC, Warn, name, "p=none: monitoring only; mail that fails DMARC is delivered as if there were no policy", "once reports show all your mail passes, move to p=quarantine, then p=reject")
	default:
		r.add(SectionDMARC, Pass, name, fmt.Sprintf("%q: p=%s", rec.Raw, rec.P), "")
	}
	if rec.PValid && rec.SP != "" && strength(rec.SP) < strength(rec.P) {
		r.add(SectionDMARC, Warn, name, fmt.Sprintf("sp=%s is weaker than p=%s: subdomains can be spoofed more easily than the domain", rec.SP, rec.P), "remove sp= or set it to p='s value")
	}
	if rec.Testing {
		r.add(SectionDMARC, Warn, name, "t=y: receivers apply the next weaker policy", "remove t=y when you are done testing")
	}
	if rec.Pct >= 0 && rec.Pct < 100 {
		r.add(SectionDMARC, Warn, name, fmt.Sprintf("pct=%d: RFC 7489 receivers apply the policy to %d%% of failing mail; RFC 9989 removed pct", rec.Pct, rec.Pct), "remove pct= (or use t=y while testing)")
	}
	if len(rec.RUA) == 0 {
		r.add(SectionDMARC, Warn, name, "no rua=: you will get no aggregate reports, so no view of who sends as you", fmt.Sprintf("add rua=mailto:dmarc-reports@%s", domain))
	}
	if len(rec.RUF) > 0 {
		r.add(SectionDMARC, Info, name, "ruf= set: few receivers send failure reports, and those carry message content", "")
	}
	uris := append(slices.Clone(rec.RUA), rec.RUF...)
	if len(uris) == 0 {
		return
	}
	kept, notes, err := e.Destinations(r.ctx, domain, uris)
	if err != nil {
		r.add(SectionDMARC, Fail, name, lookupError("report authorization", err), "")
		return
	}
	for _, n := range notes {
		r.add(SectionDMARC, Fail, name, n, "the destination publishes <domain>._report._dmarc.<its domain> TXT \"v=DMARC1\" (RFC 7489 §7.1)")
	}
	for _, u := range kept {
		r.add(SectionDMARC, Pass, name, fmt.Sprintf("reports may go to %s", u.URI), "")
	}
}

func strength(p dmarc.Policy) int {
	switch p {
	case dmarc.PolicyReject:
		return 2
	case dmarc.PolicyQuarantine:
		return 1
	}
	return 0
}

func (r *run) mx(domain string) {
	ans, err := r.c.Resolver.Query(r.ctx, domain, dns.TypeMX)
	if err != nil {
		r.add(SectionMX, Fail, domain, lookupError("MX", err), "")
		return
	}
	var hosts []*dns.MX
	for _, rr := range ans.Records {
		if mx, ok := rr.(*dns.MX); ok {
			hosts = append(hosts, mx)
		}
	}
	if len(hosts) == 0 {
		r.add(SectionMX, Warn, domain, "no MX record: senders fall back to the domain's own address (RFC 5321 §5.1)", fmt.Sprintf("publish %s MX 10 mail.%s, or a null MX (MX 0 .) if the domain takes no mail", domain, domain))
		return
	}
	if len(hosts) == 1 && hosts[0].Mx == "." {
		r.add(SectionMX, Info, domain, "null MX: the domain accepts no mail (RFC 7505)", "")
		return
	}
	slices.SortFunc(hosts, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
	s25r := r.c.S25R
	if s25r == nil {
		s25r, _ = conncheck.NewS25R(nil, nil, nil)
	}
	for _, mx := range hosts {
		host := strings.TrimSuffix(strings.ToLower(mx.Mx), ".")
		var addrs []netip.Addr
		failed := false
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			ips, err := dnsx.IPs(r.ctx, r.c.Resolver, host, qt)
			if err != nil {
				r.add(SectionMX, Fail, host, lookupError(dns.TypeToString[qt], err), "")
				failed = true
				continue
			}
			addrs = append(addrs, ips...)
		}
		if len(addrs) == 0 {
			if !failed {
				r.add(SectionMX, Fail, host, fmt.Sprintf("MX host (preference %d) has no address", mx.Preference), "publish A (and AAAA) records for it, or remove the MX")
			}
			continue
		}
		for _, ip := range addrs {
			subject := fmt.Sprintf("%s (%s)", host, ip)
			rev := conncheck.CheckIPRev(r.ctx, r.c.Resolver, ip)
			switch rev.Result {
			case "pass":
				if rule, hit := s25r.Match(ip, rev.Name); hit {
					r.add(SectionMX, Warn, subject, fmt.Sprintf("PTR name %s looks dynamic (S25R %s): receivers may refuse it", rev.Name, rule), "ask the address's owner for a PTR name like mail."+domain)
				} else {
					r.add(SectionMX, Pass, subject, fmt.Sprintf("PTR %s, which resolves back (FCrDNS)", rev.Name), "")
				}
			case "temperror":
				r.add(SectionMX, Fail, subject, "reverse DNS lookup failed temporarily: "+rev.Reason, "")
			default:
				r.add(SectionMX, Fail, subject, "no forward-confirmed reverse DNS: "+rev.Reason, fmt.Sprintf("ask the address's owner to set the PTR of %s to %s, which resolves to it", ip, host))
			}
		}
	}
}
