package config

import (
	"fmt"

	"mailwall/internal/dnsx"
)

// Validator builds the DNSSEC validator (internal/dnsx) dns.dnssec asks
// for: validate from trust anchors, or trust the AD bit of a local
// validating resolver; nil when dns.dnssec is off.
func (d *DNSConfig) Validator() (*dnsx.Validator, error) {
	if d.DNSSEC == "" || d.DNSSEC == dnsx.DNSSECOff {
		return nil, nil
	}
	from, err := ParsePrefixes(d.TrustADServers)
	if err != nil {
		return nil, fmt.Errorf("dns.trust_ad_servers: %w", err)
	}
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: d.DNSSEC, Anchors: d.TrustAnchors, TrustADFrom: from})
	if err != nil {
		return nil, fmt.Errorf("dns.dnssec: %w", err)
	}
	return v, nil
}

// validateDNSSEC checks the mode, the anchors and the servers.
func (c *Config) validateDNSSEC(check func(ok bool, format string, args ...any)) {
	m := c.DNS.DNSSEC
	check(oneOf(m, "", dnsx.DNSSECOff, dnsx.DNSSECValidate, dnsx.DNSSECTrustAD), "dns.dnssec: %q is not off, validate or trust_ad", m)
	if m == dnsx.DNSSECValidate || m == dnsx.DNSSECTrustAD {
		_, err := c.DNS.Validator()
		check(err == nil, "%v", err)
	}
}
