package labdns

// Dynamic update (RFC 2136) signed with TSIG (RFC 8945), for the zones a
// key is configured for. A zone without a key is never updated: an
// unsigned update, or one signed with another zone's key, is refused, so
// the lab server is never an open updater.

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// UpdateKey is a TSIG key that may update the listed zones.
type UpdateKey struct {
	Name      string   // key name, as in BIND's key "name" { ... }
	Algorithm string   // hmac-sha256 (default), hmac-sha512, ...
	Secret    string   // base64, as tsig-keygen prints it
	Zones     []string // zones this key may update
}

// MaxUpdateRRs bounds the prerequisite and update sections of one UPDATE
// message together: a lab zone is small, and a hostile message must not
// make the server copy a zone thousands of times.
const MaxUpdateRRs = 256

// updater serializes updates: each one reads a zone, changes a copy and
// puts it in service, so two may not interleave.
type updater struct {
	mu sync.Mutex
}

// tsigKeys is the server's TsigProvider: keys by canonical name.
type tsigKeys map[string]UpdateKey

// NewTSIGKeys checks keys and indexes them by name.
func newTSIGKeys(keys []UpdateKey) (tsigKeys, error) {
	out := tsigKeys{}
	for _, k := range keys {
		name := dns.CanonicalName(k.Name)
		if k.Algorithm == "" {
			k.Algorithm = dns.HmacSHA256
		}
		k.Algorithm = dns.CanonicalName(k.Algorithm)
		if _, err := hmacFor(k.Algorithm, nil); err != nil {
			return nil, fmt.Errorf("labdns: key %s: %w", k.Name, err)
		}
		if raw, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || len(raw) < 16 {
			return nil, fmt.Errorf("labdns: key %s: secret must be base64 of at least 16 octets", k.Name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("labdns: key %s given twice", k.Name)
		}
		for i, z := range k.Zones {
			k.Zones[i] = dns.CanonicalName(z)
		}
		out[name] = k
	}
	return out, nil
}

// hmacFor returns the HMAC for a TSIG algorithm name (RFC 8945 §6).
// hmac-md5 is not offered: RFC 8945 §6 says it must not be used for new
// deployments.
func hmacFor(alg string, secret []byte) (hash.Hash, error) {
	switch dns.CanonicalName(alg) {
	case dns.HmacSHA1:
		return hmac.New(sha1.New, secret), nil
	case dns.HmacSHA224:
		return hmac.New(sha256.New224, secret), nil
	case dns.HmacSHA256:
		return hmac.New(sha256.New, secret), nil
	case dns.HmacSHA384:
		return hmac.New(sha512.New384, secret), nil
	case dns.HmacSHA512:
		return hmac.New(sha512.New, secret), nil
	}
	return nil, fmt.Errorf("TSIG algorithm %q not supported", alg)
}

// Generate implements dns.TsigProvider. The algorithm is the key's own:
// a message naming another one is BADKEY (RFC 8945 §5.2.1), so a holder
// of the secret cannot pick a weaker MAC.
func (ks tsigKeys) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	k, ok := ks[dns.CanonicalName(t.Hdr.Name)]
	if !ok {
		return nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != k.Algorithm {
		return nil, dns.ErrKeyAlg
	}
	raw, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil {
		return nil, err
	}
	h, err := hmacFor(k.Algorithm, raw)
	if err != nil {
		return nil, err
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify implements dns.TsigProvider.
func (ks tsigKeys) Verify(msg []byte, t *dns.TSIG) error {
	mac, err := ks.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(mac, got) {
		return dns.ErrSig
	}
	return nil
}

// tsigProvider is the provider for the listeners, nil without keys.
func (s *Server) tsigProvider() dns.TsigProvider {
	if len(s.keys) == 0 {
		return nil
	}
	return s.keys
}

// update answers one UPDATE message (RFC 2136 §3).
func (s *Server) update(w dns.ResponseWriter, r *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(r) // copies the zone section (RFC 2136 §3.8)
	rcode, tsigErr, why := s.applyUpdate(w, r)
	resp.Rcode = rcode
	if t := r.IsTsig(); t != nil {
		// RFC 8945 §5.3: a signed request gets a TSIG in the answer;
		// with BADKEY or BADSIG it carries the error and no MAC (the dns
		// package leaves the MAC out for those two).
		resp.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
		resp.Extra[len(resp.Extra)-1].(*dns.TSIG).Error = tsigErr
	}
	peer := addrOf(w.RemoteAddr()).String()
	zone := r.Question[0].Name
	if rcode == dns.RcodeSuccess {
		s.log.Info("lab-dns update applied", "zone", zone, "client", peer, "changes", why)
	} else {
		s.log.Warn("lab-dns update refused", "zone", zone, "client", peer, "rcode", dns.RcodeToString[rcode], "tsig_error", dns.RcodeToString[int(tsigErr)], "reason", why)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Warn("lab-dns update answer not sent", "client", peer, "err", err)
	}
}

// applyUpdate checks and applies an update; it returns the RCODE, the TSIG
// error (0 when none) and what happened, for the log.
func (s *Server) applyUpdate(w dns.ResponseWriter, r *dns.Msg) (int, uint16, string) {
	zq := r.Question[0]
	// RFC 2136 §3.1.1: one zone, type SOA.
	if zq.Qtype != dns.TypeSOA || zq.Qclass != dns.ClassINET {
		return dns.RcodeFormatError, 0, "zone section is not one IN SOA"
	}
	if len(r.Answer)+len(r.Ns) > MaxUpdateRRs {
		return dns.RcodeRefused, 0, fmt.Sprintf("more than %d prerequisites and updates", MaxUpdateRRs)
	}
	origin := dns.CanonicalName(zq.Name)

	// Authentication first, so an unauthenticated client learns nothing
	// about which zones exist.
	t := r.IsTsig()
	if t == nil {
		// RFC 2136 §3.3: no permission: REFUSED. No zone takes
		// unsigned updates.
		return dns.RcodeRefused, 0, "unsigned update (only TSIG-signed updates are accepted)"
	}
	switch err := w.TsigStatus(); {
	case err == nil:
	case errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		// RFC 8945 §5.2.1: unknown key or algorithm.
		return dns.RcodeNotAuth, dns.RcodeBadKey, "unknown TSIG key " + t.Hdr.Name + " " + t.Algorithm
	case errors.Is(err, dns.ErrTime):
		// RFC 8945 §5.2.3: outside the fudge window.
		return dns.RcodeNotAuth, dns.RcodeBadTime, "TSIG time outside the fudge window"
	default:
		// RFC 8945 §5.2.2: MAC does not verify.
		return dns.RcodeNotAuth, dns.RcodeBadSig, "TSIG MAC does not verify: " + err.Error()
	}
	key := s.keys[dns.CanonicalName(t.Hdr.Name)]
	if !slices.Contains(key.Zones, origin) {
		return dns.RcodeRefused, 0, fmt.Sprintf("key %s may not update zone %s", key.Name, origin)
	}

	s.upd.mu.Lock()
	defer s.upd.mu.Unlock()
	zones := *s.zones.Load()
	z := zones[origin]
	if z == nil {
		// RFC 2136 §3.1.2: not authoritative for the zone.
		return dns.RcodeNotAuth, 0, "not authoritative for " + origin
	}
	if rc, why := checkPrereqs(z, r.Answer); rc != dns.RcodeSuccess {
		return rc, 0, why
	}
	if rc, why := prescan(origin, r.Ns); rc != dns.RcodeSuccess {
		return rc, 0, why
	}
	nz, changes, err := applyChanges(z, r.Ns)
	if err != nil {
		return dns.RcodeServerFailure, 0, err.Error()
	}
	if changes == 0 {
		return dns.RcodeSuccess, 0, "no change"
	}
	all := make([]*Zone, 0, len(zones))
	for o, old := range zones {
		if o == origin {
			old = nz
		}
		all = append(all, old)
	}
	if err := s.SetZones(all...); err != nil {
		return dns.RcodeServerFailure, 0, err.Error()
	}
	if s.cfg.WriteZones {
		if err := s.writeZone(nz); err != nil {
			s.log.Error("lab-dns zone file not written; the update is in memory only", "zone", origin, "err", err)
		}
	}
	return dns.RcodeSuccess, 0, fmt.Sprintf("%d change(s), serial %d", changes, nz.SOA.Serial)
}

// rrset returns the records of one type at a name.
func (z *Zone) rrset(name string, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range z.names[dns.CanonicalName(name)] {
		if rr.Header().Rrtype == t {
			out = append(out, rr)
		}
	}
	return out
}

// checkPrereqs evaluates the prerequisite section (RFC 2136 §3.2).
func checkPrereqs(z *Zone, pre []dns.RR) (int, string) {
	type key struct {
		name string
		t    uint16
	}
	valueSets := map[key][]dns.RR{}
	var order []key
	for _, rr := range pre {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if h.Ttl != 0 {
			return dns.RcodeFormatError, "prerequisite with a TTL"
		}
		if !dns.IsSubDomain(z.Origin, name) {
			return dns.RcodeNotZone, name + " is outside the zone"
		}
		empty := isEmpty(rr)
		switch {
		case h.Class == dns.ClassANY && empty:
			if h.Rrtype == dns.TypeANY {
				if len(z.names[name]) == 0 {
					return dns.RcodeNameError, name + " is not in use"
				}
			} else if len(z.rrset(name, h.Rrtype)) == 0 {
				return dns.RcodeNXRrset, fmt.Sprintf("%s %s does not exist", name, dns.TypeToString[h.Rrtype])
			}
		case h.Class == dns.ClassNONE && empty:
			if h.Rrtype == dns.TypeANY {
				if len(z.names[name]) != 0 {
					return dns.RcodeYXDomain, name + " is in use"
				}
			} else if len(z.rrset(name, h.Rrtype)) != 0 {
				return dns.RcodeYXRrset, fmt.Sprintf("%s %s exists", name, dns.TypeToString[h.Rrtype])
			}
		case h.Class == dns.ClassINET && !empty && !metaType(h.Rrtype):
			k := key{name, h.Rrtype}
			if _, seen := valueSets[k]; !seen {
				order = append(order, k)
			}
			valueSets[k] = append(valueSets[k], rr)
		default:
			return dns.RcodeFormatError, "prerequisite of class " + dns.ClassToString[h.Class]
		}
	}
	// RFC 2136 §3.2.3: value-dependent prerequisites compare whole RRsets.
	for _, k := range order {
		if !sameSet(z.rrset(k.name, k.t), valueSets[k]) {
			return dns.RcodeNXRrset, fmt.Sprintf("%s %s is not the RRset expected (changed meanwhile?)", k.name, dns.TypeToString[k.t])
		}
	}
	return dns.RcodeSuccess, ""
}

// isEmpty tells a record sent without RDATA (the dns package gives those
// as a bare header).
func isEmpty(rr dns.RR) bool {
	_, bare := rr.(*dns.RR_Header)
	return bare || rr.Header().Rdlength == 0
}

// sameSet compares RRsets by data, ignoring TTLs and duplicates.
func sameSet(have, want []dns.RR) bool {
	in := func(rr dns.RR, set []dns.RR) bool {
		return slices.ContainsFunc(set, func(o dns.RR) bool { return sameData(rr, o) })
	}
	for _, rr := range want {
		if !in(rr, have) {
			return false
		}
	}
	for _, rr := range have {
		if !in(rr, want) {
			return false
		}
	}
	return true
}

// sameData compares two records' name, type and data, whatever their
// class field says (an update's NONE-class delete names an IN record).
func sameData(a, b dns.RR) bool {
	a, b = dns.Copy(a), dns.Copy(b)
	if a == nil || b == nil { // a bare header copies to nil
		return false
	}
	a.Header().Class, b.Header().Class = dns.ClassINET, dns.ClassINET
	return dns.IsDuplicate(a, b)
}

// metaType reports the types that never appear as data (RFC 2136 §3.4.1.2).
func metaType(t uint16) bool {
	switch t {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeTSIG, dns.TypeOPT:
		return true
	}
	return false
}

// prescan checks the update section before anything changes (RFC 2136
// §3.4.1): all of it is valid, or nothing is done.
func prescan(origin string, upd []dns.RR) (int, string) {
	for _, rr := range upd {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if !dns.IsSubDomain(origin, name) {
			return dns.RcodeNotZone, name + " is outside the zone"
		}
		switch h.Class {
		case dns.ClassINET:
			if metaType(h.Rrtype) || isEmpty(rr) {
				return dns.RcodeFormatError, "cannot add a " + dns.TypeToString[h.Rrtype] + " record without data"
			}
		case dns.ClassANY:
			if h.Ttl != 0 || !isEmpty(rr) || metaType(h.Rrtype) && h.Rrtype != dns.TypeANY {
				return dns.RcodeFormatError, "malformed RRset delete"
			}
		case dns.ClassNONE:
			// A record delete names the record: without data it
			// names none.
			if h.Ttl != 0 || metaType(h.Rrtype) || isEmpty(rr) {
				return dns.RcodeFormatError, "malformed record delete"
			}
		default:
			return dns.RcodeFormatError, "update of class " + dns.ClassToString[h.Class]
		}
	}
	return dns.RcodeSuccess, ""
}

// applyChanges applies a prescanned update section to a copy of z
// (RFC 2136 §3.4.2) and, when anything changed, increments the serial
// (§3.6, serial arithmetic of RFC 1982). The apex SOA and NS RRsets are
// never deleted whole, and the apex's last NS never removed.
func applyChanges(z *Zone, upd []dns.RR) (*Zone, int, error) {
	rrs := z.Records()[1:] // without the SOA
	soa := dns.Copy(z.SOA).(*dns.SOA)
	changes := 0
	apex := z.Origin
	for _, u := range upd {
		h := u.Header()
		name := dns.CanonicalName(h.Name)
		atApex := name == apex
		switch h.Class {
		case dns.ClassINET:
			add := dns.Copy(u)
			add.Header().Name = name
			if h.Rrtype == dns.TypeSOA {
				if n := add.(*dns.SOA); atApex && int32(n.Serial-soa.Serial) > 0 {
					soa, changes = n, changes+1
				}
				continue
			}
			hasCNAME, hasOther := false, false
			for _, rr := range rrs {
				if dns.CanonicalName(rr.Header().Name) == name {
					if rr.Header().Rrtype == dns.TypeCNAME {
						hasCNAME = true
					} else {
						hasOther = true
					}
				}
			}
			// §3.4.2.2: a CNAME and other data do not mix; the
			// update is ignored.
			if h.Rrtype == dns.TypeCNAME && hasOther || h.Rrtype != dns.TypeCNAME && hasCNAME {
				continue
			}
			replaced := false
			for i, rr := range rrs {
				if sameData(rr, add) || h.Rrtype == dns.TypeCNAME && rr.Header().Rrtype == dns.TypeCNAME && dns.CanonicalName(rr.Header().Name) == name {
					rrs[i], replaced = add, true
					break
				}
			}
			if !replaced {
				rrs = append(rrs, add)
			}
			changes++
		case dns.ClassANY:
			n := len(rrs)
			rrs = slices.DeleteFunc(rrs, func(rr dns.RR) bool {
				rh := rr.Header()
				if dns.CanonicalName(rh.Name) != name {
					return false
				}
				if atApex && (rh.Rrtype == dns.TypeNS || rh.Rrtype == dns.TypeSOA) {
					return false
				}
				return h.Rrtype == dns.TypeANY || rh.Rrtype == h.Rrtype
			})
			changes += n - len(rrs)
		case dns.ClassNONE:
			if h.Rrtype == dns.TypeSOA {
				continue
			}
			if atApex && h.Rrtype == dns.TypeNS && len(z.rrsetIn(rrs, name, dns.TypeNS)) <= 1 {
				continue
			}
			n := len(rrs)
			rrs = slices.DeleteFunc(rrs, func(rr dns.RR) bool { return sameData(rr, u) })
			changes += n - len(rrs)
		}
	}
	if changes == 0 {
		return z, 0, nil
	}
	if soa.Serial == z.SOA.Serial {
		soa.Serial++
		if soa.Serial == 0 {
			soa.Serial = 1
		}
	}
	nz, err := NewZone(append([]dns.RR{soa}, rrs...))
	if err != nil {
		return nil, 0, err
	}
	return nz, changes, nil
}

func (z *Zone) rrsetIn(rrs []dns.RR, name string, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == t && dns.CanonicalName(rr.Header().Name) == name {
			out = append(out, rr)
		}
	}
	return out
}

// writeZone writes z to the file it was loaded from, through a temporary
// file and a rename so a reader never sees half a zone.
func (s *Server) writeZone(z *Zone) error {
	path := ""
	for _, zf := range s.cfg.Zones {
		origin := zf.Origin
		if origin == "" {
			origin = originFromFileName(zf.Path)
		}
		if dns.CanonicalName(origin) == z.Origin {
			path = zf.Path
		}
	}
	if path == "" {
		return fmt.Errorf("no zone file named for %s", z.Origin)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; written by mailwall lab-dns after a dynamic update, %s\n$ORIGIN %s\n", time.Now().UTC().Format(time.RFC3339), z.Origin)
	for _, rr := range z.Records() {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".labdns-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// acceptMsg lets UPDATE messages through the dns package's first filter
// (which refuses them: their sections may hold many records), within
// MaxUpdateRRs; everything else is filtered as before.
func acceptMsg(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if int(dh.Bits>>11)&0xF != dns.OpcodeUpdate || dh.Bits&qr != 0 {
		return dns.DefaultMsgAcceptFunc(dh)
	}
	// RFC 2136 §2.3: one zone; the additional section holds at most
	// the TSIG (and an OPT).
	if dh.Qdcount != 1 || int(dh.Ancount)+int(dh.Nscount) > MaxUpdateRRs || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// acceptFunc is the listeners' filter: UPDATE only with keys configured.
func (s *Server) acceptFunc() dns.MsgAcceptFunc {
	if len(s.keys) == 0 {
		return dns.DefaultMsgAcceptFunc
	}
	return acceptMsg
}
