package dnsx

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Security is the DNSSEC status of an answer (RFC 4033 §5, RFC 4035 §4.3).
// The zero value means the answer was not validated (dns.dnssec: off).
type Security uint8

const (
	// Unvalidated: nobody checked (validation off, or trust_ad with a
	// server that is neither on loopback nor listed).
	Unvalidated Security = iota
	// Secure: a chain of signatures from a trust anchor covers the answer.
	Secure
	// Insecure: the chain of trust proves the zone unsigned (a delegation
	// without DS, algorithms not supported, NSEC3 opt-out or too many
	// iterations), so the answer stands as unprotected.
	Insecure
	// Bogus: signatures should be there and are missing, expired or wrong.
	// A bogus answer is never returned: the lookup fails with a
	// *BogusError, a temporary error (temperror for checks).
	Bogus
)

func (s Security) String() string {
	switch s {
	case Secure:
		return "secure"
	case Insecure:
		return "insecure"
	case Bogus:
		return "bogus"
	}
	return "unvalidated"
}

// ErrBogus is wrapped by the error of a lookup whose answer failed DNSSEC
// validation.
var ErrBogus = errors.New("DNSSEC bogus")

// BogusError names the link of the chain that failed.
type BogusError struct{ Reason string }

func (e *BogusError) Error() string { return "DNSSEC bogus: " + e.Reason }

// Is makes errors.Is(err, ErrBogus) hold.
func (e *BogusError) Is(target error) bool { return target == ErrBogus }

// DNSSEC modes of dns.dnssec.
const (
	DNSSECOff      = "off"
	DNSSECValidate = "validate"
	DNSSECTrustAD  = "trust_ad"
)

// RootAnchors are the root zone's key-signing keys as IANA publishes them
// (https://data.iana.org/root-anchors/root-anchors.xml): KSK-2017 and
// KSK-2024.
const RootAnchors = `. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
`

// ValidatorConfig sets up a Validator. Zero limits take the defaults noted.
type ValidatorConfig struct {
	// Mode is DNSSECValidate or DNSSECTrustAD.
	Mode string
	// Anchors are DS or DNSKEY records in presentation format, one a line
	// (RFC 4033 §2 trust anchors). Empty: RootAnchors.
	Anchors []string
	// NegativeAnchors are domains validated as insecure whatever their
	// chain says (RFC 7646), besides the special-use ones (.test, RFC
	// 1918 reverse zones: dnssec_nta.go) added when Anchors is empty.
	NegativeAnchors []string
	// TrustADFrom are the servers whose AD bit trust_ad believes besides
	// those on loopback.
	TrustADFrom []netip.Prefix
	// Now is the clock for signature validity; default time.Now.
	Now func() time.Time
	// MaxZones bounds the zones walked from an anchor for one answer
	// (default 16); MaxVerifications the signature checks one query may
	// make (default 48; KeyTrap, CVE-2023-50387); MaxKeys the DNSKEYs a
	// zone may have (default 16); MaxSigs the RRSIGs tried per RRset
	// (default 8); MaxNSEC3Iterations above which NSEC3 answers count as
	// insecure (default 100, RFC 9276 §3.2).
	MaxZones, MaxVerifications, MaxKeys, MaxSigs int
	MaxNSEC3Iterations                           uint16
	// ChainCacheSize bounds the validated zones (DNSKEY/DS results)
	// remembered; default 2000.
	ChainCacheSize int
}

// Validator checks answers with DNSSEC for a Client (Client.Validator):
// either itself, walking DS -> DNSKEY -> RRSIG from a trust anchor down to
// the answer's zone (RFC 4035 §5), or by believing the AD bit of a local
// validating resolver (trust_ad, RFC 6840 §5.7). It is safe for
// concurrent use; the zones it validated are cached for their TTL.
type Validator struct {
	cfg     ValidatorConfig
	anchors map[string][]dns.RR // by owner
	nta     map[string]bool     // negative trust anchors (dnssec_nta.go)

	mu     sync.Mutex
	zones  map[string]*zoneState
	flight singleflight.Group
}

// zoneState is what the chain of trust says about one zone.
type zoneState struct {
	name    string
	status  Security // Secure, Insecure or Bogus
	keys    []*dns.DNSKEY
	reason  string
	expires time.Time
}

// NewValidator checks cfg and parses the anchors.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	if cfg.Mode != DNSSECValidate && cfg.Mode != DNSSECTrustAD {
		return nil, fmt.Errorf("dnsx: dnssec mode %q is not validate or trust_ad", cfg.Mode)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&cfg.MaxZones, 16)
	def(&cfg.MaxVerifications, 48)
	def(&cfg.MaxKeys, 16)
	def(&cfg.MaxSigs, 8)
	def(&cfg.ChainCacheSize, 2000)
	if cfg.MaxNSEC3Iterations == 0 {
		cfg.MaxNSEC3Iterations = 100
	}
	v := &Validator{cfg: cfg, anchors: make(map[string][]dns.RR), zones: make(map[string]*zoneState), nta: negativeAnchors(cfg)}
	text := strings.Join(cfg.Anchors, "\n")
	if strings.TrimSpace(text) == "" {
		text = RootAnchors
	}
	zp := dns.NewZoneParser(strings.NewReader(text), ".", "trust_anchors")
	zp.SetIncludeAllowed(false)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch rr.(type) {
		case *dns.DS, *dns.DNSKEY:
			name := Fqdn(rr.Header().Name)
			v.anchors[name] = append(v.anchors[name], rr)
		default:
			return nil, fmt.Errorf("dnsx: trust anchor %q is neither DS nor DNSKEY", rr.String())
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("dnsx: trust anchors: %w", err)
	}
	if len(v.anchors) == 0 {
		return nil, errors.New("dnsx: no trust anchors")
	}
	return v, nil
}

// Mode is the validator's mode.
func (v *Validator) Mode() string { return v.cfg.Mode }

// Flush forgets every validated zone.
func (v *Validator) Flush() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.zones)
}

// budget bounds the work of one query (RFC 9276 and the KeyTrap lessons:
// a hostile zone can make validation cost without limit otherwise).
type budget struct {
	verifications int
	// exhausted: a limit cut the work short, so a bogus result says
	// nothing lasting about the zone and is not cached.
	exhausted bool
	// ttl is the cap RFC 4035 §5.3.3 puts on the answer's TTL: the
	// RRSIGs' original TTL and the time left to their expiration.
	ttl uint32
}

// query is Client.Query with validation.
func (v *Validator) query(ctx context.Context, c *Client, qname string, qtype uint16) (*Answer, error) {
	fl := queryFlags{do: true}
	if v.cfg.Mode == DNSSECTrustAD {
		fl = queryFlags{ad: true}
	}
	b := &budget{verifications: v.cfg.MaxVerifications, ttl: ^uint32(0)}
	ans := &Answer{Name: qname, Type: qtype, TTL: ^uint32(0), Security: Secure}
	target := qname
	for hop := 0; ; hop++ {
		resp, server, tcp, err := c.exchange(ctx, target, qtype, fl)
		if err != nil {
			return nil, &Error{Name: qname, Type: qtype, Temporary: true, Err: err}
		}
		ans.Server, ans.TCP = server, ans.TCP || tcp
		var sec Security
		var reason string
		if v.cfg.Mode == DNSSECTrustAD {
			sec, reason = v.trustAD(resp, server)
		} else {
			sec, reason, err = v.validateResponse(ctx, c, resp, target, qtype, b)
			if err != nil {
				return nil, &Error{Name: qname, Type: qtype, Temporary: true, Err: err}
			}
		}
		if sec == Bogus {
			return nil, &Error{Name: qname, Type: qtype, Temporary: true, Err: &BogusError{Reason: reason}}
		}
		if sec == Unvalidated || sec == Insecure && ans.Security == Secure {
			ans.Security, ans.SecurityReason = sec, reason
		}
		var chained bool
		target, chained = collect(ans, resp, target, qtype)
		if !chained || hop >= maxCNAMEHops {
			break
		}
	}
	if qtype != dns.TypeRRSIG {
		ans.Records = dropType(ans.Records, dns.TypeRRSIG)
	}
	ans.TTL = min(ans.TTL, b.ttl)
	return ans, nil
}

func dropType(rrs []dns.RR, t uint16) []dns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype != t {
			out = append(out, rr)
		}
	}
	return out
}

// trustAD believes the AD bit (RFC 4035 §3.2.3, RFC 6840 §5.7) of a
// server on loopback or listed in TrustADFrom; a bogus answer comes from
// such a resolver as SERVFAIL, a temporary error already.
func (v *Validator) trustAD(resp *dns.Msg, server string) (Security, string) {
	ap, err := netip.ParseAddrPort(server)
	trusted := err == nil && ap.Addr().Unmap().IsLoopback()
	for _, p := range v.cfg.TrustADFrom {
		if err == nil && p.Contains(ap.Addr().Unmap()) {
			trusted = true
		}
	}
	switch {
	case !trusted:
		return Unvalidated, "AD bit of " + server + " not trusted (not loopback, not in dns.trust_ad_servers)"
	case resp.AuthenticatedData:
		return Secure, ""
	default:
		return Insecure, "resolver " + server + " did not set AD"
	}
}

// rrSet is one RRset of a section with the RRSIGs that cover it.
type rrSet struct {
	name  string
	rtype uint16
	rrs   []dns.RR
	sigs  []*dns.RRSIG
}

// rrSets groups a section into RRsets (RFC 2181 §5), RRSIGs attached to the
// set they cover, in order of first appearance.
func rrSets(section []dns.RR) []*rrSet {
	var out []*rrSet
	find := func(name string, t uint16) *rrSet {
		for _, s := range out {
			if s.rtype == t && s.name == name {
				return s
			}
		}
		s := &rrSet{name: name, rtype: t}
		out = append(out, s)
		return s
	}
	for _, rr := range section {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if sig, ok := rr.(*dns.RRSIG); ok {
			s := find(name, sig.TypeCovered)
			s.sigs = append(s.sigs, sig)
			continue
		}
		s := find(name, h.Rrtype)
		s.rrs = append(s.rrs, rr)
	}
	// Sets that are only signatures (covering what the section lacks)
	// prove nothing; drop them.
	kept := out[:0]
	for _, s := range out {
		if len(s.rrs) > 0 {
			kept = append(kept, s)
		}
	}
	return kept
}

// validateResponse checks every RRset of resp's answer section and, when
// resp does not answer target/qtype, the proof of the denial in its
// authority section.
func (v *Validator) validateResponse(ctx context.Context, c *Client, resp *dns.Msg, target string, qtype uint16, b *budget) (Security, string, error) {
	if st := v.ntaAbove(target); st != nil {
		return Insecure, st.reason, nil // dnssec_nta.go
	}
	status, why := Secure, ""
	worse := func(s Security, r string) {
		if s == Insecure && status == Secure {
			status, why = s, r
		}
	}
	ns := rrSets(resp.Ns)
	sets := rrSets(resp.Answer)
	// Follow the CNAME chain inside the response (as collect does): the
	// RRsets on it are what the answer is made of, and only they are
	// validated (other records an attacker adds cost nothing).
	var used []*rrSet
	badSynth := map[*rrSet]string{} // CNAMEs a DNAME should have made, and didn't
	// use takes a CNAME set on the chain: a synthesized one stands on its
	// DNAME (dnssec_dname.go).
	use := func(set *rrSet) {
		d, why := synthesizedFrom(set, sets)
		switch {
		case d != nil && !slices.Contains(used, d):
			used = append(used, d)
		case d == nil:
			if why != "" {
				badSynth[set] = why
			}
			used = append(used, set)
		}
	}
	answered, chased := false, false
	name := strings.ToLower(target)
	for range maxCNAMEHops + 1 {
		next := ""
		for _, set := range sets {
			if set.name != name {
				continue
			}
			switch {
			case set.rtype == dns.TypeCNAME && (qtype == dns.TypeCNAME || qtype == dns.TypeANY):
				answered = true
				use(set)
			case set.rtype == qtype || qtype == dns.TypeANY:
				answered = true
				used = append(used, set)
			case set.rtype == dns.TypeCNAME:
				next = strings.ToLower(set.rrs[0].(*dns.CNAME).Target)
				use(set)
			}
		}
		if answered || next == "" {
			break
		}
		name = next
		if !hasOwner(resp.Answer, name) {
			chased = true // the target is asked in the next exchange
			break
		}
	}
	for _, set := range used {
		s, r, err := v.validateSet(ctx, c, set, ns, b)
		if s == Bogus && badSynth[set] != "" {
			r = badSynth[set]
		}
		if err != nil || s == Bogus {
			return s, r, err
		}
		worse(s, r)
	}
	if chased {
		return status, why, nil
	}
	if answered {
		return status, why, nil
	}
	if st := v.ntaAbove(name); st != nil {
		worse(Insecure, st.reason)
		return status, why, nil
	}
	s, r, err := v.validateDenial(ctx, c, resp, ns, name, qtype, b)
	if err != nil || s == Bogus {
		return s, r, err
	}
	worse(s, r)
	return status, why, nil
}

// validateSet checks one RRset of an answer: signed by a zone the chain of
// trust reaches (RFC 4035 §5.3), or provably in an insecure zone.
func (v *Validator) validateSet(ctx context.Context, c *Client, set *rrSet, ns []*rrSet, b *budget) (Security, string, error) {
	if st := v.ntaAbove(set.name); st != nil {
		return Insecure, st.reason, nil
	}
	what := strings.TrimSuffix(set.name, ".") + " " + dns.TypeToString[set.rtype]
	if set.name == "." {
		what = ". " + dns.TypeToString[set.rtype]
	}
	// RFC 4035 §5.3.1: the signer is the zone holding the RRset: an
	// ancestor of the owner, a proper one for a DS (§3.1.4.1). An RRSIG
	// naming another signer, added by an attacker, must not hide the
	// genuine one: up to maxSigners distinct ones are tried.
	const maxSigners = 3
	var signers []string
	for _, sig := range set.sigs {
		s := Fqdn(sig.SignerName)
		if dns.IsSubDomain(s, set.name) && !(set.rtype == dns.TypeDS && s == set.name) && !slices.Contains(signers, s) && len(signers) < maxSigners {
			signers = append(signers, s)
		}
	}
	if len(signers) == 0 {
		if st := v.insecureAbove(set.name); st != nil {
			return Insecure, st.reason, nil
		}
		zone, err := v.findZone(ctx, c, set.name, set.rtype)
		if err != nil {
			return 0, "", err
		}
		st, err := v.zone(ctx, c, zone, b, 0)
		if err != nil || st.status != Secure {
			return statusOf(st), reasonOf(st), err
		}
		return Bogus, fmt.Sprintf("%s: no RRSIG, and zone %s is signed", what, strings.TrimSuffix(zone, ".")), nil
	}
	status, reason := Bogus, ""
	for _, signer := range signers {
		s, r, err := v.signedBy(ctx, c, set, ns, signer, b, what)
		if err != nil || s == Secure {
			return s, r, err
		}
		if s == Insecure || reason == "" {
			status, reason = s, r
		}
	}
	return status, reason, nil
}

// signedBy checks set against the keys of zone signer.
func (v *Validator) signedBy(ctx context.Context, c *Client, set *rrSet, ns []*rrSet, signer string, b *budget, what string) (Security, string, error) {
	st, err := v.zone(ctx, c, signer, b, 0)
	if err != nil || st.status != Secure {
		return statusOf(st), reasonOf(st), err
	}
	sig, reason := v.verify(set, st, b)
	if sig == nil {
		return Bogus, what + ": " + reason, nil
	}
	// RFC 4035 §5.3.4: an answer expanded from a wildcard (the RRSIG has
	// fewer labels than the owner) stands only with proof that the owner
	// itself does not exist.
	if labels := dns.CountLabel(set.name); int(sig.Labels) < labels {
		ce := lastLabels(set.name, int(sig.Labels))
		ok, s, r := v.provesNoName(set.name, ce, ns, st, b)
		switch {
		case s == Bogus:
			return Bogus, what + ": " + r, nil
		case s == Insecure:
			return Insecure, r, nil
		case !ok:
			return Bogus, what + ": wildcard answer without proof that " + strings.TrimSuffix(set.name, ".") + " does not exist", nil
		}
	}
	return Secure, "", nil
}

func statusOf(st *zoneState) Security {
	if st == nil {
		return Bogus
	}
	return st.status
}

func reasonOf(st *zoneState) string {
	if st == nil {
		return ""
	}
	return st.reason
}

// lastLabels is the rightmost n labels of name.
func lastLabels(name string, n int) string {
	labels := dns.SplitDomainName(name)
	if n <= 0 {
		return "."
	}
	if n >= len(labels) {
		return name
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-n:], "."))
}

// findZone asks which zone holds name: the SOA there, or the one a
// negative answer carries (RFC 2308 §3). For a DS, the search starts at the
// parent. What it says is checked by the chain of trust: a zone named here
// is believed only once a signed delegation to it (or its provable absence
// of DS) is found.
func (v *Validator) findZone(ctx context.Context, c *Client, name string, rtype uint16) (string, error) {
	if rtype == dns.TypeDS && name != "." {
		name = parentOf(name)
	}
	resp, _, _, err := c.exchange(ctx, name, dns.TypeSOA, queryFlags{do: true})
	if err != nil {
		return "", err
	}
	for _, rr := range append(append([]dns.RR(nil), resp.Answer...), resp.Ns...) {
		if soa, ok := rr.(*dns.SOA); ok {
			z := Fqdn(soa.Hdr.Name)
			if dns.IsSubDomain(z, name) {
				return z, nil
			}
		}
	}
	return name, nil // no SOA: try the name itself; the chain decides
}

func parentOf(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}

// verify finds an RRSIG of set made by one of st's keys that verifies and
// is within its validity period (RFC 4035 §5.3). It returns it, or why
// none does.
func (v *Validator) verify(set *rrSet, st *zoneState, b *budget) (*dns.RRSIG, string) {
	if len(set.sigs) == 0 {
		return nil, "no RRSIG"
	}
	reason := ""
	now := v.cfg.Now()
	tried := 0
	for _, sig := range set.sigs {
		if tried >= v.cfg.MaxSigs {
			b.exhausted = true
			reason = fmt.Sprintf("more than %d RRSIGs, none verified", v.cfg.MaxSigs)
			break
		}
		tried++
		if Fqdn(sig.SignerName) != st.name {
			reason = "RRSIG by " + sig.SignerName + ", not by zone " + st.name
			continue
		}
		if !algorithmSupported(sig.Algorithm) {
			reason = fmt.Sprintf("RRSIG algorithm %d not supported", sig.Algorithm)
			continue
		}
		if int(sig.Labels) > dns.CountLabel(set.name) {
			reason = "RRSIG labels field larger than the owner's"
			continue
		}
		if !sig.ValidityPeriod(now) {
			if exp := serialTime(sig.Expiration, now); now.After(exp) {
				reason = "RRSIG expired " + exp.UTC().Format("2006-01-02T15:04Z")
			} else {
				reason = "RRSIG not valid before " + serialTime(sig.Inception, now).UTC().Format("2006-01-02T15:04Z")
			}
			continue
		}
		matched := false
		for _, k := range st.keys {
			if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm {
				continue
			}
			matched = true
			if b.verifications <= 0 {
				b.exhausted = true
				return nil, fmt.Sprintf("validation budget of %d signature checks used up", v.cfg.MaxVerifications)
			}
			b.verifications--
			if err := sig.Verify(k, set.rrs); err == nil {
				left := serialTime(sig.Expiration, now).Sub(now) / time.Second
				b.ttl = min(b.ttl, sig.OrigTtl, uint32(max(left, 0)))
				return sig, ""
			}
			reason = fmt.Sprintf("RRSIG by key %d does not verify", sig.KeyTag)
		}
		if !matched && reason == "" {
			reason = fmt.Sprintf("RRSIG by key %d, which is not in the %s DNSKEY set", sig.KeyTag, strings.TrimSuffix(st.name, "."))
		}
	}
	if reason == "" {
		reason = "no usable RRSIG"
	}
	return nil, reason
}

// serialTime turns an RRSIG time (seconds, serial arithmetic, RFC 4034
// §3.1.5) into the time nearest to now.
func serialTime(t uint32, now time.Time) time.Time {
	d := int64(int32(t - uint32(now.Unix())))
	return now.Add(time.Duration(d) * time.Second)
}

// algorithmSupported: RSA/SHA-256 and SHA-512, ECDSA P-256 and P-384,
// Ed25519 (RFC 8624 §3.1 MUST/RECOMMENDED to validate). Others, SHA-1
// algorithms included, make a zone insecure (RFC 4035 §5.2, RFC 6840
// §5.2).
func algorithmSupported(alg uint8) bool {
	switch alg {
	case dns.RSASHA256, dns.RSASHA512, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		return true
	}
	return false
}

func digestSupported(d uint8) bool {
	switch d {
	case dns.SHA1, dns.SHA256, dns.SHA384:
		return true
	}
	return false
}
