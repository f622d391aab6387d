package migrate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/config"
)

// policydSPF maps policyd-spf.conf (policyd-spf.conf(5), 3.0) onto the
// policyd section: mailwall's policy server is its drop-in.
func (im *importer) policydSPF(path string) error {
	ds, err := readDirectives(path, "=")
	if err != nil {
		return err
	}
	p := &im.cfg.Policyd
	testOnly := false
	for _, d := range ds {
		setting := d.name + " = " + d.value
		add := func(becomes, note string) { im.add(path, d.line, setting, becomes, note) }
		list := splitList(d.value)
		switch strings.ToLower(d.name) {
		case "helo_reject", "mail_from_reject":
			var rp config.RejectPolicy
			if err := rp.UnmarshalYAML(scalar(d.value)); err != nil {
				return fmt.Errorf("migrate: %s, line %d: %s: %w", path, d.line, d.name, err)
			}
			if strings.EqualFold(d.name, "helo_reject") {
				p.HeloReject = rp
				add("policyd.helo_reject: "+string(rp), "")
			} else {
				if rp == "Null" {
					return fmt.Errorf("migrate: %s, line %d: Mail_From_reject = Null is for HELO_reject only", path, d.line)
				}
				p.MailFromReject = rp
				add("policyd.mail_from_reject: "+string(rp), "")
			}
		case "permerror_reject":
			b, err := parseBool(d.value)
			if err != nil {
				return fmt.Errorf("migrate: %s, line %d: %w", path, d.line, err)
			}
			p.PermErrorReject = b
			add(fmt.Sprintf("policyd.permerror_reject: %v", b), "")
		case "temperror_defer":
			b, err := parseBool(d.value)
			if err != nil {
				return fmt.Errorf("migrate: %s, line %d: %w", path, d.line, err)
			}
			p.TempErrorDefer = b
			add(fmt.Sprintf("policyd.temperror_defer: %v", b), "")
		case "skip_addresses":
			p.SkipAddresses = list
			add("policyd.skip_addresses: "+flow(list), "")
		case "whitelist":
			p.AllowIPs = list
			add("policyd.allow_ips: "+flow(list), "")
		case "domain_whitelist":
			p.AllowDomains = list
			add("policyd.allow_domains: "+flow(list), "")
		case "hide_receiver":
			b, err := parseBool(d.value)
			if err != nil {
				return fmt.Errorf("migrate: %s, line %d: %w", path, d.line, err)
			}
			p.HideReceiver = b
			add(fmt.Sprintf("policyd.hide_receiver: %v", b), "")
		case "reason_message":
			p.ReasonMessage = d.value
			add(fmt.Sprintf("policyd.reason_message: %q", d.value), "the same {rejectdefer} and {spf} fields; {url} is left as written")
		case "lookup_time":
			secs, err := strconv.Atoi(d.value)
			if err != nil || secs <= 0 {
				return fmt.Errorf("migrate: %s, line %d: Lookup_Time %q is not a number of seconds", path, d.line, d.value)
			}
			im.cfg.SPF.Timeout = config.Duration(time.Duration(secs) * time.Second)
			add("spf.timeout: "+time.Duration(im.cfg.SPF.Timeout).String(), "")
		case "void_limit":
			n, err := strconv.Atoi(d.value)
			if err != nil || n <= 0 {
				return fmt.Errorf("migrate: %s, line %d: Void_Limit %q is not a positive number", path, d.line, d.value)
			}
			im.cfg.SPF.MaxVoidLookups = n
			add(fmt.Sprintf("spf.max_void_lookups: %d", n), "")
		case "authserv_id":
			if strings.EqualFold(d.value, "HEADER") {
				// policyd-spf.conf(5): the Header_Type default's id, the host name.
				d.value = "HOSTNAME"
			}
			im.setAuthServID(path, d, setting)
		case "testonly":
			b, err := parseBool(d.value)
			if err != nil {
				return fmt.Errorf("migrate: %s, line %d: %w", path, d.line, err)
			}
			// policyd-spf.conf(5): TestOnly = 0 is the test mode (the
			// name reads backwards); 1, the default, rejects.
			testOnly = !b
			if testOnly {
				add("policyd.helo_reject: False, policyd.mail_from_reject: False", "TestOnly = 0 is policyd-spf's test mode: headers only, nothing rejected")
			} else {
				add("(the default)", "TestOnly = 1 is normal operation")
			}
		case "debuglevel":
			add("log.level", "mailwall logs each verdict at info and details at debug; debugLevel has no levels to match")
			if n, err := strconv.Atoi(d.value); err == nil && n >= 2 {
				im.cfg.Log.Level = "debug"
			}
		case "header_type":
			note := "the policy server prepends Received-SPF; the milter's Authentication-Results carry spf= for every message"
			if strings.EqualFold(d.value, "none") {
				note = "the policy server always prepends Received-SPF"
			}
			add("", note)
		case "mock":
			add("", "not needed: mailwall's milter does not read the policy server's header, it checks SPF itself")
		case "spf_enhanced_status_codes":
			add("", "mailwall always uses the RFC 7372 codes (5.7.23, 5.7.24)")
		case "helo_whitelist", "domain_whitelist_ptr", "no_mail", "reject_not_pass_domains", "prospective",
			"helo_pass_restriction", "mail_from_pass_restriction", "whitelist_lookup_time":
			add("", "not implemented by mailwall's policy server; keep the old policyd-spf for this or do without")
		default:
			add("", "unknown to policyd-spf.conf(5) 3.0; not imported")
		}
	}
	if testOnly {
		p.HeloReject, p.MailFromReject = "False", "False"
	}
	return nil
}

// splitList reads policyd-spf's comma-separated lists.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

func flow(list []string) string { return "[" + strings.Join(list, ", ") + "]" }
