package main

import (
	"fmt"
	"os"

	"mailwall/internal/config"
	"mailwall/internal/labdns"
)

// labSigner is lab-dns's zone signer when lab_dns.dnssec is on, else nil.
func labSigner(cfg *config.Config) (*labdns.Signer, error) {
	c := cfg.LabDNS
	if !c.DNSSEC {
		return nil, nil
	}
	sc := labdns.SignConfig{KeyDir: c.DNSSECKeys, Zones: map[string]labdns.ZoneSigning{}}
	for _, z := range c.NSEC3Zones {
		sc.Zones[z] = labdns.ZoneSigning{NSEC3: true}
	}
	if sc.KeyDir != "" {
		if err := os.MkdirAll(sc.KeyDir, 0o700); err != nil {
			return nil, fmt.Errorf("lab_dns.dnssec_keys: %w", err)
		}
	}
	s, err := labdns.NewSigner(sc)
	if err != nil {
		return nil, fmt.Errorf("lab_dns.dnssec: %w", err)
	}
	return s, nil
}
