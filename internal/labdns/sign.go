package labdns

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// SignConfig signs the lab's zones (RFC 4033-4035, NSEC3 per RFC 5155)
// under a lab root zone, so a validating resolver can walk the whole chain
// of trust on one machine from the root key's DS (Signer.TrustAnchor).
// Zones not listed in Zones are signed with the defaults: ECDSA P-256
// (algorithm 13) and NSEC.
type SignConfig struct {
	Zones map[string]ZoneSigning // by origin; "example.test" or "example.test."
	// Inception and Expiration bound every signature; zero: an hour ago
	// and 30 days from now.
	Inception, Expiration time.Time
	// KeyDir, if set, keeps the keys (ZONE.ALG.key and ZONE.ALG.private,
	// BIND's private-key format, mode 0600): the trust anchor then holds
	// across restarts. Empty: keys are generated at each start.
	KeyDir string
}

// ZoneSigning is how one zone is signed, and how it is deliberately broken
// for tests.
type ZoneSigning struct {
	// Unsigned serves the zone without DNSSEC and no DS at the parent: an
	// insecure delegation (RFC 4035 §5.2).
	Unsigned bool
	// Algorithm is the DNSKEY algorithm: 13 (default), 14, 15, 8, 10 or
	// 5 (RSASHA1, to see validators treat it as unsupported).
	Algorithm uint8
	// NSEC3 denies existence with hashed names (RFC 5155) instead of NSEC.
	NSEC3           bool
	NSEC3Iterations uint16
	NSEC3Salt       string // hex; empty: none (RFC 9276 §3.1)
	// OptOut leaves unsigned delegations out of the NSEC3 chain (RFC 5155
	// §6).
	OptOut bool

	// OmitDS signs the zone but publishes no DS at the parent: validators
	// see an insecure delegation.
	OmitDS bool
	// WrongDS publishes a DS at the parent that matches no key of the
	// zone: bogus.
	WrongDS bool
	// TamperRRSIG corrupts every signature of the zone except those over
	// the DNSKEY set: bogus data.
	TamperRRSIG bool
	// ExpireRRSIG dates every signature of the zone in the past: bogus.
	ExpireRRSIG bool
	// WrongDNAMESynthesis makes the CNAMEs synthesized from the zone's
	// DNAMEs point elsewhere than RFC 6672 §2.2 says: bogus.
	WrongDNAMESynthesis bool
}

// Signer holds the lab's keys (generated once, so a reload keeps the trust
// anchor) and signs zone sets.
type Signer struct {
	cfg  SignConfig
	mu   sync.Mutex
	keys map[string]*zoneKey // by origin and algorithm
}

type zoneKey struct {
	pub  *dns.DNSKEY
	priv crypto.Signer
}

// NewSigner makes a signer; the lab root's key is generated now.
func NewSigner(cfg SignConfig) (*Signer, error) {
	s := &Signer{cfg: cfg, keys: make(map[string]*zoneKey)}
	norm := make(map[string]ZoneSigning, len(cfg.Zones))
	for name, zs := range cfg.Zones {
		norm[dnsx.Fqdn(name)] = zs
	}
	s.cfg.Zones = norm
	if _, err := s.key(".", dns.ECDSAP256SHA256); err != nil {
		return nil, err
	}
	return s, nil
}

// TrustAnchor is the DS record (SHA-256) of the lab root's key: what a
// validator of the lab is configured with (dns.trust_anchors).
func (s *Signer) TrustAnchor() *dns.DS {
	k, _ := s.key(".", dns.ECDSAP256SHA256)
	return k.pub.ToDS(dns.SHA256)
}

func (s *Signer) key(origin string, alg uint8) (*zoneKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := fmt.Sprintf("%s/%d", origin, alg)
	if k, ok := s.keys[id]; ok {
		return k, nil
	}
	// One combined signing key (flags 257, SEP) per zone: the lab needs no
	// KSK/ZSK split (RFC 6781 §3.1 allows it).
	pub := &dns.DNSKEY{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: alg}
	bits := 0
	switch alg {
	case dns.ECDSAP256SHA256:
		bits = 256
	case dns.ECDSAP384SHA384:
		bits = 384
	case dns.ED25519:
		bits = 256
	case dns.RSASHA256, dns.RSASHA512, dns.RSASHA1:
		bits = 2048 // RSASHA1 only to test validators that refuse it
	default:
		return nil, fmt.Errorf("labdns: zone %s: algorithm %d not supported for signing", origin, alg)
	}
	if k, err := s.loadKey(origin, alg); k != nil || err != nil {
		if k != nil {
			s.keys[id] = k
		}
		return k, err
	}
	priv, err := pub.Generate(bits)
	if err != nil {
		return nil, fmt.Errorf("labdns: key for %s: %w", origin, err)
	}
	if err := s.saveKey(origin, pub, priv); err != nil {
		return nil, err
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("labdns: generated key is not a crypto.Signer")
	}
	k := &zoneKey{pub: pub, priv: signer}
	s.keys[id] = k
	return k, nil
}

// zoneSec is a signed zone's DNSSEC data, kept apart from its RRsets so
// answers without the DO bit stay as they were.
type zoneSec struct {
	sigs  map[sigKey][]dns.RR // RRSIGs by owner and covered type
	nsec  []*dns.NSEC         // canonical order
	nsec3 []*dns.NSEC3        // hash order
	param *dns.NSEC3PARAM
	// wrongSynthesis: ZoneSigning.WrongDNAMESynthesis.
	wrongSynthesis bool
}

type sigKey struct {
	name  string
	rtype uint16
}

// Sign returns the zones signed as configured, with a lab root zone "."
// added when zones has none, and each zone's delegation (NS, and DS unless
// unsigned or OmitDS) put in its closest enclosing zone. The zones given
// are not modified.
func (s *Signer) Sign(zones []*Zone) ([]*Zone, error) {
	rrsOf := make(map[string][]dns.RR, len(zones)+1)
	for _, z := range zones {
		rrsOf[z.Origin] = nil
	}
	for _, z := range zones {
		// Zones signed before (a reload, an UPDATE) come back with the
		// records signing added: they are made afresh.
		for _, rr := range z.Records() {
			h := rr.Header()
			_, child := rrsOf[h.Name]
			switch {
			case h.Rrtype == dns.TypeDNSKEY || h.Rrtype == dns.TypeNSEC3PARAM:
				continue
			case h.Rrtype == dns.TypeDS && child && h.Name != z.Origin:
				continue
			}
			rrsOf[z.Origin] = append(rrsOf[z.Origin], rr)
		}
	}
	if _, ok := rrsOf["."]; !ok {
		soa, _ := dns.NewRR(". 3600 IN SOA ns.lab-root.test. hostmaster.lab-root.test. 1 3600 600 86400 300")
		ns, _ := dns.NewRR(". 3600 IN NS ns.lab-root.test.")
		rrsOf["."] = []dns.RR{soa, ns}
	}
	origins := make([]string, 0, len(rrsOf))
	for o := range rrsOf {
		origins = append(origins, o)
	}
	// Children first: a parent's DS is made from its child's key.
	sort.Slice(origins, func(i, j int) bool {
		ci, cj := dns.CountLabel(origins[i]), dns.CountLabel(origins[j])
		if ci != cj {
			return ci > cj
		}
		return origins[i] < origins[j]
	})
	parentOf := func(o string) string {
		for n := o; n != "."; {
			i, end := dns.NextLabel(n, 0)
			if end {
				n = "."
			} else {
				n = n[i:]
			}
			if _, ok := rrsOf[n]; ok {
				return n
			}
		}
		return ""
	}
	out := make([]*Zone, 0, len(origins))
	for _, o := range origins {
		zs := s.cfg.Zones[o]
		alg := zs.Algorithm
		if alg == 0 {
			alg = dns.ECDSAP256SHA256
		}
		rrs := rrsOf[o]
		var key *zoneKey
		if !zs.Unsigned {
			var err error
			if key, err = s.key(o, alg); err != nil {
				return nil, err
			}
			rrs = append(rrs, dns.Copy(key.pub))
		}
		if p := parentOf(o); p != "" {
			if !hasType(rrsOf[p], o, dns.TypeNS) {
				ns := &dns.NS{Hdr: dns.RR_Header{Name: o, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: "ns." + o}
				rrsOf[p] = append(rrsOf[p], ns)
			}
			if key != nil && !zs.OmitDS {
				ds := key.pub.ToDS(dns.SHA256)
				if zs.WrongDS {
					other := &dns.DNSKEY{Hdr: key.pub.Hdr, Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
					if _, err := other.Generate(256); err != nil {
						return nil, fmt.Errorf("labdns: key for %s: %w", o, err)
					}
					ds = other.ToDS(dns.SHA256)
				}
				ds.Hdr.Ttl = 3600
				rrsOf[p] = append(rrsOf[p], ds)
			}
		}
		z, err := NewZone(rrs)
		if err != nil {
			return nil, err
		}
		if key != nil {
			if err := s.signZone(z, key, zs); err != nil {
				return nil, err
			}
		}
		out = append(out, z)
	}
	return out, nil
}

func hasType(rrs []dns.RR, name string, t uint16) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == t && strings.EqualFold(rr.Header().Name, name) {
			return true
		}
	}
	return false
}

// cut reports whether name is a delegation point of z (NS below the apex).
func (z *Zone) cut(name string) bool {
	if name == z.Origin {
		return false
	}
	for _, rr := range z.names[name] {
		if rr.Header().Rrtype == dns.TypeNS {
			return true
		}
	}
	return false
}

// occluded reports whether name lies below a delegation point of z: glue
// and anything else the zone is not authoritative for (RFC 4035 §2.2).
func (z *Zone) occluded(name string) bool {
	for n := name; n != z.Origin; {
		i, end := dns.NextLabel(n, 0)
		if end {
			return false
		}
		n = n[i:]
		if z.cut(n) {
			return true
		}
	}
	return false
}

func (s *Signer) signZone(z *Zone, key *zoneKey, zs ZoneSigning) error {
	sec := &zoneSec{sigs: make(map[sigKey][]dns.RR), wrongSynthesis: zs.WrongDNAMESynthesis}
	minTTL := min(z.SOA.Hdr.Ttl, z.SOA.Minttl) // RFC 4034 §4: NSEC TTL is the SOA minimum
	var owners []string
	for n := range z.names {
		if !z.occluded(n) {
			owners = append(owners, n)
		}
	}
	sort.Slice(owners, func(i, j int) bool { return dnsx.CanonicalCompare(owners[i], owners[j]) < 0 })

	typesAt := func(n string) []uint16 {
		var ts []uint16
		seen := map[uint16]bool{}
		for _, rr := range z.names[n] {
			t := rr.Header().Rrtype
			if !seen[t] {
				seen[t] = true
				ts = append(ts, t)
			}
		}
		return ts
	}
	if zs.NSEC3 {
		var flags uint8
		if zs.OptOut {
			flags = 1
		}
		sec.param = &dns.NSEC3PARAM{Hdr: dns.RR_Header{Name: z.Origin, Rrtype: dns.TypeNSEC3PARAM, Class: dns.ClassINET, Ttl: 0},
			Hash: dns.SHA1, Iterations: zs.NSEC3Iterations, Salt: zs.NSEC3Salt, SaltLength: uint8(len(zs.NSEC3Salt) / 2)}
		z.names[z.Origin] = append(z.names[z.Origin], sec.param)
		// Every name that exists, empty non-terminals included (RFC 5155
		// §7.1), except what is occluded and, with opt-out, unsigned
		// delegations.
		type h struct {
			hash string
			name string
		}
		var hs []h
		for n := range z.exists {
			if z.occluded(n) {
				continue
			}
			if zs.OptOut && z.cut(n) && !hasType(z.names[n], n, dns.TypeDS) {
				continue
			}
			hs = append(hs, h{dns.HashName(n, dns.SHA1, zs.NSEC3Iterations, zs.NSEC3Salt), n})
		}
		sort.Slice(hs, func(i, j int) bool { return hs[i].hash < hs[j].hash })
		for i, e := range hs {
			ts := typesAt(e.name)
			if len(ts) > 0 && !(z.cut(e.name) && !hasType(z.names[e.name], e.name, dns.TypeDS)) {
				ts = append(ts, dns.TypeRRSIG)
			}
			n3 := &dns.NSEC3{Hdr: dns.RR_Header{Name: child(strings.ToLower(e.hash), z.Origin), Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: minTTL},
				Hash: dns.SHA1, Flags: flags, Iterations: zs.NSEC3Iterations, Salt: zs.NSEC3Salt, SaltLength: uint8(len(zs.NSEC3Salt) / 2),
				NextDomain: hs[(i+1)%len(hs)].hash, HashLength: 20, TypeBitMap: sortTypes(ts)}
			sec.nsec3 = append(sec.nsec3, n3)
		}
	} else {
		for i, n := range owners {
			ts := append(typesAt(n), dns.TypeNSEC, dns.TypeRRSIG)
			sec.nsec = append(sec.nsec, &dns.NSEC{Hdr: dns.RR_Header{Name: n, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: minTTL},
				NextDomain: owners[(i+1)%len(owners)], TypeBitMap: sortTypes(ts)})
		}
	}

	inc, exp := s.cfg.Inception, s.cfg.Expiration
	if inc.IsZero() {
		inc = time.Now().Add(-time.Hour)
	}
	if exp.IsZero() {
		exp = time.Now().Add(30 * 24 * time.Hour)
	}
	if zs.ExpireRRSIG {
		inc, exp = time.Now().Add(-30*24*time.Hour), time.Now().Add(-24*time.Hour)
	}
	sign := func(rrset []dns.RR) error {
		h := rrset[0].Header()
		sig := &dns.RRSIG{Hdr: dns.RR_Header{Ttl: h.Ttl}, Algorithm: key.pub.Algorithm, KeyTag: key.pub.KeyTag(),
			SignerName: z.Origin, Inception: uint32(inc.Unix()), Expiration: uint32(exp.Unix())}
		if err := sig.Sign(key.priv, rrset); err != nil {
			return fmt.Errorf("labdns: signing %s %s: %w", h.Name, dns.TypeToString[h.Rrtype], err)
		}
		if zs.TamperRRSIG && h.Rrtype != dns.TypeDNSKEY {
			sig.Signature = tamper(sig.Signature)
		}
		k := sigKey{h.Name, h.Rrtype}
		sec.sigs[k] = append(sec.sigs[k], sig)
		return nil
	}
	for _, n := range owners {
		sets := map[uint16][]dns.RR{}
		var order []uint16
		for _, rr := range z.names[n] {
			t := rr.Header().Rrtype
			if t == dns.TypeNS && z.cut(n) {
				continue // RFC 4035 §2.2: delegation NS sets are not signed
			}
			if _, ok := sets[t]; !ok {
				order = append(order, t)
			}
			sets[t] = append(sets[t], rr)
		}
		for _, t := range order {
			if err := sign(sets[t]); err != nil {
				return err
			}
		}
	}
	for _, n := range sec.nsec {
		if err := sign([]dns.RR{n}); err != nil {
			return err
		}
	}
	for _, n := range sec.nsec3 {
		if err := sign([]dns.RR{n}); err != nil {
			return err
		}
	}
	z.sec = sec
	return nil
}

func sortTypes(ts []uint16) []uint16 {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

// tamper flips bits in the middle of a base64 signature, keeping it valid
// base64 of the same length.
func tamper(sig string) string {
	b := []byte(sig)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TrustAnchor is the DS of the lab root's key when the server signs its
// zones, else nil.
func (s *Server) TrustAnchor() *dns.DS {
	if s.cfg.Signer == nil {
		return nil
	}
	return s.cfg.Signer.TrustAnchor()
}

func (s *Signer) keyPath(origin string, alg uint8) string {
	name := strings.TrimSuffix(origin, ".")
	if name == "" {
		name = "root"
	}
	return filepath.Join(s.cfg.KeyDir, fmt.Sprintf("%s.%d", name, alg))
}

// loadKey reads a kept key; nil, nil when there is none (or no KeyDir).
func (s *Signer) loadKey(origin string, alg uint8) (*zoneKey, error) {
	if s.cfg.KeyDir == "" {
		return nil, nil
	}
	base := s.keyPath(origin, alg)
	pubText, err := os.ReadFile(base + ".key")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("labdns: %w", err)
	}
	rr, err := dns.NewRR(string(pubText))
	pub, ok := rr.(*dns.DNSKEY)
	if err != nil || !ok || pub.Algorithm != alg || dnsx.Fqdn(pub.Hdr.Name) != origin {
		return nil, fmt.Errorf("labdns: %s.key is not a DNSKEY of %s, algorithm %d (%v)", base, origin, alg, err)
	}
	f, err := os.Open(base + ".private")
	if err != nil {
		return nil, fmt.Errorf("labdns: %w", err)
	}
	defer f.Close()
	priv, err := pub.ReadPrivateKey(f, base+".private")
	if err != nil {
		return nil, fmt.Errorf("labdns: %w", err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("labdns: %s.private: not a signing key", base)
	}
	return &zoneKey{pub: pub, priv: signer}, nil
}

// saveKey writes a new key when KeyDir is set; never over an existing file.
func (s *Signer) saveKey(origin string, pub *dns.DNSKEY, priv crypto.PrivateKey) error {
	if s.cfg.KeyDir == "" {
		return nil
	}
	base := s.keyPath(origin, pub.Algorithm)
	for _, f := range []struct {
		path, text string
		perm       os.FileMode
	}{{base + ".private", pub.PrivateKeyString(priv), 0o600}, {base + ".key", pub.String() + "\n", 0o644}} {
		w, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.perm)
		if err != nil {
			return fmt.Errorf("labdns: %w", err)
		}
		_, err = w.WriteString(f.text)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("labdns: %w", err)
		}
	}
	return nil
}
