package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultsAreSafe(t *testing.T) {
	c := Default()
	for _, l := range c.Policyd.Listen {
		if !strings.HasPrefix(l, "inet:127.") && !strings.HasPrefix(l, "unix:") {
			t.Errorf("default policyd listener %q is not loopback or unix", l)
		}
	}
	if !strings.HasPrefix(c.LabDNS.Listen, "127.") {
		t.Errorf("default lab_dns.listen %q is not loopback", c.LabDNS.Listen)
	}
	if len(c.LabDNS.AXFRAllow) != 0 {
		t.Errorf("zone transfers allowed by default: %v", c.LabDNS.AXFRAllow)
	}
	if c.DNS.Timeout.D() != 2*time.Second || c.Policyd.HeloReject != "Fail" {
		t.Errorf("defaults not read from default.yaml: %+v", c)
	}
}

func TestLoadOverlaysDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailwall.yaml")
	os.WriteFile(path, []byte("dns:\n  servers: [127.0.0.1:5353]\n  timeout: 300ms\npolicyd:\n  temperror_defer: true\n"), 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.DNS.Timeout.D() != 300*time.Millisecond || len(c.DNS.Servers) != 1 || !c.Policyd.TempErrorDefer {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.DNS.Attempts != 2 || c.Policyd.MailFromReject != "Fail" {
		t.Errorf("defaults lost for keys the file does not set: %+v", c)
	}
}

func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "dns:\n  servrs: []\n", "servrs"},
		{"bad duration", "dns:\n  timeout: soon\n", "not a duration"},
		{"bad policy", "policyd:\n  helo_reject: Maybe\n", "not one of"},
		{"bad cidr", "policyd:\n  skip_addresses: [10.0.0.0/33]\n", "skip_addresses"},
		{"bad listener", "policyd:\n  listen: [\"127.0.0.1:1\"]\n", "inet: or unix:"},
		{"null for mail from", "policyd:\n  mail_from_reject: Null\n", "mail_from_reject"},
		{"classifier source", "checks:\n  classifier:\n    source: db\n", "not file or store"},
		{"classifier store without a store", "store:\n  dsn: \"\"\nchecks:\n  classifier:\n    enabled: true\n    source: store\n", "source: store needs a store"},
		{"classifier store ftrl", "checks:\n  classifier:\n    source: store\n    kind: ftrl\n", "bayes models only"},
		{"learn maildir without junk", "checks:\n  classifier:\n    learn:\n      maildirs: [{path: /m}]\n", "maildirs[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || c.DNS.CacheSize != 10000 {
		t.Fatalf("empty config: %v %+v", err, c)
	}
}

func TestRejectPolicyNamesAreNotYAMLKeywords(t *testing.T) {
	c, err := Parse([]byte("policyd:\n  helo_reject: Null\n  mail_from_reject: False\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Policyd.HeloReject != "Null" || c.Policyd.MailFromReject != "False" {
		t.Errorf("got helo_reject=%q mail_from_reject=%q, want Null and False", c.Policyd.HeloReject, c.Policyd.MailFromReject)
	}
}

func TestUnknownPolicydKey(t *testing.T) {
	_, err := Parse([]byte("policyd:\n  helo_rejekt: Fail\n"))
	if err == nil || !strings.Contains(err.Error(), "helo_rejekt") {
		t.Errorf("error %v, want one naming helo_rejekt", err)
	}
}

func TestRedacted(t *testing.T) {
	for _, c := range []struct{ dsn, want, secret string }{
		{"postgres://mailwall:s3cret@db.example.test/mailwall?sslmode=disable", "postgres://mailwall:xxxxx@db.example.test/mailwall?sslmode=disable", "s3cret"},
		{"host=db.example.test user=mailwall password=s3cret dbname=mailwall", "host=db.example.test user=mailwall password=xxxxx dbname=mailwall", "s3cret"},
		{"host=db password = 'two words' dbname=m", "host=db password = xxxxx dbname=m", "two words"},
		{"/var/lib/mailwall/mailwall.db", "/var/lib/mailwall/mailwall.db", ""},
	} {
		cfg := Default()
		cfg.Store.DSN = c.dsn
		cfg.Web.PasswordHash = "$2a$10$abcdefghijklmnopqrstuv"
		out, err := cfg.Redacted()
		if err != nil {
			t.Fatal(err)
		}
		var back Config // parsed, not validated: "(set)" is no hash
		if err := yaml.Unmarshal(out, &back); err != nil {
			t.Fatalf("redacted config does not parse back: %v\n%s", err, out)
		}
		if back.Store.DSN != c.want || back.Web.PasswordHash != "(set)" || (c.secret != "" && strings.Contains(string(out), c.secret)) ||
			strings.Contains(string(out), "$2a$") {
			t.Errorf("%s: dsn %q, hash %q", c.dsn, back.Store.DSN, back.Web.PasswordHash)
		}
		if back.Hostname != cfg.Hostname || back.Milter.Listen[0] != cfg.Milter.Listen[0] {
			t.Errorf("redacted config lost settings:\n%s", out)
		}
	}
}

// TestReferenceDocumentsEveryKey: every field of the Config structs has a
// key in default.yaml with a comment saying what it does, so the generated
// reference (docs/config.md, mailwall.yaml(5)) has no blank entry.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	keys, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k.Path] = true
		if k.Doc == "" && !k.Section() {
			t.Errorf("%s: no comment in default.yaml", k.Path)
		}
		if !k.Section() && k.Default == "" {
			t.Errorf("%s: no default", k.Path)
		}
	}
	for _, want := range []string{"hostname", "checks.actions.temperror", "checks.arc.seal.key", "store.retention.reports", "lab_dns.axfr_allow"} {
		if !seen[want] {
			t.Errorf("%s missing from the reference", want)
		}
	}
	if got := keys[0]; got.Path != "hostname" || got.Type != "string" || got.Default != `""` {
		t.Errorf("first key %+v", got)
	}
}

func TestReferenceCatchesDrift(t *testing.T) {
	type small struct {
		A string `yaml:"a"`
		B int    `yaml:"b"`
	}
	var n yaml.Node
	yaml.Unmarshal([]byte("a: x  # the a\n"), &n)
	var keys []Key
	if err := referenceOf("", n.Content[0], reflect.TypeOf(small{}), &keys); err == nil || !strings.Contains(err.Error(), "lacks b") {
		t.Errorf("a field without a key: %v", err)
	}
	yaml.Unmarshal([]byte("a: x\nb: 1\nc: 2\n"), &n)
	if err := referenceOf("", n.Content[0], reflect.TypeOf(small{}), &keys); err == nil || !strings.Contains(err.Error(), "c has no field") {
		t.Errorf("a key without a field: %v", err)
	}
}
