// Package config reads mailwall's one configuration file (YAML). Every key
// has an embedded default (default.yaml), so mailwall starts with no file
// at all; a file only needs the keys it changes.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration, comments included.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole configuration.
type Config struct {
	Hostname string        `yaml:"hostname"`
	Log      LogConfig     `yaml:"log"`
	DNS      DNSConfig     `yaml:"dns"`
	SPF      SPFConfig     `yaml:"spf"`
	Policyd  PolicydConfig `yaml:"policyd"`
	Milter   MilterConfig  `yaml:"milter"`
	Checks   ChecksConfig  `yaml:"checks"`
	LabDNS   LabDNSConfig  `yaml:"lab_dns"`
	Admin    AdminConfig   `yaml:"admin"`
	Store    StoreConfig   `yaml:"store"`
	Reports  ReportsConfig `yaml:"reports"`
	Web      WebConfig     `yaml:"web"`

	// Greylist is greylisting in the policy server (issue 25).
	Greylist GreylistConfig `yaml:"greylist"`
	// DNSBL is the DNS block and allow lists (issue 25).
	DNSBL DNSBLConfig `yaml:"dnsbl"`
	// DDNS is dynamic DNS for a server on a changing address (issue 27).
	DDNS DDNSConfig `yaml:"ddns"`
}

// ReportsConfig is DMARC aggregate reporting, both ways.
type ReportsConfig struct {
	Send        bool     `yaml:"send"`
	Receiver    string   `yaml:"receiver"`
	OrgName     string   `yaml:"org_name"`
	From        string   `yaml:"from"`
	Contact     string   `yaml:"contact"`
	Relay       string   `yaml:"relay"`
	Every       Duration `yaml:"every"`
	MaxAttempts int      `yaml:"max_attempts"`
	// NewDomainsPerHour and NewDomainsPerDay bound aggregate reports to
	// policy domains never reported to before.
	NewDomainsPerHour int            `yaml:"new_domains_per_hour"`
	NewDomainsPerDay  int            `yaml:"new_domains_per_day"`
	Inbound           InboundReports `yaml:"inbound"`
	Failure           FailureReports `yaml:"failure"`
}

// FailureReports are RFC 9991 failure reports to ruf= addresses.
type FailureReports struct {
	Send             bool `yaml:"send"`
	PerDomainPerHour int  `yaml:"per_domain_per_hour"`
	PerHour          int  `yaml:"per_hour"`
}

// InboundReports says where reports for our domains arrive, and which
// are read: those about our domains, within a rate per reporter.
type InboundReports struct {
	Addresses         []string `yaml:"addresses"`
	Maildir           string   `yaml:"maildir"`
	Domains           []string `yaml:"domains"`
	PerReporterPerDay int      `yaml:"per_reporter_per_day"`
}

// WebConfig is the dashboard, metrics and health listener.
type WebConfig struct {
	Listen       string `yaml:"listen"`
	User         string `yaml:"user"`
	PasswordHash string `yaml:"password_hash"`
	// Reverse proxies (CIDRs) whose X-Forwarded-For names the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Bounds on connections.
	MaxConnections        int `yaml:"max_connections"`
	MaxConnectionsPerPeer int `yaml:"max_connections_per_peer"`
	// Timezone the dashboard shows times in (IANA name); "": the system's.
	Timezone string `yaml:"timezone"`
	// Postsuper is the command prefix that releases (-H) or deletes (-d)
	// a held message, split at spaces, run without a shell; "": none.
	Postsuper string `yaml:"postsuper"`
}

// StoreConfig is the database.
type StoreConfig struct {
	Driver    string         `yaml:"driver"`
	DSN       string         `yaml:"dsn"`
	Queue     int            `yaml:"queue"`
	Retention StoreRetention `yaml:"retention"`
	// Subject: keep the Subject of each verdict, or only its hash.
	Subject string `yaml:"subject"`
}

// StoreRetention says how long records are kept (0: for ever).
type StoreRetention struct {
	Verdicts Duration `yaml:"verdicts"`
	Reports  Duration `yaml:"reports"`
}

// AdminConfig is the daemon's admin socket.
type AdminConfig struct {
	Socket string `yaml:"socket"`
}

// MilterConfig is the milter listener.
type MilterConfig struct {
	Listen   []string `yaml:"listen"`
	UnixMode string   `yaml:"unix_mode"`
	OnError  string   `yaml:"on_error"`
	// Bounds on one message's header, and the answer past them.
	MaxHeaderFields int    `yaml:"max_header_fields"`
	MaxHeaderBytes  int    `yaml:"max_header_bytes"`
	TooManyHeaders  string `yaml:"too_many_headers"`
	// Bounds on connections.
	HandshakeTimeout      Duration `yaml:"handshake_timeout"`
	IdleTimeout           Duration `yaml:"idle_timeout"`
	MaxConnections        int      `yaml:"max_connections"`
	MaxConnectionsPerPeer int      `yaml:"max_connections_per_peer"`
}

// ChecksConfig is the receive pipeline.
type ChecksConfig struct {
	AuthServID       string          `yaml:"authserv_id"`
	HeloRegexpTables []string        `yaml:"helo_regexp_tables"`
	HeloRequireFQDN  bool            `yaml:"helo_require_fqdn"`
	S25R             bool            `yaml:"s25r"`
	S25RAllowNames   []string        `yaml:"s25r_allow_names"`
	S25RAllowIPs     []string        `yaml:"s25r_allow_ips"`
	DMARCPSL         bool            `yaml:"dmarc_psl"`
	InternalHosts    []string        `yaml:"internal_hosts"`
	NotChecked       []string        `yaml:"not_checked"`
	SubjectTag       string          `yaml:"subject_tag"`
	Actions          ActionsConfig   `yaml:"actions"`
	Signing          []SigningConfig `yaml:"signing"`
	DKIM             DKIMConfig      `yaml:"dkim"`
	ARC              ARCConfig       `yaml:"arc"`
	Phish            PhishConfig     `yaml:"phish"`
	// Classifier is the learning classifier, an analyzer like Phish.
	Classifier ClassifierConfig `yaml:"classifier"`
	// Reputation is the history of authenticated identities, an
	// analyzer like Phish (internal/reputation).
	Reputation ReputationConfig `yaml:"reputation"`
	// Analyzers are the content analyzers to run, in order; each runs
	// when its section is enabled.
	Analyzers []string    `yaml:"analyzers"`
	Score     ScoreConfig `yaml:"score"`
}

// ClassifierConfig is the learning classifier (internal/classify) as an
// analyzer: its probability that a message is junk becomes a weighted
// hit.
type ClassifierConfig struct {
	Enabled         bool    `yaml:"enabled"`
	Model           string  `yaml:"model"`
	Kind            string  `yaml:"kind"`
	Threshold       float64 `yaml:"threshold"`
	Weight          int     `yaml:"weight"`
	StrongThreshold float64 `yaml:"strong_threshold"`
	StrongWeight    int     `yaml:"strong_weight"`
	StarterWeight   int     `yaml:"starter_weight"`
	StarterUntil    int     `yaml:"starter_until"`
	// Source is where the model is read: "file" (Model) or "store"
	// (the store's model, which mailwall learn and the Maildir watcher
	// teach, re-read every Refresh).
	Source  string                `yaml:"source"`
	Refresh Duration              `yaml:"refresh"`
	Learn   ClassifierLearnConfig `yaml:"learn"`
	// PerRecipient adds a recipient's own statistics to the site's for
	// mail to one recipient, once they taught RecipientMinLearns of
	// each class (internal/classify's recipient.go).
	PerRecipient       bool `yaml:"per_recipient"`
	RecipientMinLearns int  `yaml:"recipient_min_learns"`
	// Autolearn teaches the store's model without asking
	// (internal/reputation).
	Autolearn AutolearnConfig `yaml:"autolearn"`
}

// ClassifierLearnConfig is learning from users' Maildir folders: a
// message that appears in a Junk folder is learnt as spam, one moved
// from Junk to the inbox as ham.
type ClassifierLearnConfig struct {
	Maildirs   []LearnMaildirConfig `yaml:"maildirs"`
	Interval   Duration             `yaml:"interval"`
	MaxPerPass int                  `yaml:"max_per_pass"`
}

// LearnMaildirConfig is one user's Maildir and its Junk folder.
type LearnMaildirConfig struct {
	Path string `yaml:"path"`
	Junk string `yaml:"junk"`
	// Rcpt is the address whose mail the Maildir holds: with
	// per_recipient, its lessons are that recipient's too.
	Rcpt string `yaml:"rcpt"`
}

// DKIMConfig is DKIM verification; its budget covers ARC's too.
type DKIMConfig struct {
	AcceptRSASHA1 bool     `yaml:"accept_rsa_sha1"`
	MaxSignatures int      `yaml:"max_signatures"`
	VerifyBudget  Duration `yaml:"verify_budget"`
}

// ARCConfig is ARC validation and sealing.
type ARCConfig struct {
	Verify         bool          `yaml:"verify"`
	TrustedSealers []string      `yaml:"trusted_sealers"`
	Seal           SigningConfig `yaml:"seal"`
}

// PhishConfig is the phishing rules.
type PhishConfig struct {
	Enabled         bool           `yaml:"enabled"`
	DefaultBrands   bool           `yaml:"default_brands"`
	Brands          []BrandConfig  `yaml:"brands"`
	BrandsFile      string         `yaml:"brands_file"`
	Weights         map[string]int `yaml:"weights"`
	FirstSeenWarmup Duration       `yaml:"first_seen_warmup"`
}

// BrandConfig is one brand and its real domains.
type BrandConfig struct {
	Name    string   `yaml:"name"`
	Domains []string `yaml:"domains"`
	Words   []string `yaml:"words"`
}

// ScoreConfig maps the score to actions; 0 turns a threshold off.
type ScoreConfig struct {
	Tag        int `yaml:"tag"`
	Quarantine int `yaml:"quarantine"`
	Reject     int `yaml:"reject"`
	// RejectText is the reply text of a rejection by the score; the
	// rules go to the log and the dashboard only.
	RejectText string `yaml:"reject_text"`
}

// ActionsConfig maps outcomes to actions.
type ActionsConfig struct {
	HeloInvalid     string `yaml:"helo_invalid"`
	IPRevFail       string `yaml:"iprev_fail"`
	S25R            string `yaml:"s25r"`
	SPFFail         string `yaml:"spf_fail"`
	DMARCReject     string `yaml:"dmarc_reject"`
	DMARCQuarantine string `yaml:"dmarc_quarantine"`
	TempError       string `yaml:"temperror"`
}

// SigningConfig is one signing key.
type SigningConfig struct {
	Domain   string `yaml:"domain"`
	Selector string `yaml:"selector"`
	Key      string `yaml:"key"`
}

// LogConfig sets up log/slog.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// DebugPeers are client networks whose mail is logged stage by
	// stage (debug_peers.go).
	DebugPeers []string `yaml:"debug_peers"`
}

// DNSConfig is the resolver and its cache.
type DNSConfig struct {
	Servers        []string `yaml:"servers"`
	Timeout        Duration `yaml:"timeout"`
	Attempts       int      `yaml:"attempts"`
	CacheSize      int      `yaml:"cache_size"`
	MaxTTL         Duration `yaml:"max_ttl"`
	MaxNegativeTTL Duration `yaml:"max_negative_ttl"`

	// DNSSEC validation (dns.go).
	DNSSEC         string   `yaml:"dnssec"`
	TrustAnchors   []string `yaml:"trust_anchors"`
	TrustADServers []string `yaml:"trust_ad_servers"`
}

// SPFConfig tunes SPF evaluation.
type SPFConfig struct {
	MaxLookups     int      `yaml:"max_lookups"`
	MaxVoidLookups int      `yaml:"max_void_lookups"`
	Timeout        Duration `yaml:"timeout"`
}

// PolicydConfig is the Postfix policy server.
type PolicydConfig struct {
	Listen          []string     `yaml:"listen"`
	UnixMode        string       `yaml:"unix_mode"`
	HeloReject      RejectPolicy `yaml:"helo_reject"`
	MailFromReject  RejectPolicy `yaml:"mail_from_reject"`
	PermErrorReject bool         `yaml:"permerror_reject"`
	TempErrorDefer  bool         `yaml:"temperror_defer"`
	SkipAddresses   []string     `yaml:"skip_addresses"`
	AllowIPs        []string     `yaml:"allow_ips"`
	AllowDomains    []string     `yaml:"allow_domains"`
	HideReceiver    bool         `yaml:"hide_receiver"`
	ReasonMessage   string       `yaml:"reason_message"`
	OnError         string       `yaml:"on_error"`
	MaxConnections  int          `yaml:"max_connections"`
	// Bound on connections from one address off loopback.
	MaxConnectionsPerPeer int `yaml:"max_connections_per_peer"`
}

// GreylistConfig is greylisting in the policy server (internal/greylist).
type GreylistConfig struct {
	Enabled     bool     `yaml:"enabled"`
	Mode        string   `yaml:"mode"`
	ClientName  string   `yaml:"client_name"`
	Delay       Duration `yaml:"delay"`
	RetryWindow Duration `yaml:"retry_window"`
	MaxAge      Duration `yaml:"max_age"`
	AutoAllow   int      `yaml:"auto_allow"`
	Text        string   `yaml:"text"`
	Tarpit      Duration `yaml:"tarpit"`
	AllowIPs    []string `yaml:"allow_ips"`
	Via         string   `yaml:"via"` // policy (the policy server) or milter: which one greylists at RCPT
}

// DNSBLConfig is the DNS block and allow lists (internal/dnsbl), asked by
// the policy server at RCPT and by the milter's "dnsbl" analyzer.
type DNSBLConfig struct {
	IPSites            []string          `yaml:"ip_sites"`
	DomainSites        []string          `yaml:"domain_sites"`
	ScoreWeight        int               `yaml:"score_weight"` // the milter score's points per unit of a site's weight
	Timeout            Duration          `yaml:"timeout"`
	Budget             Duration          `yaml:"budget"`
	RejectThreshold    int               `yaml:"reject_threshold"`
	AllowlistThreshold int               `yaml:"allowlist_threshold"`
	GreylistThreshold  int               `yaml:"greylist_threshold"`
	Action             string            `yaml:"action"`
	Reply              string            `yaml:"reply"`
	ReplyNames         map[string]string `yaml:"reply_names"`
	RcptVia            string            `yaml:"rcpt_via"`     // policy or milter: which one applies the thresholds at RCPT
	ZoneActions        map[string]string `yaml:"zone_actions"` // zone: reject or defer, whatever the sum
}

// UnmarshalYAML reads the section strictly, with helo_reject and
// mail_from_reject taken as written: yaml.v3 never hands a null node to an
// Unmarshaler, so "Null" would otherwise vanish into the default.
func (p *PolicydConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		known := map[string]bool{}
		t := reflect.TypeFor[PolicydConfig]()
		for i := range t.NumField() {
			known[strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]] = true
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !known[k.Value] {
				return fmt.Errorf("line %d: field %s not found in policyd", k.Line, k.Value)
			}
			if k.Value == "helo_reject" || k.Value == "mail_from_reject" {
				n.Content[i+1].Tag = "!!str"
			}
		}
	}
	type plain PolicydConfig
	return n.Decode((*plain)(p))
}

// LabDNSConfig is the lab DNS server.
type LabDNSConfig struct {
	Listen    string   `yaml:"listen"`
	Zones     []string `yaml:"zones"`
	AXFRAllow []string `yaml:"axfr_allow"`
	// UpdateKeys may send TSIG-signed dynamic updates (ddns.go).
	UpdateKeys []LabDNSUpdateKey `yaml:"update_keys"`
	WriteZones bool              `yaml:"write_zones"`

	// DNSSEC signs the zones under a lab root (labdns/sign.go).
	DNSSEC     bool     `yaml:"dnssec"`
	DNSSECKeys string   `yaml:"dnssec_keys"`
	NSEC3Zones []string `yaml:"nsec3_zones"`
}

// RejectPolicy is one of policyd-spf's HELO_reject / Mail_From_reject
// values. It reads the scalar as written, so Null and False are names here,
// not YAML's null and false; case does not matter.
type RejectPolicy string

// UnmarshalYAML reads the scalar text.
func (p *RejectPolicy) UnmarshalYAML(n *yaml.Node) error {
	for _, name := range rejectPolicies {
		if strings.EqualFold(n.Value, name) {
			*p = RejectPolicy(name)
			return nil
		}
	}
	return fmt.Errorf("line %d: %q is not one of %s", n.Line, n.Value, strings.Join(rejectPolicies, ", "))
}

// Duration is a time.Duration written as "2s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like \"2s\" or \"5m\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the embedded defaults.
func Default() *Config {
	c, err := parse(defaultYAML, nil)
	if err != nil {
		panic("config: embedded default.yaml is invalid: " + err.Error())
	}
	return c
}

// Load reads path over the defaults; an empty path gives the defaults.
// Unknown keys are errors, so a typo does not silently fall back.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := parse(data, Default())
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse reads YAML over the defaults.
func Parse(data []byte) (*Config, error) {
	return parse(data, Default())
}

func parse(data []byte, base *Config) (*Config, error) {
	c := base
	if c == nil {
		c = &Config{}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var rejectPolicies = []string{"Fail", "Softfail", "SPF_Not_Pass", "Null", "False", "No_Check"}

// Validate checks values the YAML types cannot.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(oneOf(c.Log.Level, "debug", "info", "warn", "error"), "log.level: %q is not debug, info, warn or error", c.Log.Level)
	check(oneOf(c.Log.Format, "text", "json"), "log.format: %q is not text or json", c.Log.Format)
	check(c.validDebugPeers() == nil, "log.debug_peers: %v", c.validDebugPeers())
	check(c.DNS.Timeout > 0, "dns.timeout must be positive")
	check(c.DNS.Attempts > 0, "dns.attempts must be at least 1")
	check(c.DNS.CacheSize > 0, "dns.cache_size must be at least 1")
	c.validateDNSSEC(check) // dns.go
	check(c.SPF.MaxLookups > 0 && c.SPF.MaxVoidLookups > 0, "spf.max_lookups and spf.max_void_lookups must be at least 1")
	check(c.SPF.Timeout > 0, "spf.timeout must be positive")
	check(c.Policyd.MailFromReject != "Null", "policyd.mail_from_reject: Null applies to helo_reject only")
	check(oneOf(c.Policyd.OnError, "dunno", "defer"), "policyd.on_error: %q is not dunno or defer", c.Policyd.OnError)
	check(c.Policyd.MaxConnections > 0, "policyd.max_connections must be at least 1")
	check(c.Policyd.MaxConnectionsPerPeer >= 0, "policyd.max_connections_per_peer must not be negative (0: no limit)")
	g := c.Greylist
	check(oneOf(g.Mode, "rgrey", "all"), "greylist.mode: %q is not rgrey or all", g.Mode)
	check(oneOf(g.ClientName, "postfix", "dns"), "greylist.client_name: %q is not postfix or dns", g.ClientName)
	check(g.Delay >= Duration(time.Second) && g.Delay <= g.RetryWindow && g.RetryWindow <= g.MaxAge,
		"greylist: want 1s <= delay (%s) <= retry_window (%s) <= max_age (%s)", g.Delay.D(), g.RetryWindow.D(), g.MaxAge.D())
	check(g.AutoAllow >= 0, "greylist.auto_allow must not be negative (0: off)")
	check(g.Tarpit >= 0 && g.Tarpit <= Duration(60*time.Second), "greylist.tarpit: %s is not between 0 and 60s (Postfix's smtpd_policy_service_timeout is 100s)", g.Tarpit.D())
	check(oneOf(g.Via, "policy", "milter"), "greylist.via: %q is not policy or milter", g.Via)
	check(g.Via != "milter" || g.Tarpit <= Duration(20*time.Second), "greylist.tarpit: %s is over 20s, with via milter (Postfix's milter_command_timeout is 30s)", g.Tarpit.D())
	c.validateDNSBL(check)
	c.validateDDNS(check)
	c.validateReputation(check)
	check(c.Web.MaxConnections > 0 && c.Web.MaxConnectionsPerPeer > 0, "web.max_connections and web.max_connections_per_peer must be at least 1")
	for _, p := range c.Web.TrustedProxies {
		_, errP := netip.ParsePrefix(p)
		_, errA := netip.ParseAddr(p)
		check(errP == nil || errA == nil, "web.trusted_proxies: %q is not an address or CIDR", p)
	}
	for _, l := range c.Policyd.Listen {
		check(strings.HasPrefix(l, "inet:") || strings.HasPrefix(l, "unix:"), "policyd.listen: %q must start with inet: or unix:", l)
	}
	check(oneOf(c.Milter.OnError, "tempfail", "accept"), "milter.on_error: %q is not tempfail or accept", c.Milter.OnError)
	check(c.Milter.MaxHeaderFields > 0 && c.Milter.MaxHeaderBytes > 0, "milter.max_header_fields and milter.max_header_bytes must be at least 1")
	check(oneOf(c.Milter.TooManyHeaders, "reject", "tempfail"), "milter.too_many_headers: %q is not reject or tempfail", c.Milter.TooManyHeaders)
	check(c.Milter.HandshakeTimeout > 0 && c.Milter.IdleTimeout > 0, "milter.handshake_timeout and milter.idle_timeout must be positive")
	check(c.Milter.MaxConnections > 0 && c.Milter.MaxConnectionsPerPeer > 0, "milter.max_connections and milter.max_connections_per_peer must be at least 1")
	for _, l := range c.Milter.Listen {
		check(strings.HasPrefix(l, "inet:") || strings.HasPrefix(l, "unix:"), "milter.listen: %q must start with inet: or unix:", l)
	}
	check(c.Admin.Socket == "" || filepath.IsAbs(c.Admin.Socket), "admin.socket: %q must be an absolute path", c.Admin.Socket)
	check(c.Web.User != "", "web.user must not be empty")
	// A bcrypt hash ($2a$, $2b$ or $2y$, cost, 53 characters of salt and
	// hash), as "mailwall web password-hash" prints it.
	check(c.Web.PasswordHash == "" || bcryptHash.MatchString(c.Web.PasswordHash), "web.password_hash: not a bcrypt hash (make one with: mailwall web password-hash)")
	a := c.Checks.Actions
	for key, v := range map[string]string{"helo_invalid": a.HeloInvalid, "iprev_fail": a.IPRevFail, "s25r": a.S25R, "spf_fail": a.SPFFail,
		"dmarc_reject": a.DMARCReject, "dmarc_quarantine": a.DMARCQuarantine, "temperror": a.TempError} {
		check(oneOf(v, "accept", "tag", "quarantine", "tempfail", "reject"), "checks.actions.%s: %q is not accept, tag, quarantine, tempfail or reject", key, v)
	}
	seal := c.Checks.ARC.Seal
	check(seal == (SigningConfig{}) || seal.Domain != "" && seal.Selector != "" && seal.Key != "", "checks.arc.seal: domain, selector and key are all required to seal")
	check(c.Checks.DKIM.MaxSignatures > 0, "checks.dkim.max_signatures must be at least 1")
	check(c.Checks.DKIM.VerifyBudget > 0, "checks.dkim.verify_budget must be positive")
	sc := c.Checks.Score
	check(sc.Tag >= 0 && sc.Quarantine >= 0 && sc.Reject >= 0, "checks.score: thresholds must not be negative")
	check(sc.Quarantine == 0 || sc.Tag == 0 || sc.Tag <= sc.Quarantine, "checks.score: tag (%d) above quarantine (%d)", sc.Tag, sc.Quarantine)
	check(sc.Reject == 0 || sc.Quarantine == 0 || sc.Quarantine <= sc.Reject, "checks.score: quarantine (%d) above reject (%d)", sc.Quarantine, sc.Reject)
	for i, b := range c.Checks.Phish.Brands {
		check(b.Name != "" && len(b.Domains) > 0, "checks.phish.brands[%d]: name and domains are required", i)
	}
	cl := c.Checks.Classifier
	check(oneOf(cl.Source, "file", "store"), "checks.classifier.source: %q is not file or store", cl.Source)
	check(!cl.Enabled || cl.Source == "store" || cl.Model != "" || cl.Kind == "bayes", "checks.classifier.model: the starter model is a bayes model; kind %s needs a model file", cl.Kind)
	check(!cl.Enabled || cl.Source != "store" || c.Store.DSN != "", "checks.classifier.source: store needs a store (store.dsn)")
	check(cl.Source != "store" || cl.Kind == "bayes", "checks.classifier.source: the store keeps bayes models only, not %s", cl.Kind)
	check(cl.Refresh.D() >= time.Second, "checks.classifier.refresh: %s is under 1s", cl.Refresh.D())
	check(cl.Learn.Interval.D() >= time.Second && cl.Learn.MaxPerPass > 0, "checks.classifier.learn: interval must be at least 1s and max_per_pass positive")
	for i, m := range cl.Learn.Maildirs {
		check(m.Path != "" && m.Junk != "" && !strings.Contains(m.Junk, "/"), "checks.classifier.learn.maildirs[%d]: path and junk (a folder name such as .Junk) are required", i)
	}
	check(oneOf(cl.Kind, "bayes", "ftrl"), "checks.classifier.kind: %q is not bayes or ftrl", cl.Kind)
	check(cl.Threshold > 0 && cl.Threshold < 1 && cl.Threshold <= cl.StrongThreshold && cl.StrongThreshold < 1,
		"checks.classifier: want 0 < threshold (%g) <= strong_threshold (%g) < 1", cl.Threshold, cl.StrongThreshold)
	check(cl.Weight >= 0 && cl.StrongWeight >= 0 && cl.StarterWeight >= 0 && cl.StarterUntil >= 0, "checks.classifier: weights and starter_until must not be negative")
	check(cl.RecipientMinLearns >= 1, "checks.classifier.recipient_min_learns must be at least 1")
	listed := map[string]bool{}
	for _, a := range c.Checks.Analyzers {
		check(oneOf(a, "phish", "classifier", "dnsbl", "reputation") && !listed[a], "checks.analyzers: %q is not phish, classifier, dnsbl or reputation, or is listed twice", a)
		listed[a] = true
	}
	// The classifier is on by default (the starter model): a list of
	// analyzers without it, as configs before it wrote, runs without it.
	for name, on := range map[string]bool{"phish": c.Checks.Phish.Enabled} {
		check(!on || listed[name], "checks.%s is enabled but not listed in checks.analyzers", name)
	}
	check(oneOf(c.Store.Driver, "sqlite", "postgres"), "store.driver: %q is not sqlite or postgres", c.Store.Driver)
	check(oneOf(c.Store.Subject, "keep", "hash"), "store.subject: %q is not keep or hash", c.Store.Subject)
	_, tzErr := c.Web.Location()
	check(tzErr == nil, "web.timezone: %v", tzErr)
	check(c.Store.Retention.Verdicts >= 0 && c.Store.Retention.Reports >= 0, "store.retention: durations must not be negative")
	check(!c.Reports.Send || c.Reports.Relay != "", "reports.relay: required when reports.send is on")
	check(c.Reports.Every > 0, "reports.every must be positive")
	check(!c.Reports.Failure.Send || c.Reports.Relay != "", "reports.relay: required when reports.failure.send is on")
	check(c.Reports.Failure.PerDomainPerHour > 0 && c.Reports.Failure.PerHour > 0, "reports.failure.per_domain_per_hour and per_hour must be at least 1")
	check(c.Reports.NewDomainsPerHour > 0 && c.Reports.NewDomainsPerDay > 0, "reports.new_domains_per_hour and new_domains_per_day must be at least 1")
	check(c.Reports.Inbound.PerReporterPerDay >= 0, "reports.inbound.per_reporter_per_day must not be negative")
	for i, s := range c.Checks.Signing {
		check(s.Domain != "" && s.Selector != "" && s.Key != "", "checks.signing[%d]: domain, selector and key are required", i)
	}
	for key, list := range map[string][]string{"policyd.skip_addresses": c.Policyd.SkipAddresses, "policyd.allow_ips": c.Policyd.AllowIPs, "lab_dns.axfr_allow": c.LabDNS.AXFRAllow,
		"checks.s25r_allow_ips": c.Checks.S25RAllowIPs, "checks.internal_hosts": c.Checks.InternalHosts, "greylist.allow_ips": c.Greylist.AllowIPs} {
		_, err := ParsePrefixes(list)
		check(err == nil, "%s: %v", key, err)
	}
	_, ncErr := ParsePrefixes(c.Checks.NotChecked)
	check(ncErr == nil, "checks.not_checked: %v", ncErr)
	check(len(c.Checks.Score.RejectText) <= 200 && !strings.ContainsFunc(c.Checks.Score.RejectText, func(r rune) bool { return r < 0x20 || r == 0x7f }),
		"checks.score.reject_text: at most 200 characters on one line")
	return errors.Join(errs...)
}

func oneOf(v string, options ...string) bool {
	for _, o := range options {
		if v == o {
			return true
		}
	}
	return false
}

// ParsePrefixes parses CIDRs; a bare address is a /32 or /128.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ReceiverName is the host name for headers.
func (c *Config) ReceiverName() string {
	if c.Hostname != "" {
		return c.Hostname
	}
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
}

// Redacted is the configuration in effect as YAML, with secrets masked:
// the dashboard's password hash and a database password in the DSN.
func (c *Config) Redacted() ([]byte, error) {
	cp := *c
	if cp.Web.PasswordHash != "" {
		cp.Web.PasswordHash = "(set)"
	}
	cp.Store.DSN = redactDSN(cp.Store.DSN)
	return yaml.Marshal(&cp)
}

var bcryptHash = regexp.MustCompile(`^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$`)

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// redactDSN masks the password of a PostgreSQL URL or key=value DSN.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.User != nil {
		dsn = u.Redacted()
	}
	return dsnPassword.ReplaceAllString(dsn, "${1}xxxxx")
}
