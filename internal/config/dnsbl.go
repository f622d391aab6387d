package config

import (
	"strings"
	"time"

	"mailwall/internal/dnsbl"
)

// validateDNSBL checks the dnsbl section: every site in postscreen's
// syntax, thresholds in postscreen's sense (postconf(5)
// postscreen_dnsbl_threshold, postscreen_dnsbl_allowlist_threshold), a
// budget the policy server can afford inside Postfix's
// smtpd_policy_service_timeout (100 s).
func (c *Config) validateDNSBL(check func(ok bool, format string, args ...any)) {
	d := c.DNSBL
	for _, list := range []struct {
		key   string
		sites []string
	}{{"dnsbl.ip_sites", d.IPSites}, {"dnsbl.domain_sites", d.DomainSites}} {
		for _, e := range list.sites {
			_, err := dnsbl.ParseSite(strings.TrimSpace(e))
			check(err == nil, "%s: %v", list.key, err)
		}
	}
	check(d.Timeout > 0 && d.Budget > 0 && d.Timeout <= d.Budget && d.Budget <= Duration(30*time.Second),
		"dnsbl: want 0 < timeout (%s) <= budget (%s) <= 30s", d.Timeout.D(), d.Budget.D())
	check(d.RejectThreshold >= 1, "dnsbl.reject_threshold must be at least 1 (postscreen_dnsbl_threshold)")
	check(d.AllowlistThreshold <= 0, "dnsbl.allowlist_threshold must be 0 (off) or negative (postscreen_dnsbl_allowlist_threshold)")
	check(d.GreylistThreshold >= 0, "dnsbl.greylist_threshold must not be negative (0: off)")
	check(oneOf(d.Action, "reject", "defer", "none"), "dnsbl.action: %q is not reject, defer or none", d.Action)
	check(strings.TrimSpace(d.Reply) != "", "dnsbl.reply must not be empty")
	check(oneOf(d.RcptVia, "policy", "milter"), "dnsbl.rcpt_via: %q is not policy or milter", d.RcptVia)
	for zone, act := range d.ZoneActions {
		_, err := dnsbl.ParseSite(strings.TrimSuffix(strings.TrimSpace(zone), "."))
		check(err == nil && oneOf(act, "reject", "defer"), "dnsbl.zone_actions: %q: %q: want a list's zone and reject or defer", zone, act)
	}
	check(d.ScoreWeight >= 1 && d.ScoreWeight <= 100, "dnsbl.score_weight: %d is not 1 to 100 (points per unit of weight)", d.ScoreWeight)
	for zone, name := range d.ReplyNames {
		check(zone != "" && name != "" && !strings.ContainsAny(name, "\r\n"), "dnsbl.reply_names: %q: want a zone and a one-line name", zone)
	}
}
