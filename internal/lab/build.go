package lab

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mailwall/internal/dkim"
)

// Build writes what the lab serves under dir: DKIM keys (kept across runs,
// private files 0600) and one zone file per domain, the MX's domain, the
// reverse zone for 127.0.0.0/8, and each top-level domain (empty, so the
// DMARC tree walk gets NXDOMAIN rather than REFUSED). It returns the zone
// files, and by domain the signer of its first DKIM key.
func (f *File) Build(dir string) ([]string, map[string]*dkim.Signer, error) {
	zones := filepath.Join(dir, "zones")
	if err := ownDir(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := ownDir(zones, 0o755); err != nil {
		return nil, nil, err
	}
	dnsIP, err := f.dnsIP()
	if err != nil {
		return nil, nil, err
	}
	signers := map[string]*dkim.Signer{}
	serial := uint32(time.Now().Unix())
	var files []string
	write := func(origin, body string) error {
		path := filepath.Join(zones, origin+".zone")
		text := fmt.Sprintf("; written by mailwall lab; edits are lost on the next run\n$ORIGIN %s.\n$TTL 300\n@ IN SOA ns1.%s. hostmaster.%s. %d 3600 900 1209600 300\n%s", origin, f.MX.Domain, f.MX.Domain, serial, body)
		files = append(files, path)
		return writeFile(path, []byte(text), 0o644)
	}
	ptrs := map[string]string{f.MX.IP: f.MX.Name}
	tlds := map[string]bool{}
	for _, d := range f.Domains {
		var b strings.Builder
		first := d.Hosts[0]
		fmt.Fprintf(&b, "@ IN NS ns1.%s.\n@ IN A %s\n@ IN MX 10 %s\n", f.MX.Domain, first.IP, first.Name)
		for _, h := range d.Hosts {
			fmt.Fprintf(&b, "%s IN A %s\n", h.Name, h.IP)
			ptrs[h.IP] = h.FQDN(d)
		}
		if d.SPF != "" {
			fmt.Fprintf(&b, "@ IN TXT %s\n", quoteTXT(d.SPF))
		}
		if d.DMARC != "" {
			fmt.Fprintf(&b, "_dmarc IN TXT %s\n", quoteTXT(d.DMARC))
		}
		for _, k := range d.DKIM {
			key, err := loadOrGenerate(dir, d, k)
			if err != nil {
				return nil, nil, err
			}
			if signers[d.Name] == nil {
				signers[d.Name] = &dkim.Signer{Domain: d.Name, Selector: k.Selector, Key: key}
			}
			rec, err := dkim.PublicKeyRecord(key)
			if err != nil {
				return nil, nil, err
			}
			fmt.Fprintf(&b, "%s._domainkey IN TXT %s\n", k.Selector, quoteTXT(rec))
		}
		if err := write(d.Name, b.String()); err != nil {
			return nil, nil, err
		}
		tlds[d.Name[strings.LastIndexByte(d.Name, '.')+1:]] = true
	}
	mxHost := strings.TrimSuffix(f.MX.Name, "."+f.MX.Domain)
	if err := write(f.MX.Domain, fmt.Sprintf("@ IN NS ns1\nns1 IN A %s\n@ IN MX 10 %s\n%s IN A %s\n", dnsIP, mxHost, mxHost, f.MX.IP)); err != nil {
		return nil, nil, err
	}
	tlds[f.MX.Domain[strings.LastIndexByte(f.MX.Domain, '.')+1:]] = true
	var rev strings.Builder
	fmt.Fprintf(&rev, "@ IN NS ns1.%s.\n", f.MX.Domain)
	ips := make([]string, 0, len(ptrs))
	for ip := range ptrs {
		ips = append(ips, ip)
	}
	slices.Sort(ips)
	for _, ip := range ips {
		a := netip.MustParseAddr(ip).As4()
		fmt.Fprintf(&rev, "%d.%d.%d IN PTR %s.\n", a[3], a[2], a[1], ptrs[ip])
	}
	if err := write("127.in-addr.arpa", rev.String()); err != nil {
		return nil, nil, err
	}
	for _, bl := range f.Blocklists {
		var b strings.Builder
		fmt.Fprintf(&b, "@ IN NS ns1.%s.\n", f.MX.Domain)
		for _, l := range bl.Listed {
			a := netip.MustParseAddr(l.IP).As4()
			name := fmt.Sprintf("%d.%d.%d.%d", a[3], a[2], a[1], a[0]) // RFC 5782 §2.1
			fmt.Fprintf(&b, "%s IN A %s\n", name, l.Answer)
			if l.Reason != "" {
				fmt.Fprintf(&b, "%s IN TXT %s\n", name, quoteTXT(l.Reason))
			}
		}
		if err := write(bl.Zone, b.String()); err != nil {
			return nil, nil, err
		}
		tlds[bl.Zone[strings.LastIndexByte(bl.Zone, '.')+1:]] = true
	}
	for tld := range tlds {
		if err := write(tld, fmt.Sprintf("@ IN NS ns1.%s.\n", f.MX.Domain)); err != nil {
			return nil, nil, err
		}
	}
	return files, signers, nil
}

func (f *File) dnsIP() (string, error) {
	ap, err := netip.ParseAddrPort(f.DNS)
	if err != nil {
		return "", fmt.Errorf("lab file: dns %q: %w", f.DNS, err)
	}
	return ap.Addr().String(), nil
}

// quoteTXT writes a TXT value as zone-file strings of at most 255 octets
// (RFC 7208 §3.3: receivers join them without spaces).
func quoteTXT(s string) string {
	var parts []string
	for len(s) > 0 {
		n := min(len(s), 255)
		parts = append(parts, `"`+strings.ReplaceAll(strings.ReplaceAll(s[:n], `\`, `\\`), `"`, `\"`)+`"`)
		s = s[n:]
	}
	return strings.Join(parts, " ")
}

// loadOrGenerate reads a selector's key, or makes and saves one.
func loadOrGenerate(dir string, d Domain, k Key) (crypto.Signer, error) {
	path := keyPath(dir, d, k)
	for _, p := range []string{filepath.Join(dir, "keys"), filepath.Dir(path)} {
		if err := ownDir(p, 0o700); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{path, strings.TrimSuffix(path, ".private") + ".txt"} {
		if err := noSymlink(p); err != nil {
			return nil, err
		}
	}
	key, err := dkim.LoadPrivateKey(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, err = dkim.GenerateKey(k.Algorithm, k.Bits)
	if err != nil {
		return nil, err
	}
	if _, _, err := dkim.WriteKeyFiles(filepath.Dir(path), k.Selector, d.Name, key); err != nil {
		return nil, err
	}
	return key, nil
}
