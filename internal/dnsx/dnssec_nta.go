package dnsx

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// specialUse are the domains that validation from the root's anchors
// treats as insecure without asking (negative trust anchors, RFC 7646):
// names with no meaning in the global DNS, which a site serves itself and
// the signed root denies (the root has no DS for them, or no name at
// all), so every local answer for them would be bogus. Unbound does the
// same for the zones of RFC 6303 and RFC 6761. They apply only with the
// root's anchors (ValidatorConfig.Anchors empty): a lab that signs its own
// root and gives its anchor validates .test like any other zone.
const specialUse = `
test. example. invalid. localhost. local. home.arpa. internal. alt.
0.in-addr.arpa. 127.in-addr.arpa. 254.169.in-addr.arpa. 10.in-addr.arpa.
16.172.in-addr.arpa. 17.172.in-addr.arpa. 18.172.in-addr.arpa. 19.172.in-addr.arpa.
20.172.in-addr.arpa. 21.172.in-addr.arpa. 22.172.in-addr.arpa. 23.172.in-addr.arpa.
24.172.in-addr.arpa. 25.172.in-addr.arpa. 26.172.in-addr.arpa. 27.172.in-addr.arpa.
28.172.in-addr.arpa. 29.172.in-addr.arpa. 30.172.in-addr.arpa. 31.172.in-addr.arpa.
168.192.in-addr.arpa. 2.0.192.in-addr.arpa. 100.51.198.in-addr.arpa. 113.0.203.in-addr.arpa.
64.100.in-addr.arpa. 255.255.255.255.in-addr.arpa.
d.f.ip6.arpa. 8.e.f.ip6.arpa. 9.e.f.ip6.arpa. a.e.f.ip6.arpa. b.e.f.ip6.arpa.
8.b.d.0.1.0.0.2.ip6.arpa.
0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.
`

// negativeAnchors is the set of domains validated as insecure whatever
// their chain says: the special-use ones with the root's anchors, plus
// those configured.
func negativeAnchors(cfg ValidatorConfig) map[string]bool {
	out := map[string]bool{}
	if len(cfg.Anchors) == 0 || strings.TrimSpace(strings.Join(cfg.Anchors, "")) == "" {
		for _, n := range strings.Fields(specialUse) {
			out[n] = true
		}
	}
	for _, n := range cfg.NegativeAnchors {
		if n = strings.TrimSpace(n); n != "" {
			out[Fqdn(n)] = true
		}
	}
	return out
}

// ntaState is what a negative trust anchor says of the zones below it.
func ntaState(name string, now time.Time) *zoneState {
	show := strings.TrimSuffix(name, ".")
	return &zoneState{name: name, status: Insecure, expires: now.Add(maxChainTTL),
		reason: show + ": negative trust anchor (special-use or configured, RFC 7646)"}
}

// ntaAbove is the state a negative trust anchor at or above name gives
// it, or nil: none, or a trust anchor closer to name (RFC 7646 §1.1: no
// validation for the domain and everything below it).
func (v *Validator) ntaAbove(name string) *zoneState {
	if len(v.nta) == 0 {
		return nil
	}
	for n := Fqdn(name); ; n = parentOf(n) {
		if _, ok := v.anchors[n]; ok {
			return nil
		}
		if v.nta[n] {
			return ntaState(n, v.cfg.Now())
		}
		if n == "." {
			return nil
		}
	}
}

// CheckAnchors asks c's servers for the DNSKEY set of every trust
// anchor's zone and validates it, as a start-up check of dns.dnssec:
// validate (issue 27). A resolver that strips DNSSEC records (many home
// routers' forwarders do) fails it, and then every answer outside the
// negative anchors would be bogus and every check a temperror: the error
// says so, naming the zone and why. It makes the same bounded work as a
// query; the result is cached as any validated zone.
func (v *Validator) CheckAnchors(ctx context.Context, c *Client) error {
	if v.cfg.Mode != DNSSECValidate {
		return nil
	}
	zones := make([]string, 0, len(v.anchors))
	for z := range v.anchors {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		b := &budget{verifications: v.cfg.MaxVerifications, ttl: ^uint32(0)}
		st, err := v.zone(ctx, c, z, b, 0)
		if err != nil {
			return fmt.Errorf("dnsx: DNSSEC trust anchor %s: DNSKEY lookup through %s: %w", show(z), strings.Join(c.Servers, ", "), err)
		}
		if st.status != Secure {
			return fmt.Errorf("dnsx: DNSSEC trust anchor %s: not validated through %s (%s): the servers strip DNSSEC or are not the zone's; every answer outside the negative anchors would be bogus",
				show(z), strings.Join(c.Servers, ", "), st.reason)
		}
	}
	return nil
}
