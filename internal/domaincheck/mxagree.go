package domaincheck

// The MX's address, its PTR name and the domain's SPF record must tell
// the same story: a receiver checks the sending address against SPF and
// its PTR name against the HELO. After the address of a server at home
// changes, the three drift apart one by one (the A record is updated, the
// ip4: term or the PTR is not), and the domain's own mail starts failing
// SPF or iprev at every receiver. mailwall ddns keeps the first two in
// step; the PTR belongs to the address's owner (the ISP).

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"mailwall/internal/conncheck"
	"mailwall/internal/dnsx"
	"mailwall/internal/spf"
)

// Bounds on the agreement check: MX hosts and addresses per host asked
// about (each costs a PTR, forward and SPF evaluation).
const (
	maxAgreeHosts = 5
	maxAgreeAddrs = 4
)

// mxAgree warns, for each address of each MX host, when its PTR name does
// not lead back to it or names another host, and when the domain's SPF
// record does not pass mail from it.
func (r *run) mxAgree(domain string) {
	ans, err := r.c.Resolver.Query(r.ctx, domain, dns.TypeMX)
	if err != nil {
		return // mx() reported it
	}
	var hosts []*dns.MX
	for _, rr := range ans.Records {
		if mx, ok := rr.(*dns.MX); ok && mx.Mx != "." {
			hosts = append(hosts, mx)
		}
	}
	slices.SortFunc(hosts, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
	if len(hosts) > maxAgreeHosts {
		hosts = hosts[:maxAgreeHosts]
	}
	checker := &spf.Checker{Resolver: r.c.Resolver, Timeout: 4 * r.c.timeout()}
	for _, mx := range hosts {
		host := strings.TrimSuffix(strings.ToLower(mx.Mx), ".")
		var addrs []netip.Addr
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			ips, err := dnsx.IPs(r.ctx, r.c.Resolver, host, qt)
			if err != nil {
				continue // mx() reported it
			}
			addrs = append(addrs, ips...)
		}
		if len(addrs) > maxAgreeAddrs {
			addrs = addrs[:maxAgreeAddrs]
		}
		for _, ip := range addrs {
			subject := fmt.Sprintf("%s (%s)", host, ip)
			agree := true
			rev := conncheck.CheckIPRev(r.ctx, r.c.Resolver, ip)
			switch {
			case rev.Result == "pass" && !strings.EqualFold(strings.TrimSuffix(rev.Name, "."), host):
				agree = false
				r.add(SectionMX, Warn, subject,
					fmt.Sprintf("the PTR names %s, not the MX host %s: receivers compare the HELO name with the PTR name", rev.Name, host),
					fmt.Sprintf("ask the address's owner to set the PTR of %s to %s, or make Postfix's myhostname %s", ip.String(), host, strings.TrimSuffix(rev.Name, ".")))
			case rev.Result == "fail" || rev.Result == "permerror":
				// No PTR at all is mx()'s finding; here, a PTR name
				// that resolves elsewhere: the two drifted apart.
				agree = false
				for _, n := range rev.Names {
					if other := r.forward(n); other != "" {
						r.add(SectionMX, Warn, subject,
							fmt.Sprintf("the PTR names %s, which resolves to %s, not %s: stale after an address change?", strings.TrimSuffix(n, "."), other, ip),
							fmt.Sprintf("ask the address's owner to set the PTR of %s to %s, and point %s at the new address", ip, host, strings.TrimSuffix(n, ".")))
						break
					}
				}
			}
			o := checker.CheckHost(r.ctx, ip, domain, "postmaster@"+domain, host)
			switch o.Result {
			case spf.Pass:
			case spf.TempError:
				agree = false
				r.add(SectionMX, Warn, subject, "SPF could not be evaluated for the MX's address: "+o.Problem, "")
			default:
				agree = false
				mech := "ip4:"
				if ip.Is6() {
					mech = "ip6:"
				}
				r.add(SectionMX, Warn, subject,
					fmt.Sprintf("the SPF record of %s gives %s for the MX's own address: mail sent from the MX fails SPF", domain, o.Result),
					fmt.Sprintf("authorize it (%s%s, or mx); if the address changed, replace the old %s term (mailwall ddns does)", mech, ip.String(), mech))
			}
			if agree {
				r.add(SectionMX, Pass, subject, fmt.Sprintf("address, PTR (%s) and SPF agree", strings.TrimSuffix(rev.Name, ".")), "")
			}
		}
	}
}

// forward returns the addresses a name resolves to, joined, or "".
func (r *run) forward(name string) string {
	var out []string
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		ips, err := dnsx.IPs(r.ctx, r.c.Resolver, strings.TrimSuffix(name, "."), qt)
		if err != nil {
			continue
		}
		for _, ip := range ips {
			out = append(out, ip.String())
		}
	}
	return strings.Join(out, ", ")
}
