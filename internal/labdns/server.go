package labdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// ZoneFile names a zone file and, optionally, the origin to read it with.
type ZoneFile struct {
	Path   string
	Origin string // empty: $ORIGIN in the file, else guessed from the name
}

// Config is what a Server needs.
type Config struct {
	// Listen is the "host:port" for both UDP and TCP. Port 0 picks one.
	Listen string
	Zones  []ZoneFile
	// AXFRAllow lists the networks that may transfer zones; all others are
	// REFUSED. Empty means nobody.
	AXFRAllow []netip.Prefix
	Logger    *slog.Logger
	// UpdateKeys are the TSIG keys that may send dynamic updates (RFC
	// 2136), each for its zones (update.go). None: no updates at all.
	UpdateKeys []UpdateKey
	// WriteZones writes an updated zone back to its file.
	WriteZones bool
	// Signer, if set, signs the zones under a lab root (sign.go).
	Signer *Signer
}

// Server answers for a set of zones over UDP and TCP.
type Server struct {
	cfg   Config
	log   *slog.Logger
	zones atomic.Pointer[zoneSet]

	udp, tcp *dns.Server
	udpAddr  net.Addr
	tcpAddr  net.Addr

	keys tsigKeys // update.go
	upd  updater
}

type zoneSet map[string]*Zone // by origin

// find returns the zone with the longest origin that contains qname.
func (zs zoneSet) find(qname string) *Zone {
	for n := qname; ; {
		if z, ok := zs[n]; ok {
			return z
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			return zs["."] // a signed lab's root zone, if any
		}
		n = n[i:]
	}
}

// New loads the configured zone files.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewWithZones makes a server for zones already in memory (tests, tools).
func NewWithZones(cfg Config, zones ...*Zone) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.SetZones(zones...); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the zone files again. On any error the zones in service are
// kept and the error returned: a typo in an edit does not take the lab down.
func (s *Server) Reload() error {
	zones := make([]*Zone, 0, len(s.cfg.Zones))
	for _, zf := range s.cfg.Zones {
		z, err := ParseZoneFile(zf.Path, zf.Origin)
		if err != nil {
			return err
		}
		zones = append(zones, z)
	}
	return s.SetZones(zones...)
}

// SetZones replaces the zones in service.
func (s *Server) SetZones(zones ...*Zone) error {
	if s.cfg.Signer != nil {
		signed, err := s.cfg.Signer.Sign(zones)
		if err != nil {
			return err
		}
		zones = signed
	}
	zs := make(zoneSet, len(zones))
	for _, z := range zones {
		if _, dup := zs[z.Origin]; dup {
			return fmt.Errorf("labdns: zone %s given twice", z.Origin)
		}
		zs[z.Origin] = z
	}
	s.zones.Store(&zs)
	for _, z := range zones {
		s.log.Info("lab-dns zone loaded", "zone", z.Origin, "serial", z.SOA.Serial, "names", len(z.names))
	}
	return nil
}

// Start listens on cfg.Listen (UDP and TCP) and serves in the background.
func (s *Server) Start() error {
	keys, err := newTSIGKeys(s.cfg.UpdateKeys)
	if err != nil {
		return err
	}
	s.keys = keys
	pc, ln, err := ListenUDPTCP(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("labdns: %w", err)
	}
	s.udpAddr, s.tcpAddr = pc.LocalAddr(), ln.Addr()
	s.udp = &dns.Server{PacketConn: pc, Handler: s, TsigProvider: s.tsigProvider(), MsgAcceptFunc: s.acceptFunc()}
	s.tcp = &dns.Server{Listener: ln, Handler: s, TsigProvider: s.tsigProvider(), MsgAcceptFunc: s.acceptFunc()}
	started := make(chan struct{}, 2)
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("lab-dns listener stopped", "err", err)
			}
		}()
	}
	<-started
	<-started
	return nil
}

// ListenUDPTCP opens UDP and TCP on the same address. With port 0 the
// kernel picks a free UDP port, which may be taken on TCP: it tries again.
func ListenUDPTCP(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	tries := 1
	if port == "0" {
		tries = 50
	}
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if i+1 >= tries {
			return nil, nil, err
		}
	}
}

// Addr is the address the server listens on (UDP and TCP share it).
func (s *Server) Addr() string { return s.udpAddr.String() }

// Shutdown stops both listeners.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			errs = append(errs, srv.ShutdownContext(ctx))
		}
	}
	return errors.Join(errs...)
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	resp := new(dns.Msg)
	if len(r.Question) != 1 || r.Response {
		resp.SetRcode(r, dns.RcodeFormatError)
		w.WriteMsg(resp)
		return
	}
	if r.Opcode == dns.OpcodeUpdate {
		s.update(w, r) // update.go
		return
	}
	if r.Opcode != dns.OpcodeQuery {
		resp.SetRcode(r, dns.RcodeNotImplemented)
		w.WriteMsg(resp)
		return
	}
	q := r.Question[0]
	qname := strings.ToLower(q.Name)
	zones := *s.zones.Load()
	_, isTCP := w.RemoteAddr().(*net.TCPAddr)

	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		s.transfer(w, r, zones[qname], isTCP)
		return
	}
	z := zones.zoneOf(qname, q.Qtype) // a DS is the parent's
	if z == nil || q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		// Not ours: an authoritative-only server refuses rather than
		// recursing, so it can never be used as an open resolver.
		resp.SetRcode(r, dns.RcodeRefused)
		w.WriteMsg(resp)
		return
	}
	resp.SetReply(r)
	resp.Authoritative = true
	resp.RecursionAvailable = false
	resp.Rcode = z.lookup(resp, qname, q.Qtype, zones.find)
	do := r.IsEdns0() != nil && r.IsEdns0().Do()
	if do {
		addDNSSEC(resp, zones, qname, q.Qtype)
	}
	if q.Qtype == dns.TypeANY && !isTCP {
		// RFC 8482 §4.1: over UDP, ANY gets one RRset, not the lot: no
		// amplifying reflector. TCP still answers in full (§4.4).
		resp.Answer = minimalANY(resp.Answer)
	}

	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		// RFC 6891 §6.2.5 and the DNS flag day 2020 size: at most 1232
		// octets over UDP, whatever the client offers.
		size = max(dns.MinMsgSize, min(int(opt.UDPSize()), MaxUDPSize))
		resp.SetEdns0(uint16(size), do) // RFC 3225 §3: DO echoed
	}
	if !isTCP {
		// RFC 1035 §4.2.1 / RFC 6891 §7: what does not fit the client's
		// buffer is cut and TC set, so the client retries over TCP.
		resp.Truncate(size)
	} else {
		resp.Compress = true
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("lab-dns write failed", "client", w.RemoteAddr(), "err", err)
	}
}

// MaxUDPSize is the largest UDP answer sent (octets): the size that
// avoids IP fragmentation on any path (DNS flag day 2020).
const MaxUDPSize = 1232

// minimalANY picks one RRset from an ANY answer (RFC 8482 §4.1): the
// smallest on the wire, a CNAME when there is one. A name with records
// keeps answering NOERROR with data, so ANY still tells that it exists.
func minimalANY(answer []dns.RR) []dns.RR {
	if len(answer) == 0 {
		return answer
	}
	sets := map[uint16][]dns.RR{}
	var types []uint16
	for _, rr := range answer {
		t := rr.Header().Rrtype
		if _, ok := sets[t]; !ok {
			types = append(types, t)
		}
		sets[t] = append(sets[t], rr)
	}
	if c, ok := sets[dns.TypeCNAME]; ok {
		return c
	}
	best, bestLen := types[0], -1
	for _, t := range types {
		n := 0
		for _, rr := range sets[t] {
			n += dns.Len(rr)
		}
		if bestLen < 0 || n < bestLen || n == bestLen && t < best {
			best, bestLen = t, n
		}
	}
	return sets[best]
}

// transfer answers AXFR (and IXFR, with a full transfer as RFC 1995 §4
// permits) to allowed TCP peers only.
func (s *Server) transfer(w dns.ResponseWriter, r *dns.Msg, z *Zone, isTCP bool) {
	peer := addrOf(w.RemoteAddr())
	allowed := false
	for _, p := range s.cfg.AXFRAllow {
		if p.Contains(peer) {
			allowed = true
		}
	}
	if !isTCP || !allowed || z == nil {
		s.log.Warn("lab-dns zone transfer refused", "zone", r.Question[0].Name, "client", peer.String(), "tcp", isTCP, "allowed", allowed)
		resp := new(dns.Msg)
		resp.SetRcode(r, dns.RcodeRefused)
		w.WriteMsg(resp)
		return
	}
	rrs := append(z.Records(), z.SOA)
	ch := make(chan *dns.Envelope, len(rrs)/100+1) // never blocks, even if Out fails early
	tr := new(dns.Transfer)
	go func() {
		const batch = 100
		for i := 0; i < len(rrs); i += batch {
			ch <- &dns.Envelope{RR: rrs[i:min(i+batch, len(rrs))]}
		}
		close(ch)
	}()
	if err := tr.Out(w, r, ch); err != nil {
		s.log.Warn("lab-dns zone transfer failed", "zone", z.Origin, "client", peer.String(), "err", err)
	}
	w.Close()
	s.log.Info("lab-dns zone transferred", "zone", z.Origin, "client", peer.String(), "records", len(rrs))
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
