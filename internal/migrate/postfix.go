package migrate

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"mailwall/internal/conncheck"
)

// readMainCF reads main.cf's parameters: "name = value", continued on
// lines that start with white space, "#" comment lines (postconf(5)).
func readMainCF(path string) (map[string]directive, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	params := map[string]directive{}
	var last string
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("migrate: %s, line %d: continuation line with nothing to continue", path, i+1)
			}
			d := params[last]
			d.value += " " + trimmed
			params[last] = d
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("migrate: %s, line %d: no \"=\" in %q", path, i+1, line)
		}
		last = strings.TrimSpace(name)
		params[last] = directive{name: last, value: strings.TrimSpace(value), line: i + 1}
	}
	return params, nil
}

var paramRef = regexp.MustCompile(`\$(\{[a-z0-9_]+\}|\([a-z0-9_]+\)|[a-z0-9_]+)`)

// expand replaces $name, ${name} and $(name) with main.cf's values;
// config_directory defaults to main.cf's own directory.
func expand(v string, params map[string]directive, configDir string) string {
	for range 10 { // values may refer to values
		next := paramRef.ReplaceAllStringFunc(v, func(ref string) string {
			name := strings.Trim(ref[1:], "{}()")
			if d, ok := params[name]; ok {
				return d.value
			}
			if name == "config_directory" {
				return configDir
			}
			return ref
		})
		if next == v {
			break
		}
		v = next
	}
	return v
}

var restrictionLists = []string{"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
	"smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_data_restrictions"}

// mainCF maps the restrictions mailwall takes over: HELO access tables,
// S25R tables and their allow lists, HELO syntax and client name checks.
// Every other restriction stays in Postfix.
func (im *importer) mainCF(path string) error {
	params, err := readMainCF(path)
	if err != nil {
		return err
	}
	configDir := filepath.Dir(path)
	for _, list := range restrictionLists {
		d, ok := params[list]
		if !ok {
			continue
		}
		// postfixList keeps a "{ address, name=value }" group as one word,
		// as postfix-config's plan reads it.
		words := postfixList(expand(d.value, params, configDir))
		for i := 0; i < len(words); i++ {
			w := strings.ToLower(words[i])
			setting := list + ": " + w
			add := func(becomes, note string) { im.add(path, d.line, setting, becomes, note) }
			switch w {
			case "check_helo_access", "check_client_access", "check_policy_service":
				if i+1 == len(words) {
					return fmt.Errorf("migrate: %s, line %d: %s without a table", path, d.line, w)
				}
				i++
				setting += " " + words[i]
				var err error
				switch w {
				case "check_helo_access":
					err = im.heloAccess(path, d.line, setting, words[i])
				case "check_client_access":
					err = im.clientAccess(path, d.line, setting, words[i])
				default:
					if strings.Contains(words[i], "spf") {
						add("policyd.listen", "replaced by mailwall's policy server: mailwall postfix-config prints the change")
					} else {
						add("", "another policy service: it stays in Postfix")
					}
				}
				if err != nil {
					return err
				}
			case "reject_invalid_helo_hostname", "reject_invalid_hostname":
				im.cfg.Checks.Actions.HeloInvalid = "reject"
				add("checks.actions.helo_invalid: reject", "HELO names that are no host name or address literal are rejected (Postfix: 501)")
			case "reject_non_fqdn_helo_hostname", "reject_non_fqdn_hostname":
				im.cfg.Checks.HeloRequireFQDN = true
				im.cfg.Checks.Actions.HeloInvalid = "reject"
				add("checks.helo_require_fqdn: true, checks.actions.helo_invalid: reject", "Postfix: 504")
			case "reject_unknown_client_hostname", "reject_unknown_client":
				action := replyAction(expand(paramOr(params, "unknown_client_reject_code", "450"), params, configDir))
				im.cfg.Checks.Actions.IPRevFail = action
				add("checks.actions.iprev_fail: "+action, "a client without forward-confirmed reverse DNS (iprev, RFC 8601 §3)")
			case "reject_unknown_reverse_client_hostname":
				add("", "mailwall's iprev_fail is the stricter reject_unknown_client_hostname (a PTR that resolves back); this one stays in Postfix")
			}
		}
	}
	for _, name := range []string{"smtpd_milters", "non_smtpd_milters"} {
		if d, ok := params[name]; ok && d.value != "" {
			im.add(path, d.line, name+" = "+d.value, "milter.listen", "OpenDKIM's and OpenDMARC's sockets give way to mailwall's milter: mailwall postfix-config prints the change; other milters stay")
		}
	}
	return nil
}

func paramOr(params map[string]directive, name, def string) string {
	if d, ok := params[name]; ok {
		return d.value
	}
	return def
}

// replyAction maps a Postfix reply code or access action to mailwall's.
func replyAction(v string) string {
	switch d := conncheck.ParseAction(v); d.Kind {
	case "reject":
		return "reject"
	case "defer", "defer_if_permit", "defer_if_reject":
		return "tempfail"
	case "hold":
		return "quarantine"
	}
	return "tag"
}

// table splits "type:name".
func table(ref string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(ref, ":")
	if !ok {
		return "", "", fmt.Errorf("%q is not a type:name table", ref)
	}
	return strings.ToLower(kind), name, nil
}

// heloAccess takes a check_helo_access table: regexp: as it is, pcre:
// when it reads as regexp:, indexed tables converted from their source.
func (im *importer) heloAccess(path string, line int, setting, ref string) error {
	kind, name, err := table(ref)
	if err != nil {
		return fmt.Errorf("migrate: %s, line %d: %w", path, line, err)
	}
	switch kind {
	case "regexp", "pcre":
		if _, err := conncheck.LoadRegexpTable(name); err != nil {
			if kind == "pcre" {
				im.add(path, line, setting, "", fmt.Sprintf("this pcre: table does not read as a regexp: table (%v); keep it in Postfix or rewrite it", err))
				return nil
			}
			return fmt.Errorf("migrate: %s, line %d: %w", path, line, err)
		}
		note := "read in place, as Postfix reads it"
		if kind == "pcre" {
			note = "a pcre: table read as regexp: (same syntax here; no backreferences or lookaround)"
		}
		im.cfg.Checks.HeloRegexpTables = append(im.cfg.Checks.HeloRegexpTables, name)
		im.add(path, line, setting, "checks.helo_regexp_tables: + "+name, note)
	case "hash", "btree", "lmdb", "cdb", "texthash", "dbm":
		rules, err := convertIndexed(name)
		if err != nil {
			return fmt.Errorf("migrate: %s, line %d: %s: %w", path, line, ref, err)
		}
		out := filepath.Join(im.tableDir, "helo-"+filepath.Base(name)+".regexp")
		im.tables[out] = []byte(fmt.Sprintf("# Converted by mailwall import from %s (the source of %s), in the\n# order Postfix looks keys up. Edit the source and import again, or edit this.\n%s", name, ref, rules))
		im.cfg.Checks.HeloRegexpTables = append(im.cfg.Checks.HeloRegexpTables, out)
		im.add(path, line, setting, "checks.helo_regexp_tables: + "+out, "converted from the table's source text: a key matches itself and its subdomains (parent_domain_matches_subdomains)")
	default:
		im.add(path, line, setting, "", "table type "+kind+": is not read by mailwall; it stays in Postfix")
	}
	return nil
}

// convertIndexed turns the source of a hash:-style access table into
// regexp: rules with the same lookups for HELO names and client names.
func convertIndexed(path string) (string, error) {
	entries, err := readAccessSource(path, true)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s\n", keyPattern(e.key), e.value)
	}
	return b.String(), nil
}

type accessEntry struct{ key, value string }

// readAccessSource reads postmap(1) input: "key value", continued on
// lines that start with white space.
func readAccessSource(path string, fold bool) ([]accessEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []accessEntry
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].value += " " + trimmed
			continue
		}
		key, value, _ := strings.Cut(strings.Join(strings.Fields(trimmed), " "), " ")
		if value == "" {
			return nil, fmt.Errorf("line %d: key %q has no value", i+1, key)
		}
		if fold {
			key = strings.ToLower(key) // postmap folds keys to lower case
		}
		out = append(out, accessEntry{key, value})
	}
	return out, nil
}

// keyPattern is the regexp: pattern matching what an access(5) key
// matches: an address (bracketed or not, for HELO literals), a domain
// and its subdomains, or (".domain") subdomains only.
func keyPattern(key string) string {
	if a, err := netip.ParseAddr(key); err == nil {
		return "/^\\[?" + regexp.QuoteMeta(a.String()) + "\\]?$/"
	}
	if strings.HasPrefix(key, ".") {
		return "/" + regexp.QuoteMeta(key) + "$/"
	}
	return "/^(.*\\.)?" + regexp.QuoteMeta(key) + "$/"
}

// s25rFragments are pieces of the six S25R rules as Postfix tables write
// them (http://www.gabacho-net.jp/en/anti-spam/), back-slashes dropped.
var s25rFragments = []string{
	"^[^.]*[0-9][^0-9.]+[0-9]",
	"^[^.]*[0-9]{5}",
	"^([^.]+.)?[0-9][^.]*.[^.]+..+.[a-z]",
	"^[^.]*[0-9].[^.]*[0-9]-[0-9]",
	"^[^.]*[0-9].[^.]*[0-9].[^.]+..+.",
	"^(dhcp|dialup|ppp|[achrsvx]?dsl)[^.]*[0-9]",
}

// clientAccess takes a check_client_access table when it is an S25R
// table or an allow list for one; other client tables stay in Postfix.
func (im *importer) clientAccess(path string, line int, setting, ref string) error {
	kind, name, err := table(ref)
	if err != nil {
		return fmt.Errorf("migrate: %s, line %d: %w", path, line, err)
	}
	type rule struct{ pattern, value string }
	var rules []rule
	switch kind {
	case "regexp", "pcre":
		tbl, err := conncheck.LoadRegexpTable(name)
		if err != nil {
			im.add(path, line, setting, "", fmt.Sprintf("unreadable as a regexp: table (%v); it stays in Postfix", err))
			return nil
		}
		for _, r := range tbl.Rules() {
			pattern := "/" + r.Pattern + "/"
			if r.Negate {
				pattern = "!" + pattern // never an S25R rule or an allow entry
			}
			rules = append(rules, rule{pattern, r.Result})
		}
	case "hash", "btree", "lmdb", "cdb", "texthash", "dbm":
		entries, err := readAccessSource(name, true)
		if err != nil {
			return fmt.Errorf("migrate: %s, line %d: %s: %w", path, line, ref, err)
		}
		for _, e := range entries {
			rules = append(rules, rule{"=" + e.key, e.value})
		}
	default:
		im.add(path, line, setting, "", "table type "+kind+": is not read by mailwall; it stays in Postfix")
		return nil
	}
	var s25r, allow, other int
	var s25rAction, unknownAction string
	var allowNames, allowIPs, rest []string
	for _, r := range rules {
		norm := strings.ReplaceAll(strings.Trim(r.pattern, "/"), "\\", "")
		switch {
		case strings.HasPrefix(r.pattern, "!"):
			other++
			rest = append(rest, r.pattern+" "+r.value)
		case isS25R(norm):
			s25r++
			s25rAction = replyAction(r.value)
		case norm == "^unknown$":
			unknownAction = replyAction(r.value)
		case isOK(r.value) && s25r == 0:
			// First match wins: an OK before the S25R rules is an
			// exception to them; one after them changes nothing for S25R.
			allow++
			if key, ok := strings.CutPrefix(r.pattern, "="); ok {
				if p, ok := partialIP(key); ok {
					allowIPs = append(allowIPs, p)
				} else {
					allowNames = append(allowNames, strings.TrimSuffix(strings.TrimPrefix(keyPattern(key), "/"), "/"))
				}
			} else {
				allowNames = append(allowNames, strings.Trim(r.pattern, "/"))
			}
		default:
			other++
			rest = append(rest, strings.TrimPrefix(r.pattern, "=")+" "+r.value)
		}
	}
	switch {
	case s25r >= 2:
		im.cfg.Checks.S25R = true
		im.cfg.Checks.Actions.S25R = s25rAction
		becomes := "checks.s25r: true, checks.actions.s25r: " + s25rAction
		if unknownAction != "" {
			im.cfg.Checks.Actions.IPRevFail = unknownAction
			becomes += ", checks.actions.iprev_fail: " + unknownAction
		}
		if len(allowNames)+len(allowIPs) > 0 {
			im.cfg.Checks.S25RAllowNames = append(im.cfg.Checks.S25RAllowNames, allowNames...)
			im.cfg.Checks.S25RAllowIPs = append(im.cfg.Checks.S25RAllowIPs, allowIPs...)
			becomes += fmt.Sprintf(", checks.s25r_allow_names (+%d), checks.s25r_allow_ips (+%d)", len(allowNames), len(allowIPs))
		}
		note := fmt.Sprintf("an S25R table (%d of its rules): mailwall's S25R rules are the same six; its OK lines before them are their exceptions", s25r)
		if len(rest) > 0 {
			note += "; other rules stay in Postfix: " + strings.Join(rest, "; ")
		}
		im.add(path, line, setting, becomes, note)
	case allow > 0 && other == 0:
		im.cfg.Checks.S25RAllowNames = append(im.cfg.Checks.S25RAllowNames, allowNames...)
		im.cfg.Checks.S25RAllowIPs = append(im.cfg.Checks.S25RAllowIPs, allowIPs...)
		im.add(path, line, setting, fmt.Sprintf("checks.s25r_allow_names (+%d), checks.s25r_allow_ips (+%d)", len(allowNames), len(allowIPs)),
			"an allow list (every entry OK): these clients skip the S25R rules")
	default:
		im.add(path, line, setting, "", "a client access table that is neither S25R nor an allow list: it stays in Postfix")
	}
	return nil
}

func isS25R(pattern string) bool {
	for _, f := range s25rFragments {
		if strings.HasPrefix(strings.ToLower(pattern), f) {
			return true
		}
	}
	return false
}

func isOK(action string) bool {
	a := strings.ToUpper(strings.Fields(action + " x")[0])
	return a == "OK" || a == "PERMIT"
}

// partialIP reads an access(5) address key: a full address, or the
// first one to three octets of an IPv4 network ("192.0.2").
func partialIP(key string) (string, bool) {
	if a, err := netip.ParseAddr(key); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String(), true
	}
	if p, err := netip.ParsePrefix(key); err == nil {
		return p.Masked().String(), true
	}
	parts := strings.Split(key, ".")
	if len(parts) < 1 || len(parts) > 3 {
		return "", false
	}
	for len(parts) < 4 {
		parts = append(parts, "0")
	}
	a, err := netip.ParseAddr(strings.Join(parts, "."))
	if err != nil {
		return "", false
	}
	return netip.PrefixFrom(a, 8*len(strings.Split(key, "."))).String(), true
}
