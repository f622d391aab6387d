package dnsx

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxChainTTL caps how long a validated zone is remembered, whatever its
// records' TTLs say.
const maxChainTTL = time.Hour

// bogusTTL is how long a zone found bogus is remembered as such.
const bogusTTL = 30 * time.Second

// zone returns what the chain of trust says about zone name: Secure with
// its validated DNSKEYs, Insecure with the reason, or Bogus with the
// failing link. An error is a transport failure (nothing cached).
func (v *Validator) zone(ctx context.Context, c *Client, name string, b *budget, depth int) (*zoneState, error) {
	name = Fqdn(name)
	if st := v.cached(name); st != nil {
		return st, nil
	}
	if st := v.insecureAbove(name); st != nil {
		return inherit(name, st), nil
	}
	if depth >= v.cfg.MaxZones {
		b.exhausted = true
		return &zoneState{name: name, status: Bogus, reason: fmt.Sprintf("chain of trust to %s longer than %d zones", name, v.cfg.MaxZones)}, nil
	}
	val, err, _ := v.flight.Do(name, func() (any, error) {
		st, err := v.walk(ctx, c, name, b, depth)
		switch {
		case err != nil:
		case st.status != Bogus:
			v.store(st)
		case !b.exhausted:
			// RFC 4035 §4.7: a bogus zone is remembered a little while, so
			// a flood of queries for it does not walk its chain each time.
			bad := *st
			bad.expires = v.cfg.Now().Add(bogusTTL)
			v.store(&bad)
		}
		return st, err
	})
	if err != nil {
		return nil, err
	}
	return val.(*zoneState), nil
}

func (v *Validator) cached(name string) *zoneState {
	v.mu.Lock()
	defer v.mu.Unlock()
	st, ok := v.zones[name]
	if !ok {
		return nil
	}
	if !v.cfg.Now().Before(st.expires) {
		delete(v.zones, name)
		return nil
	}
	return st
}

// insecureAbove returns the cached state of an insecure zone that encloses
// name, if one does with no trust anchor between them: below an insecure
// delegation no chain of trust can start again (RFC 4035 §4.3), so names
// there need no walk, nor the SOA query that finds their zone.
func (v *Validator) insecureAbove(name string) *zoneState {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.cfg.Now()
	for n := name; ; n = parentOf(n) {
		if _, ok := v.anchors[n]; ok {
			return nil
		}
		if st, ok := v.zones[n]; ok && st.status == Insecure && now.Before(st.expires) {
			return st
		}
		if v.nta[n] {
			return ntaState(n, now)
		}
		if n == "." {
			return nil
		}
	}
}

func (v *Validator) store(st *zoneState) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.zones) >= v.cfg.ChainCacheSize {
		// Full: drop what has expired, else everything. Chains are cheap
		// to walk again; an unbounded map is not.
		now := v.cfg.Now()
		for k, z := range v.zones {
			if !now.Before(z.expires) {
				delete(v.zones, k)
			}
		}
		if len(v.zones) >= v.cfg.ChainCacheSize {
			clear(v.zones)
		}
	}
	v.zones[st.name] = st
}

func (v *Validator) expiry(ttl uint32) time.Time {
	return v.cfg.Now().Add(min(time.Duration(ttl)*time.Second, maxChainTTL))
}

// underAnchor reports whether some trust anchor is name or an ancestor.
func (v *Validator) underAnchor(name string) bool {
	for a := range v.anchors {
		if dns.IsSubDomain(a, name) {
			return true
		}
	}
	return false
}

func bogus(name, format string, args ...any) *zoneState {
	return &zoneState{name: name, status: Bogus, reason: fmt.Sprintf(format, args...)}
}

func show(name string) string {
	if name == "." {
		return "."
	}
	return strings.TrimSuffix(name, ".")
}

// walk validates zone name from its parent's DS (RFC 4035 §5.2), the
// parent validated first, up to a trust anchor.
func (v *Validator) walk(ctx context.Context, c *Client, name string, b *budget, depth int) (*zoneState, error) {
	if anchors, ok := v.anchors[name]; ok {
		return v.dnskeys(ctx, c, name, anchors, b, "trust anchor")
	}
	if !v.underAnchor(name) {
		return &zoneState{name: name, status: Insecure, reason: "no trust anchor above " + show(name), expires: v.cfg.Now().Add(maxChainTTL)}, nil
	}
	resp, _, _, err := c.exchange(ctx, name, dns.TypeDS, queryFlags{do: true})
	if err != nil {
		return nil, err
	}
	var ds *rrSet
	for _, s := range rrSets(resp.Answer) {
		if s.name == name && s.rtype == dns.TypeDS {
			ds = s
		}
	}
	if ds == nil {
		return v.denyDS(ctx, c, resp, name, b, depth)
	}
	signer := ""
	for _, sig := range ds.sigs {
		if s := Fqdn(sig.SignerName); s != name && dns.IsSubDomain(s, name) {
			signer = s
			break
		}
	}
	if signer == "" {
		p, err := v.findZone(ctx, c, name, dns.TypeDS)
		if err != nil {
			return nil, err
		}
		pst, err := v.zone(ctx, c, p, b, depth+1)
		if err != nil {
			return nil, err
		}
		if pst.status != Secure {
			return inherit(name, pst), nil
		}
		return bogus(name, "%s DS: no RRSIG by its parent zone %s", show(name), show(p)), nil
	}
	pst, err := v.zone(ctx, c, signer, b, depth+1)
	if err != nil {
		return nil, err
	}
	if pst.status != Secure {
		return inherit(name, pst), nil
	}
	if sig, reason := v.verify(ds, pst, b); sig == nil {
		return bogus(name, "%s DS: %s", show(name), reason), nil
	}
	return v.dnskeys(ctx, c, name, ds.rrs, b, "DS")
}

// inherit is a zone's state when its parent is not secure: the same.
func inherit(name string, parent *zoneState) *zoneState {
	return &zoneState{name: name, status: parent.status, reason: parent.reason, expires: parent.expires}
}

// dnskeys fetches zone name's DNSKEY set and accepts it when a key matching
// one of the trusted DS (or DNSKEY) records signed it (RFC 4035 §5.2). When
// no trusted record uses an algorithm and digest we support, the zone is
// insecure (RFC 4035 §5.2, RFC 6840 §5.2).
func (v *Validator) dnskeys(ctx context.Context, c *Client, name string, trusted []dns.RR, b *budget, what string) (*zoneState, error) {
	var usable []dns.RR
	var tags []string
	minTTL := uint32(maxChainTTL / time.Second)
	for _, rr := range trusted {
		minTTL = min(minTTL, max(rr.Header().Ttl, 1))
		switch t := rr.(type) {
		case *dns.DS:
			if algorithmSupported(t.Algorithm) && digestSupported(t.DigestType) {
				usable = append(usable, t)
				tags = append(tags, strconv.Itoa(int(t.KeyTag)))
			}
		case *dns.DNSKEY:
			if algorithmSupported(t.Algorithm) {
				usable = append(usable, t)
				tags = append(tags, strconv.Itoa(int(t.KeyTag())))
			}
		}
	}
	if len(usable) == 0 {
		return &zoneState{name: name, status: Insecure, expires: v.expiry(minTTL),
			reason: fmt.Sprintf("%s: %s uses no supported algorithm or digest (RFC 4035 §5.2)", show(name), what)}, nil
	}
	resp, _, _, err := c.exchange(ctx, name, dns.TypeDNSKEY, queryFlags{do: true})
	if err != nil {
		return nil, err
	}
	var set *rrSet
	for _, s := range rrSets(resp.Answer) {
		if s.name == name && s.rtype == dns.TypeDNSKEY {
			set = s
		}
	}
	match := what + " " + strings.Join(tags, ", ")
	if set == nil {
		return bogus(name, "%s DNSKEY: none, though %s says the zone is signed", show(name), match), nil
	}
	if len(set.rrs) > v.cfg.MaxKeys {
		return bogus(name, "%s DNSKEY: %d keys, more than %d", show(name), len(set.rrs), v.cfg.MaxKeys), nil
	}
	var keys, anchored []*dns.DNSKEY
	for _, rr := range set.rrs {
		k, ok := rr.(*dns.DNSKEY)
		if !ok || k.Protocol != 3 || k.Flags&dns.ZONE == 0 {
			continue // RFC 4034 §2.1.1, §2.1.2: not a zone key
		}
		keys = append(keys, k)
		for _, t := range usable {
			if keyMatches(k, t) {
				anchored = append(anchored, k)
				break
			}
		}
	}
	if len(anchored) == 0 {
		return bogus(name, "%s DNSKEY: no key matching %s", show(name), match), nil
	}
	if sig, reason := v.verify(set, &zoneState{name: name, keys: anchored}, b); sig == nil {
		return bogus(name, "%s DNSKEY: no RRSIG by a key matching %s (%s)", show(name), match, reason), nil
	}
	minTTL = min(minTTL, set.rrs[0].Header().Ttl)
	return &zoneState{name: name, status: Secure, keys: keys, expires: v.expiry(minTTL)}, nil
}

// keyMatches reports whether k is the key a DS or DNSKEY anchor names
// (RFC 4034 §5.1.4: the digest of owner name and RDATA).
func keyMatches(k *dns.DNSKEY, t dns.RR) bool {
	switch a := t.(type) {
	case *dns.DS:
		if a.KeyTag != k.KeyTag() || a.Algorithm != k.Algorithm {
			return false
		}
		d := k.ToDS(a.DigestType)
		return d != nil && strings.EqualFold(d.Digest, a.Digest)
	case *dns.DNSKEY:
		return a.Algorithm == k.Algorithm && a.Flags == k.Flags && a.PublicKey == k.PublicKey
	}
	return false
}
