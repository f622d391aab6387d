// Package lab builds a mail lab on one machine from a small lab file:
// domains with their sending hosts on 127.0.0.x addresses, SPF and DMARC
// policies, DKIM selectors. It generates the keys, writes forward and
// reverse zone files, serves them with the lab DNS server, runs a receiving
// MX with the receive pipeline, and sends a matrix of test messages from
// every host, so an admin sees what a strict receiver concludes about each.
package lab

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"mailwall/internal/dnsbl"
	"mailwall/internal/greylist"
)

// File is a lab file.
type File struct {
	// DNS is where the lab DNS server listens ("127.0.0.1:5380").
	DNS string `yaml:"dns"`
	MX  MX     `yaml:"mx"`
	// Domains send mail; each has its hosts.
	Domains []Domain `yaml:"domains"`
	// Messages to send; when empty, every host sends as every domain.
	Messages []Case `yaml:"messages"`
	// Blocklists are DNS block and allow lists the lab DNS serves and
	// the MX asks about each client at RCPT, as serve's policy server
	// does (the thresholds, action and reply from the config's dnsbl
	// section).
	Blocklists []Blocklist `yaml:"blocklists"`
	// Greylist, when set, makes the MX greylist at RCPT as serve does
	// (internal/greylist, its state in memory) with a lab-short delay;
	// lab run sends a deferred message again once the delay is over.
	Greylist *Greylist `yaml:"greylist"`
	// DNSSEC, when set, signs the lab's zones under a lab root and makes
	// the MX's resolver validate (dnssec.go).
	DNSSEC *DNSSEC `yaml:"dnssec"`
}

// Greylist is the lab MX's greylisting.
type Greylist struct {
	// Mode is rgrey (default: clients with no forward-confirmed PTR,
	// or a name S25R finds dynamic, as 1-2-3-4.pool.example.test) or
	// all.
	Mode string `yaml:"mode"`
	// Delay before a retry passes: default DefaultGreylistDelay, at
	// most MaxGreylistDelay (lab run waits it out).
	Delay time.Duration `yaml:"delay"`
}

// The lab's greylisting delay: short, since lab run waits for it.
const (
	DefaultGreylistDelay = 2 * time.Second
	MaxGreylistDelay     = time.Minute
)

// Blocklist is a DNSxL zone of the lab (RFC 5782).
type Blocklist struct {
	Zone string `yaml:"zone"` // its name, such as bl.rcpt.test
	// Weight is added to the client's score for a listing (postscreen's
	// *weight); 0 means 1, negative makes an allow list.
	Weight int       `yaml:"weight"`
	Listed []Listing `yaml:"listed"`
}

// Listing is one address a lab list lists.
type Listing struct {
	IP     string `yaml:"ip"`
	Answer string `yaml:"answer"` // the A record; default 127.0.0.2 (RFC 5782 §5's test code)
	Reason string `yaml:"reason"` // a TXT record, optional
}

// MX is the receiving server: the pipeline behind a built-in SMTP server.
type MX struct {
	Name   string `yaml:"name"`   // its host name, in Domain ("mx.rcpt.test")
	Domain string `yaml:"domain"` // the domain it receives for ("rcpt.test")
	IP     string `yaml:"ip"`     // a loopback address
	Port   int    `yaml:"port"`   // 0 picks a free one
}

// Domain is a sending domain.
type Domain struct {
	Name   string `yaml:"name"`
	SPF    string `yaml:"spf"`
	DMARC  string `yaml:"dmarc"`
	Sender string `yaml:"sender"` // local part of the test sender; default "info"
	DKIM   []Key  `yaml:"dkim"`
	Hosts  []Host `yaml:"hosts"`
}

// Key is a DKIM selector of a domain; its key is generated.
type Key struct {
	Selector  string `yaml:"selector"`
	Algorithm string `yaml:"algorithm"` // rsa (default) or ed25519
	Bits      int    `yaml:"bits"`      // RSA; default 2048
}

// Host is a sending host of a domain: <name>.<domain> at a loopback IP.
type Host struct {
	Name string `yaml:"name"`
	IP   string `yaml:"ip"`
	// Sign: the host signs its domain's mail with the first DKIM key.
	Sign bool `yaml:"sign"`
}

// Case is one message of the matrix: a host sends, claiming a domain.
type Case struct {
	Host string `yaml:"host"` // a host's full name ("work.example.test")
	From string `yaml:"from"` // the address claimed (envelope and From:)
}

// FQDN is the host's full name; a host named "@" is the domain itself
// (a one-box sender whose PTR is the bare domain).
func (h Host) FQDN(d Domain) string {
	if h.Name == "@" {
		return d.Name
	}
	return h.Name + "." + d.Name
}

// Parse reads a lab file; unknown keys and inconsistent values are errors
// with their place.
func Parse(data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("lab file: %w", err)
	}
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("lab file: %w", err)
	}
	return &f, nil
}

// Load reads a lab file from disk.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func (f *File) validate() error {
	if f.DNS == "" {
		f.DNS = "127.0.0.1:5380"
	}
	if f.MX.Name == "" || f.MX.Domain == "" {
		return errors.New("mx: name and domain are required")
	}
	if err := fileName(f.MX.Domain); err != nil {
		return fmt.Errorf("mx: domain %q: %w", f.MX.Domain, err)
	}
	if !strings.HasSuffix(f.MX.Name, "."+f.MX.Domain) {
		return fmt.Errorf("mx: %s is not inside %s", f.MX.Name, f.MX.Domain)
	}
	if f.MX.IP == "" {
		f.MX.IP = "127.0.0.1"
	}
	if err := loopback(f.MX.IP); err != nil {
		return fmt.Errorf("mx: %w", err)
	}
	seenIP := map[string]string{}
	if len(f.Domains) == 0 {
		return errors.New("no domains")
	}
	hosts := map[string]bool{}
	for i := range f.Domains {
		d := &f.Domains[i]
		d.Name = strings.ToLower(strings.TrimSuffix(d.Name, "."))
		if !strings.Contains(d.Name, ".") {
			return fmt.Errorf("domain %q: need a name with a dot, such as example.test", d.Name)
		}
		if err := fileName(d.Name); err != nil {
			return fmt.Errorf("domain %q: %w", d.Name, err)
		}
		if d.Sender == "" {
			d.Sender = "info"
		}
		if len(d.Hosts) == 0 {
			return fmt.Errorf("domain %s: no hosts", d.Name)
		}
		for j := range d.DKIM {
			k := &d.DKIM[j]
			if k.Selector == "" {
				return fmt.Errorf("domain %s: a DKIM key without selector", d.Name)
			}
			if err := fileName(k.Selector); err != nil {
				return fmt.Errorf("domain %s: selector %q: %w", d.Name, k.Selector, err)
			}
			switch k.Algorithm {
			case "":
				k.Algorithm = "rsa"
			case "rsa", "ed25519":
			default:
				return fmt.Errorf("domain %s: DKIM algorithm %q (rsa or ed25519)", d.Name, k.Algorithm)
			}
			if k.Algorithm == "rsa" && k.Bits == 0 {
				k.Bits = 2048
			}
		}
		for _, h := range d.Hosts {
			if err := loopback(h.IP); err != nil {
				return fmt.Errorf("host %s: %w", h.FQDN(*d), err)
			}
			if other, ok := seenIP[h.IP]; ok {
				return fmt.Errorf("host %s: address %s is %s's already", h.FQDN(*d), h.IP, other)
			}
			seenIP[h.IP] = h.FQDN(*d)
			if h.Sign && len(d.DKIM) == 0 {
				return fmt.Errorf("host %s signs, but %s has no dkim key", h.FQDN(*d), d.Name)
			}
			hosts[h.FQDN(*d)] = true
		}
	}
	if err := f.validateBlocklists(); err != nil {
		return err
	}
	if err := f.validateDNSSEC(); err != nil {
		return err
	}
	if g := f.Greylist; g != nil {
		switch g.Mode {
		case "":
			g.Mode = greylist.ModeRgrey
		case greylist.ModeRgrey, greylist.ModeAll:
		default:
			return fmt.Errorf("greylist: mode %q is not %s or %s", g.Mode, greylist.ModeRgrey, greylist.ModeAll)
		}
		if g.Delay == 0 {
			g.Delay = DefaultGreylistDelay
		}
		if g.Delay < time.Second || g.Delay > MaxGreylistDelay {
			return fmt.Errorf("greylist: delay %s is not between 1s and %s", g.Delay, MaxGreylistDelay)
		}
	}
	for _, c := range f.Messages {
		if !hosts[c.Host] {
			return fmt.Errorf("message from %s: no such host", c.Host)
		}
		if !strings.Contains(c.From, "@") {
			return fmt.Errorf("message from %s: from %q is not an address", c.Host, c.From)
		}
	}
	return nil
}

// validateBlocklists checks the lab's lists: zone names usable by
// postscreen's syntax and as zone files, apart from every other zone the
// lab writes; IPv4 listings with answers in 127.0.0.0/8 (RFC 5782 §2.3).
func (f *File) validateBlocklists() error {
	taken := map[string]string{f.MX.Domain: "the mx domain", "127.in-addr.arpa": "the reverse zone"}
	for _, d := range f.Domains {
		taken[d.Name] = "a domain"
		taken[d.Name[strings.LastIndexByte(d.Name, '.')+1:]] = "a top-level domain"
	}
	taken[f.MX.Domain[strings.LastIndexByte(f.MX.Domain, '.')+1:]] = "a top-level domain"
	for i := range f.Blocklists {
		b := &f.Blocklists[i]
		b.Zone = strings.ToLower(strings.TrimSuffix(b.Zone, "."))
		if _, err := dnsbl.ParseSite(b.Zone); err != nil || !strings.Contains(b.Zone, ".") {
			return fmt.Errorf("blocklist %q: not a list domain", b.Zone)
		}
		if err := fileName(b.Zone); err != nil {
			return fmt.Errorf("blocklist %q: %w", b.Zone, err)
		}
		if what, ok := taken[b.Zone]; ok {
			return fmt.Errorf("blocklist %s: the name is %s already", b.Zone, what)
		}
		taken[b.Zone] = "a blocklist"
		if b.Weight == 0 {
			b.Weight = 1
		}
		for j := range b.Listed {
			l := &b.Listed[j]
			ip, err := netip.ParseAddr(l.IP)
			if err != nil || !ip.Is4() {
				return fmt.Errorf("blocklist %s: listed %q is not an IPv4 address", b.Zone, l.IP)
			}
			if strings.ContainsFunc(l.Reason, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return fmt.Errorf("blocklist %s: the reason for %s has a control character", b.Zone, l.IP)
			}
			if l.Answer == "" {
				l.Answer = "127.0.0.2"
			}
			if a, err := netip.ParseAddr(l.Answer); err != nil || !a.Is4() || !a.IsLoopback() {
				return fmt.Errorf("blocklist %s: answer %q for %s is not in 127.0.0.0/8 (RFC 5782 §2.3)", b.Zone, l.Answer, l.IP)
			}
		}
	}
	return nil
}

// Sites are the lab's lists in postscreen's syntax, any answer counting.
func (f *File) Sites() []dnsbl.Site {
	var sites []dnsbl.Site
	for _, b := range f.Blocklists {
		sites = append(sites, dnsbl.Site{Zone: b.Zone, Weight: b.Weight})
	}
	return sites
}

// loopback checks that a lab address stays on this machine.
func loopback(s string) error {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("address %q: %w", s, err)
	}
	if !ip.Is4() || !ip.IsLoopback() {
		return fmt.Errorf("address %s is not in 127.0.0.0/8: a lab stays on this machine", ip)
	}
	return nil
}

// Cases returns the messages to send: the file's, or every host sending as
// every domain.
func (f *File) Cases() []Case {
	if len(f.Messages) > 0 {
		return f.Messages
	}
	var cases []Case
	for _, d := range f.Domains {
		for _, h := range d.Hosts {
			for _, claimed := range f.Domains {
				cases = append(cases, Case{Host: h.FQDN(d), From: claimed.Sender + "@" + claimed.Name})
			}
		}
	}
	return cases
}

// Host finds a host by its full name, with its domain.
func (f *File) Host(fqdn string) (Domain, Host, bool) {
	for _, d := range f.Domains {
		if i := slices.IndexFunc(d.Hosts, func(h Host) bool { return h.FQDN(d) == fqdn }); i >= 0 {
			return d, d.Hosts[i], true
		}
	}
	return Domain{}, Host{}, false
}

// keyPath is where a selector's private key lives under the lab directory.
func keyPath(dir string, d Domain, k Key) string {
	return filepath.Join(dir, "keys", d.Name, k.Selector+".private")
}

// fileName checks a domain or selector that names a file or directory
// under the lab directory: no path separators, nothing that climbs out.
func fileName(s string) error {
	if s == "" || strings.ContainsAny(s, "/\\\x00") || strings.HasPrefix(s, ".") || strings.Contains(s, "..") {
		return errors.New("not usable as a file name under the lab directory")
	}
	return nil
}
