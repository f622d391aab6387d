package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
)

// DNSSEC signs the lab's zones under a lab root zone (internal/labdns's
// Signer): keys generated at each start, ECDSA P-256, NSEC unless listed in
// NSEC3. The lab's resolver then validates from the root's DS, which the
// lab writes to TrustAnchorFile for a mailwall config's dns.trust_anchors.
type DNSSEC struct {
	// NSEC3 lists the zones denied with NSEC3 (RFC 5155) instead of NSEC.
	NSEC3 []string `yaml:"nsec3"`
	// Unsigned lists zones served without signatures and without DS: an
	// insecure delegation.
	Unsigned []string `yaml:"unsigned"`
	// Break breaks zones on purpose, for tests: tamper (signatures
	// corrupted), expire (signatures out of date), omit_ds (signed, no
	// DS at the root: insecure), wrong_ds (a DS matching no key: bogus).
	Break map[string]string `yaml:"break"`
}

// TrustAnchorFile is the file under the lab's directory that holds the lab
// root's DS record.
const TrustAnchorFile = "trust-anchor.ds"

// zones are the zones the lab writes: its domains, the MX's, the reverse
// zone and the lists.
func (f *File) zoneNames() []string {
	out := []string{f.MX.Domain, "127.in-addr.arpa"}
	for _, d := range f.Domains {
		out = append(out, d.Name)
	}
	for _, b := range f.Blocklists {
		out = append(out, b.Zone)
	}
	return out
}

// validateDNSSEC checks that every zone named is one the lab serves and
// every breakage known.
func (f *File) validateDNSSEC() error {
	d := f.DNSSEC
	if d == nil {
		return nil
	}
	zones := f.zoneNames()
	known := func(what, z string) error {
		if !slices.Contains(zones, strings.ToLower(strings.TrimSuffix(z, "."))) {
			return fmt.Errorf("dnssec: %s: %q is not a zone of the lab (%s)", what, z, strings.Join(zones, ", "))
		}
		return nil
	}
	for _, z := range d.NSEC3 {
		if err := known("nsec3", z); err != nil {
			return err
		}
	}
	for _, z := range d.Unsigned {
		if err := known("unsigned", z); err != nil {
			return err
		}
	}
	for z, how := range d.Break {
		if err := known("break", z); err != nil {
			return err
		}
		if !slices.Contains([]string{"tamper", "expire", "omit_ds", "wrong_ds"}, how) {
			return fmt.Errorf("dnssec: break: %s: %q is not tamper, expire, omit_ds or wrong_ds", z, how)
		}
	}
	return nil
}

// signer is the lab DNS server's signer, nil without a dnssec section.
func (f *File) signer() (*labdns.Signer, error) {
	d := f.DNSSEC
	if d == nil {
		return nil, nil
	}
	cfg := labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{}}
	set := func(z string, edit func(*labdns.ZoneSigning)) {
		z = strings.ToLower(strings.TrimSuffix(z, "."))
		zs := cfg.Zones[z]
		edit(&zs)
		cfg.Zones[z] = zs
	}
	for _, z := range d.NSEC3 {
		set(z, func(zs *labdns.ZoneSigning) { zs.NSEC3 = true })
	}
	for _, z := range d.Unsigned {
		set(z, func(zs *labdns.ZoneSigning) { zs.Unsigned = true })
	}
	for z, how := range d.Break {
		set(z, func(zs *labdns.ZoneSigning) {
			switch how {
			case "tamper":
				zs.TamperRRSIG = true
			case "expire":
				zs.ExpireRRSIG = true
			case "omit_ds":
				zs.OmitDS = true
			case "wrong_ds":
				zs.WrongDS = true
			}
		})
	}
	s, err := labdns.NewSigner(cfg)
	if err != nil {
		return nil, fmt.Errorf("lab: dnssec: %w", err)
	}
	return s, nil
}

// resolverClient is the client the lab's MX asks lab DNS with: validating
// from the lab root's anchor (written to dir/TrustAnchorFile) when the
// lab is signed.
func resolverClient(srv *labdns.Server, dir string) (*dnsx.Client, error) {
	c := &dnsx.Client{Servers: []string{srv.Addr()}, Timeout: 2 * time.Second}
	ds := srv.TrustAnchor()
	if ds == nil {
		return c, nil
	}
	anchor := ds.String()
	if err := os.WriteFile(filepath.Join(dir, TrustAnchorFile), []byte(anchor+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{anchor}})
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	c.Validator = v
	return c, nil
}
