package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// DDNSConfig is dynamic DNS for a server on a changing address
// (internal/ddns): `mailwall ddns`, and a loop in serve when Enabled.
type DDNSConfig struct {
	Enabled bool     `yaml:"enabled"`
	Every   Duration `yaml:"every"`
	// Where the address comes from: an interface, or an HTTP(S)
	// endpoint answering it as text. One of the two.
	Interface string   `yaml:"interface"`
	URL       string   `yaml:"url"`
	Names     []string `yaml:"names"`
	SPFNames  []string `yaml:"spf_names"`
	Zone      string   `yaml:"zone"`
	Server    string   `yaml:"server"`
	KeyName   string   `yaml:"key_name"`
	KeyAlg    string   `yaml:"key_algorithm"`
	// KeyFile holds the base64 secret, alone or as BIND's key clause
	// (tsig-keygen's output).
	KeyFile        string   `yaml:"key_file"`
	TTL            uint32   `yaml:"ttl"`
	NSPort         int      `yaml:"ns_port"`
	Timeout        Duration `yaml:"timeout"`
	VerifyAttempts int      `yaml:"verify_attempts"`
	VerifyBackoff  Duration `yaml:"verify_backoff"`
	// LabAllowLoopback lets a loopback address be published: lab tests
	// only.
	LabAllowLoopback bool `yaml:"lab_allow_loopback"`
}

// LabDNSUpdateKey is a TSIG key that may update lab zones (lab_dns).
type LabDNSUpdateKey struct {
	Name      string   `yaml:"name"`
	Algorithm string   `yaml:"algorithm"`
	KeyFile   string   `yaml:"key_file"`
	Zones     []string `yaml:"zones"`
}

// validateDDNS checks the ddns section when it is used.
func (c *Config) validateDDNS(check func(ok bool, format string, args ...any)) {
	d := c.DDNS
	check(d.Every >= Duration(time.Minute), "ddns.every: %s is under a minute", d.Every.D())
	check(d.Timeout > 0 && d.Timeout <= Duration(time.Minute), "ddns.timeout: %s is not between 0 and 1m", d.Timeout.D())
	check(d.VerifyAttempts >= 1 && d.VerifyAttempts <= 20, "ddns.verify_attempts: %d is not 1 to 20", d.VerifyAttempts)
	check(d.VerifyBackoff > 0, "ddns.verify_backoff must be positive")
	check(d.TTL >= 30, "ddns.ttl: %d is under 30 seconds", d.TTL)
	check(d.NSPort > 0 && d.NSPort < 65536, "ddns.ns_port: %d is not a port", d.NSPort)
	check(d.Interface == "" || d.URL == "", "ddns: set interface or url, not both")
	check(d.URL == "" || strings.HasPrefix(d.URL, "https://") || strings.HasPrefix(d.URL, "http://"), "ddns.url: %q is not http(s)", d.URL)
	if d.Enabled {
		check(d.Interface != "" || d.URL != "", "ddns.enabled: set ddns.interface or ddns.url")
		check(len(d.Names)+len(d.SPFNames) > 0, "ddns.enabled: set ddns.names or ddns.spf_names")
		check(d.Server != "" && d.KeyName != "" && d.KeyFile != "", "ddns.enabled: set ddns.server, ddns.key_name and ddns.key_file")
	}
}

// ReadTSIGSecret reads a TSIG secret file: the base64 secret alone, or a
// BIND key clause (key "name" { algorithm ...; secret "..."; };) as
// tsig-keygen and ddns-confgen print it.
func ReadTSIGSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("TSIG key file: %w", err)
	}
	if len(b) > 4096 {
		return "", fmt.Errorf("TSIG key file %s: over 4096 octets, not a key", path)
	}
	text := strings.TrimSpace(string(b))
	if m := regexp.MustCompile(`secret\s+"([A-Za-z0-9+/=]+)"`).FindStringSubmatch(text); m != nil {
		return m[1], nil
	}
	if text == "" || strings.ContainsAny(text, " \t\n\"{};") {
		return "", fmt.Errorf("TSIG key file %s: neither a base64 secret nor a key clause with secret \"...\"", path)
	}
	return text, nil
}
