package migrate

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"mailwall/internal/config"
)

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

// dataset reads an OpenDKIM/OpenDMARC data set (opendkim.conf(5), "DATA
// SETS"): "file:" or "refile:" followed by a path, a bare absolute path,
// "csl:" or a plain comma-separated list. Files give one entry a line,
// comments and blank lines dropped. It says whether entries are refile:
// patterns; other kinds (db:, ldap:, lua:...) are an error naming them.
func dataset(value string) (entries []string, patterns bool, err error) {
	kind, rest, hasKind := strings.Cut(value, ":")
	if !hasKind || strings.HasPrefix(value, "/") {
		kind, rest = "", value
	}
	switch {
	case kind == "csl" || (kind == "" && !strings.HasPrefix(rest, "/")):
		for _, e := range strings.Split(rest, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
		return entries, false, nil
	case kind == "" || kind == "file" || kind == "refile":
		data, err := os.ReadFile(rest)
		if err != nil {
			return nil, false, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			if line = strings.TrimSpace(line); line != "" {
				entries = append(entries, line)
			}
		}
		return entries, kind == "refile", nil
	}
	return nil, false, fmt.Errorf("data set type %q is not read by mailwall import (file:, refile:, csl: and paths are)", kind+":")
}

// hostsToPrefixes turns an InternalHosts / IgnoreHosts list into CIDRs.
// Host names and negated entries have no CIDR: they come back in skipped.
func hostsToPrefixes(entries []string) (prefixes, skipped []string) {
	for _, e := range entries {
		switch {
		case strings.EqualFold(e, "localhost"):
			prefixes = appendNew(prefixes, "127.0.0.1/32", "::1/128")
		case strings.HasPrefix(e, "!"):
			skipped = append(skipped, e)
		default:
			if p, err := netip.ParsePrefix(e); err == nil {
				prefixes = appendNew(prefixes, p.Masked().String())
			} else if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
				prefixes = appendNew(prefixes, netip.PrefixFrom(a, a.BitLen()).String())
			} else {
				skipped = append(skipped, e)
			}
		}
	}
	return prefixes, skipped
}

// appendNew appends the values list does not hold yet.
func appendNew(list []string, values ...string) []string {
	for _, v := range values {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// addInternal adds CIDRs to checks.internal_hosts once each.
func (im *importer) addInternal(prefixes []string) {
	im.cfg.Checks.InternalHosts = appendNew(im.cfg.Checks.InternalHosts, prefixes...)
}

// internalHosts reads OpenDKIM's InternalHosts or OpenDMARC's IgnoreHosts
// (both data sets) into checks.internal_hosts. It returns what the setting
// became and the entries that have no CIDR.
func (im *importer) internalHosts(path string, d directive) (becomes string, skipped []string, err error) {
	entries, _, err := dataset(d.value)
	if err != nil {
		return "", nil, fmt.Errorf("migrate: %s, line %d: %s: %w", path, d.line, d.name, err)
	}
	prefixes, skipped := hostsToPrefixes(entries)
	im.addInternal(prefixes)
	return "checks.internal_hosts: " + flow(prefixes), skipped, nil
}

// defaultInternal records the daemons' default for an unset InternalHosts
// or IgnoreHosts: the host itself, 127.0.0.1.
func (im *importer) defaultInternal(path, setting, note string) {
	im.addInternal([]string{"127.0.0.1/32"})
	im.add(path, 0, setting, "checks.internal_hosts: [127.0.0.1/32]", note)
}

// openDKIM maps opendkim.conf (opendkim.conf(5), 2.11).
func (im *importer) openDKIM(path string) error {
	ds, err := readDirectives(path, "")
	if err != nil {
		return err
	}
	get := byName(ds)
	mode := "sv"
	if d, ok := get["mode"]; ok {
		mode = strings.ToLower(d.value)
	}
	signs := strings.Contains(mode, "s")
	if _, ok := get["internalhosts"]; !ok {
		// opendkim.conf(5): InternalHosts defaults to 127.0.0.1; mail
		// from there is signed and not verified.
		im.defaultInternal(path, "InternalHosts (unset: 127.0.0.1)", "OpenDKIM's default: mail from the host itself is signed, not checked")
	}
	for _, d := range ds {
		setting := d.name + " " + d.value
		add := func(becomes, note string) { im.add(path, d.line, setting, becomes, note) }
		switch strings.ToLower(d.name) {
		case "mode":
			note := ""
			if !strings.Contains(mode, "v") {
				note = "mailwall always verifies incoming mail; Mode without v has no equivalent"
			}
			if signs {
				add("checks.signing (mail from checks.internal_hosts and authenticated clients)", note)
			} else {
				add("(verify only: no checks.signing)", note)
			}
		case "internalhosts":
			becomes, skipped, err := im.internalHosts(path, d)
			if err != nil {
				return err
			}
			note := ""
			if len(skipped) > 0 {
				note = "not imported (checks.internal_hosts takes addresses and CIDRs only): " + strings.Join(skipped, ", ")
			}
			add(becomes, note)
		case "keytable", "signingtable", "keyfile", "selector", "domain":
			// Read together below, once all are known.
		case "externalignorelist":
			add("", "only quiets OpenDKIM's log line about external hosts sending as our domains; mailwall neither signs nor warns for them")
		case "authservid":
			im.setAuthServID(path, d, setting)
		case "alwaysaddarheader":
			add("(always)", "mailwall adds Authentication-Results to every checked message")
		case "canonicalization":
			add("", "mailwall signs relaxed/relaxed, which survives the usual rewrapping; verifying takes every canonicalization")
		case "signaturealgorithm":
			add("(by key type)", "rsa-sha256 for RSA keys, ed25519-sha256 (RFC 8463) for Ed25519 keys")
		case "oversignheaders":
			add("(built in)", "mailwall oversigns From, Subject and To")
		case "minimumkeybits":
			add("", "mailwall fails RSA keys under 1024 bits (RFC 8301), OpenDKIM's default too; a higher floor is not configurable")
		case "socket":
			add("milter.listen", "the milter listens on milter.listen; mailwall postfix-config prints the smtpd_milters change")
		case "syslog", "syslogsuccess", "syslogfacility", "logwhy", "logresults":
			add("log.level", "mailwall logs every verdict with its reasons (stderr, or the journal under systemd)")
		case "umask", "userid", "pidfile", "autorestart", "autorestartrate", "background", "changerootdirectory", "basedirectory":
			add("", "daemon housekeeping: the systemd unit of the mailwall package covers it")
		case "nameservers", "trustanchorfile", "resolverconfiguration":
			add("dns.servers", "mailwall has its own caching resolver; dns.servers names upstream servers (default: /etc/resolv.conf)")
		case "on-badsignature", "on-nosignature", "on-keynotfound", "on-signatureerror", "on-security":
			add("", "a DKIM result alone never rejects in mailwall (RFC 6376 §6.1: a bad signature counts as none); it feeds DMARC and the score")
		case "on-dnserror":
			// Read with On-Default below.
		case "on-internalerror":
			add("milter.on_error", "a failure inside mailwall follows milter.on_error (tempfail by default)")
		case "requiresafekeys":
			add("", "mailwall does not check key file modes when it starts; this import warns below of any key others can read")
		default:
			add("", "not imported: no mailwall equivalent")
		}
	}
	if err := im.openDKIMDNSError(path, get); err != nil {
		return err
	}
	if signs {
		signing, err := im.openDKIMSigning(path, get)
		if err != nil {
			return err
		}
		im.cfg.Checks.Signing = append(im.cfg.Checks.Signing, signing...)
	}
	return nil
}

// openDKIMDNSError maps what OpenDKIM does on a transient DNS error:
// On-DNSError, else On-Default, else tempfail (opendkim.conf(5)).
func (im *importer) openDKIMDNSError(path string, get map[string]directive) error {
	d, ok := get["on-dnserror"]
	if !ok {
		d, ok = get["on-default"]
	}
	setting := "On-DNSError (unset: tempfail)"
	value := "tempfail"
	if ok {
		setting, value = d.name+" "+d.value, strings.ToLower(d.value)
	}
	var action string
	switch value {
	case "a", "accept":
		action = "accept"
	case "t", "tempfail":
		action = "tempfail"
	case "r", "reject":
		action = "reject"
	case "q", "quarantine":
		action = "quarantine"
	case "d", "discard":
		im.add(path, d.line, setting, "", "mailwall never discards; checks.actions.temperror stays as the other daemons set it")
		return nil
	default:
		return fmt.Errorf("migrate: %s, line %d: %s: %q is not accept, discard, quarantine, reject or tempfail", path, d.line, d.name, d.value)
	}
	im.raiseTempError(action)
	im.add(path, d.line, setting, "checks.actions.temperror: "+im.cfg.Checks.Actions.TempError, "a DNS lookup that cannot finish; OpenDKIM's action, or a stricter one another file asked for")
	return nil
}

// setAuthServID takes policyd-spf's Authserv_Id or OpenDKIM's or
// OpenDMARC's AuthservID; "HOSTNAME" is mailwall's default, the host name.
func (im *importer) setAuthServID(path string, d directive, setting string) {
	if strings.EqualFold(d.value, "HOSTNAME") {
		im.add(path, d.line, setting, "checks.authserv_id: \"\" (the host name)", "")
		return
	}
	if im.authServIDSet && im.cfg.Checks.AuthServID != d.value {
		im.add(path, d.line, setting, "", fmt.Sprintf("checks.authserv_id is already %q from an earlier file; mailwall has one authserv-id", im.cfg.Checks.AuthServID))
		return
	}
	im.cfg.Checks.AuthServID = d.value
	im.authServIDSet = true
	im.add(path, d.line, setting, "checks.authserv_id: "+d.value, "")
}

// openDKIMSigning reads the keys: KeyTable with SigningTable, or the
// single-key Domain, Selector and KeyFile.
func (im *importer) openDKIMSigning(path string, get map[string]directive) ([]config.SigningConfig, error) {
	var out []config.SigningConfig
	kt, hasKT := get["keytable"]
	st, hasST := get["signingtable"]
	if hasKT || hasST {
		if !hasKT || !hasST {
			return nil, fmt.Errorf("migrate: %s: KeyTable and SigningTable go together", path)
		}
		keys := map[string]config.SigningConfig{}
		entries, _, err := dataset(kt.value)
		if err != nil {
			return nil, fmt.Errorf("migrate: %s, line %d: KeyTable: %w", path, kt.line, err)
		}
		for _, e := range entries {
			f := strings.Fields(e)
			parts := strings.SplitN(strings.Join(f[1:], " "), ":", 3)
			if len(f) < 2 || len(parts) != 3 {
				return nil, fmt.Errorf("migrate: %s: KeyTable entry %q is not \"name domain:selector:keyfile\"", kt.value, e)
			}
			keys[f[0]] = config.SigningConfig{Domain: strings.ToLower(parts[0]), Selector: parts[1], Key: parts[2]}
		}
		im.add(path, kt.line, kt.name+" "+kt.value, fmt.Sprintf("checks.signing (%d keys)", len(keys)), "keys referenced where they are, not copied")
		rows, patterns, err := dataset(st.value)
		if err != nil {
			return nil, fmt.Errorf("migrate: %s, line %d: SigningTable: %w", path, st.line, err)
		}
		var skipped []string
		for _, row := range rows {
			f := strings.Fields(row)
			if len(f) != 2 {
				return nil, fmt.Errorf("migrate: %s: SigningTable entry %q is not \"pattern keyname\"", st.value, row)
			}
			key, ok := keys[f[1]]
			if !ok {
				return nil, fmt.Errorf("migrate: %s: SigningTable entry %q names a key not in the KeyTable", st.value, row)
			}
			domain, ok := signingDomain(f[0], patterns)
			if !ok {
				skipped = append(skipped, f[0])
				continue
			}
			if domain != key.Domain {
				// d= is the key's domain; the From domain picks it.
				skipped = append(skipped, f[0]+" (signs as "+key.Domain+")")
				continue
			}
			if !slices.Contains(out, key) {
				out = append(out, key)
			}
		}
		note := "one key per From domain"
		if len(skipped) > 0 {
			note += "; not imported (mailwall picks a key by the exact From domain, signed as itself): " + strings.Join(skipped, ", ")
		}
		im.add(path, st.line, st.name+" "+st.value, fmt.Sprintf("checks.signing (%d domains)", len(out)), note)
	} else if kf, ok := get["keyfile"]; ok {
		dom, sel := get["domain"], get["selector"]
		if dom.value == "" || sel.value == "" {
			return nil, fmt.Errorf("migrate: %s, line %d: KeyFile needs Domain and Selector", path, kf.line)
		}
		domains, _, err := dataset(dom.value)
		if err != nil {
			return nil, fmt.Errorf("migrate: %s, line %d: Domain: %w", path, dom.line, err)
		}
		for _, d := range domains {
			out = append(out, config.SigningConfig{Domain: strings.ToLower(d), Selector: sel.value, Key: kf.value})
		}
		im.add(path, kf.line, "KeyFile "+kf.value+", Domain "+dom.value+", Selector "+sel.value, fmt.Sprintf("checks.signing (%d domains)", len(out)), "the key referenced where it is, not copied")
	}
	for _, s := range out {
		if err := checkKeyFile(s.Key); err != nil {
			im.add(path, 0, "key "+s.Key, "", "warning: "+err.Error())
		}
	}
	return out, nil
}

// signingDomain reads the From domain a SigningTable key applies to:
// "example.com", "*@example.com" or "user@example.com" as a plain lookup
// of the domain. Other refile patterns ("*.example.com", "*") have no
// equivalent.
func signingDomain(key string, refile bool) (string, bool) {
	local, domain, hasAt := strings.Cut(key, "@")
	if !hasAt {
		domain, local = key, "*"
	}
	if local != "*" || strings.ContainsAny(domain, "*?[") {
		return "", false
	}
	if !refile && hasAt {
		return "", false
	}
	return strings.ToLower(domain), domain != ""
}

// checkKeyFile warns of a key mailwall cannot read or that others can.
func checkKeyFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return fmt.Errorf("%s is readable by others (mode %v): chmod o-rwx it", filepath.Clean(path), fi.Mode().Perm())
	}
	return nil
}
