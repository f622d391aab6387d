package domaincheck

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// server is one address of one authoritative name server.
type server struct {
	name, addr string
	soa        *dns.SOA
	answers    map[string]string // "TXT example.test" -> canonical answer text
}

// compared are the names and types whose answers every server must agree on.
func compared(domain string) [][2]string {
	return [][2]string{{domain, "TXT"}, {"_dmarc." + domain, "TXT"}, {domain, "MX"}}
}

func (r *run) ns(domain string) {
	zone, hosts, err := r.zoneOf(domain)
	if err != nil {
		r.add(SectionNS, Fail, domain, lookupError("NS", err), "")
		return
	}
	if zone == "" {
		r.add(SectionNS, Fail, domain, "no NS records found for the domain or any parent", "")
		return
	}
	if len(hosts) < 2 {
		r.add(SectionNS, Warn, zone, fmt.Sprintf("%d name server only: one outage makes the domain vanish (RFC 1034 §4.1 asks for two)", len(hosts)), "add a secondary name server on another network")
	}
	var servers []*server
	for _, h := range hosts {
		var ips []string
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			addrs, err := dnsx.IPs(r.ctx, r.c.Resolver, h, qt)
			if err != nil {
				r.add(SectionNS, Fail, h, lookupError(dns.TypeToString[qt], err), "")
			}
			for _, a := range addrs {
				ips = append(ips, a.String())
			}
		}
		if len(ips) == 0 {
			r.add(SectionNS, Fail, h, "name server has no address", "publish its A/AAAA records (glue at the parent if it is inside the zone)")
		}
		for _, ip := range ips {
			if s := r.askServer(zone, domain, h, ip); s != nil {
				servers = append(servers, s)
			}
		}
	}
	if len(servers) == 0 {
		return
	}
	r.compareServers(zone, domain, servers)
	r.soaAdvice(zone, servers[0].soa)
	r.ttlAdvice(domain)
}

// zoneOf finds the zone holding domain: the closest name, going up, with NS
// records. It returns the zone and its name-server host names.
func (r *run) zoneOf(domain string) (string, []string, error) {
	for name := domain; strings.Contains(name, "."); name = name[strings.Index(name, ".")+1:] {
		ans, err := r.c.Resolver.Query(r.ctx, name, dns.TypeNS)
		if err != nil {
			return "", nil, err
		}
		var hosts []string
		for _, rr := range ans.Records {
			if ns, ok := rr.(*dns.NS); ok {
				hosts = append(hosts, strings.TrimSuffix(strings.ToLower(ns.Ns), "."))
			}
		}
		if len(hosts) > 0 {
			slices.Sort(hosts)
			return name, hosts, nil
		}
	}
	return "", nil, nil
}

// askServer queries one server directly: the SOA, the compared answers,
// and a zone transfer.
func (r *run) askServer(zone, domain, host, ip string) *server {
	addr := r.c.serverAddr(ip)
	subject := fmt.Sprintf("%s (%s)", host, ip)
	client := &dnsx.Client{Servers: []string{addr}, Timeout: r.c.timeout(), Attempts: 1}
	ans, err := client.Query(r.ctx, zone, dns.TypeSOA)
	if err != nil {
		r.add(SectionNS, Fail, subject, lookupError("SOA", err), "every listed name server must answer for the zone")
		return nil
	}
	s := &server{name: host, addr: addr, answers: map[string]string{}}
	for _, rr := range ans.Records {
		if soa, ok := rr.(*dns.SOA); ok {
			s.soa = soa
		}
	}
	if s.soa == nil {
		r.add(SectionNS, Fail, subject, "no SOA for "+zone+": the server is not authoritative for the zone (lame delegation)", "load the zone on it, or remove it from the NS records")
		return nil
	}
	for _, q := range compared(domain) {
		a, err := client.Query(r.ctx, q[0], dns.StringToType[q[1]])
		if err != nil {
			s.answers[q[1]+" "+q[0]] = "error: " + err.Error()
			continue
		}
		s.answers[q[1]+" "+q[0]] = rdata(a.Records)
	}
	r.axfr(zone, subject, addr)
	return s
}

// rdata is the answer's records without owner and TTL, sorted: what must be
// the same everywhere.
func rdata(rrs []dns.RR) string {
	var parts []string
	for _, rr := range rrs {
		hdr := rr.Header().String()
		parts = append(parts, strings.TrimPrefix(rr.String(), hdr))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "(no records)"
	}
	return strings.Join(parts, " | ")
}

// axfr tries a zone transfer from here. A server that gives the whole zone
// to an arbitrary client lets anyone list every name in it.
func (r *run) axfr(zone, subject, addr string) {
	t := &dns.Transfer{DialTimeout: r.c.timeout(), ReadTimeout: r.c.timeout(), WriteTimeout: r.c.timeout()}
	m := new(dns.Msg)
	m.SetAxfr(dns.Fqdn(zone))
	ch, err := t.In(m, addr)
	if err != nil {
		r.add(SectionNS, Pass, subject, "zone transfer (AXFR) refused", "")
		return
	}
	n := 0
	var transferErr error
	for env := range ch {
		if env.Error != nil {
			transferErr = env.Error
			continue
		}
		n += len(env.RR)
	}
	if transferErr != nil || n == 0 {
		r.add(SectionNS, Pass, subject, "zone transfer (AXFR) refused", "")
		return
	}
	r.add(SectionNS, Fail, subject, fmt.Sprintf("zone transfer (AXFR) of %s allowed to this host (%d records): anyone can list every name in the zone", zone, n), "allow transfers only to your secondary servers' addresses (BIND allow-transfer, NSD provide-xfr, mailwall lab_dns.axfr_allow)")
}

func (r *run) compareServers(zone, domain string, servers []*server) {
	serials := map[uint32][]string{}
	for _, s := range servers {
		serials[s.soa.Serial] = append(serials[s.soa.Serial], s.name)
	}
	if len(serials) > 1 {
		var parts []string
		for _, s := range servers {
			parts = append(parts, fmt.Sprintf("%s %d", s.name, s.soa.Serial))
		}
		r.add(SectionNS, Fail, zone, "SOA serials differ ("+strings.Join(parts, ", ")+"): a change has not reached every server", "check zone transfers to the lagging servers (NOTIFY, allow-transfer), or wait for their refresh")
	} else {
		r.add(SectionNS, Pass, zone, fmt.Sprintf("every server answers with serial %d", servers[0].soa.Serial), "")
	}
	for _, q := range compared(domain) {
		key := q[1] + " " + q[0]
		seen := map[string][]string{}
		for _, s := range servers {
			seen[s.answers[key]] = append(seen[s.answers[key]], s.name)
		}
		if len(seen) > 1 {
			var parts []string
			for ans, names := range seen {
				parts = append(parts, fmt.Sprintf("%s: %s", strings.Join(names, ", "), ans))
			}
			slices.Sort(parts)
			r.add(SectionNS, Fail, q[0], fmt.Sprintf("servers give different %s answers (%s)", q[1], strings.Join(parts, "; ")), "receivers see either at random until the servers agree")
		}
	}
}

// soaAdvice grades the SOA timers against RFC 1912 §2.2 and RFC 2308 §5.
func (r *run) soaAdvice(zone string, soa *dns.SOA) {
	r.add(SectionNS, Info, zone, fmt.Sprintf("SOA refresh %s, retry %s, expire %s, negative TTL (minimum) %s", seconds(soa.Refresh), seconds(soa.Retry), seconds(soa.Expire), seconds(soa.Minttl)), "")
	if soa.Retry >= soa.Refresh {
		r.add(SectionNS, Warn, zone, "SOA retry is not shorter than refresh", "retry is usually a fraction of refresh (RFC 1912 §2.2)")
	}
	if soa.Expire < 7*86400 {
		r.add(SectionNS, Warn, zone, "SOA expire under a week: secondaries drop the zone quickly when the primary is down", "2 to 4 weeks (1209600-2419200) is usual (RFC 1912 §2.2)")
	}
	if soa.Minttl > 86400 {
		r.add(SectionNS, Warn, zone, "negative TTL over a day: a name you add stays invisible to resolvers that asked before", "1 to 3 hours is usual (RFC 2308 §5)")
	}
}

// ttlAdvice reports the TTLs of the records a mail move changes.
func (r *run) ttlAdvice(domain string) {
	var parts []string
	longest := uint32(0)
	for _, q := range compared(domain) {
		ans, err := r.c.Resolver.Query(r.ctx, q[0], dns.StringToType[q[1]])
		if err != nil || ans.Empty() {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", q[0], q[1], seconds(ans.TTL)))
		longest = max(longest, ans.TTL)
	}
	if len(parts) == 0 {
		return
	}
	fix := ""
	if longest > 300 {
		fix = fmt.Sprintf("before moving mail servers, lower these TTLs to 300 at least %s ahead, and raise them again after", seconds(longest))
	}
	r.add(SectionNS, Info, domain, "TTLs: "+strings.Join(parts, ", "), fix)
}

// seconds writes a DNS time value as zone files do, with a reading aid:
// "86400 (24h)".
func seconds(s uint32) string {
	d := time.Duration(s) * time.Second
	text := d.String()
	if strings.HasSuffix(text, "m0s") {
		text = strings.TrimSuffix(text, "0s")
	}
	if strings.HasSuffix(text, "h0m") {
		text = strings.TrimSuffix(text, "0m")
	}
	return fmt.Sprintf("%d (%s)", s, text)
}
