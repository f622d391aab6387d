package migrate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/config"
)

// openDMARC maps opendmarc.conf (opendmarc.conf(5), 1.4).
func (im *importer) openDMARC(path string) error {
	ds, err := readDirectives(path, "")
	if err != nil {
		return err
	}
	get := byName(ds)
	boolOf := func(name string) (bool, error) {
		d, ok := get[name]
		if !ok {
			return false, nil
		}
		b, err := parseBool(d.value)
		if err != nil {
			return false, fmt.Errorf("migrate: %s, line %d: %s: %w", path, d.line, d.name, err)
		}
		return b, nil
	}
	reject, err := boolOf("rejectfailures")
	if err != nil {
		return err
	}
	hold, err := boolOf("holdquarantinedmessages")
	if err != nil {
		return err
	}
	if _, ok := get["ignorehosts"]; !ok {
		// opendmarc.conf(5): IgnoreHosts defaults to 127.0.0.1.
		im.cfg.Checks.NotChecked = appendNew(im.cfg.Checks.NotChecked, "127.0.0.1/32")
		im.add(path, 0, "IgnoreHosts (unset: 127.0.0.1)", "checks.not_checked: [127.0.0.1/32]", "OpenDMARC's default: mail from the host itself is not checked. "+notCheckedNote)
	}
	if _, ok := get["rejectfailures"]; !ok {
		im.add(path, 0, "RejectFailures (unset: false)", "checks.actions.dmarc_reject: tag", "OpenDMARC's default: a DMARC failure only adds Authentication-Results. mailwall's own default is reject: set it once you trust the results")
	}
	for _, d := range ds {
		setting := d.name + " " + d.value
		add := func(becomes, note string) { im.add(path, d.line, setting, becomes, note) }
		switch strings.ToLower(d.name) {
		case "rejectfailures":
			if reject {
				im.cfg.Checks.Actions.DMARCReject = "reject"
				im.raiseTempError("tempfail")
				add("checks.actions.dmarc_reject: reject, checks.actions.temperror: tempfail", "p=reject failures are rejected, and a check that cannot finish is deferred, as RejectFailures does")
			} else {
				add("checks.actions.dmarc_reject: tag", "headers only, as before; mailwall's own default is reject")
			}
		case "holdquarantinedmessages":
			if hold {
				im.cfg.Checks.Actions.DMARCQuarantine = "quarantine"
				add("checks.actions.dmarc_quarantine: quarantine", "p=quarantine failures go to Postfix's hold queue")
			} else {
				add("checks.actions.dmarc_quarantine: tag", "")
			}
		case "ignorehosts":
			entries, _, err := dataset(d.value)
			if err != nil {
				return fmt.Errorf("migrate: %s, line %d: %s: %w", path, d.line, d.name, err)
			}
			prefixes, skipped := hostsToPrefixes(entries)
			im.cfg.Checks.NotChecked = appendNew(im.cfg.Checks.NotChecked, prefixes...)
			becomes := "checks.not_checked: " + flow(prefixes)
			note := notCheckedNote
			if len(skipped) > 0 {
				note += "; not imported (addresses and CIDRs only): " + strings.Join(skipped, ", ")
			}
			add(becomes, note)
		case "ignoreauthenticatedclients":
			add("(always)", "mailwall never checks mail from SMTP AUTH clients: it signs it")
		case "authservid":
			im.setAuthServID(path, d, setting)
		case "trustedauthservids":
			add("", "mailwall checks SPF and DKIM itself and trusts no earlier Authentication-Results; forwarders' results count through ARC (checks.arc.trusted_sealers)")
		case "spfselfvalidate", "spfignoreresults":
			add("(always)", "mailwall checks SPF itself")
		case "publicsuffixlist":
			im.cfg.Checks.DMARCPSL = true
			add("checks.dmarc_psl: true", "Organizational Domains from the Public Suffix List (RFC 7489), as OpenDMARC finds them; mailwall's list is built in, the file is not read. Set false for RFC 9989's DNS tree walk, the current standard")
		case "failurereports":
			b, err := parseBool(d.value)
			if err != nil {
				return fmt.Errorf("migrate: %s, line %d: %w", path, d.line, err)
			}
			im.cfg.Reports.Failure.Send = b
			add(fmt.Sprintf("reports.failure.send: %v", b), "sent through reports.relay (default 127.0.0.1:25), rate-limited, local parts redacted (RFC 9991)")
		case "failurereportssentby":
			im.cfg.Reports.From = d.value
			add("reports.from: "+d.value, "")
		case "historyfile":
			add("(built in)", "mailwall keeps DMARC rows in its store and makes aggregate reports itself (reports.send: true), replacing opendmarc-import and opendmarc-reports")
		case "dnstimeout":
			secs, err := strconv.Atoi(d.value)
			if err != nil || secs <= 0 {
				return fmt.Errorf("migrate: %s, line %d: DNSTimeout %q is not a number of seconds", path, d.line, d.value)
			}
			im.cfg.DNS.Timeout = config.Duration(time.Duration(secs) * time.Second)
			add("dns.timeout: "+time.Duration(im.cfg.DNS.Timeout).String(), "")
		case "socket":
			add("milter.listen", "the milter listens on milter.listen; mailwall postfix-config prints the smtpd_milters change")
		case "syslog", "syslogsuccess", "syslogfacility", "milterdebug":
			add("log.level", "mailwall logs every verdict with its reasons (stderr, or the journal under systemd)")
		case "umask", "userid", "pidfile", "autorestart", "autorestartrate", "background", "changerootdirectory", "basedirectory", "enablecoredumps", "temporarydirectory":
			add("", "daemon housekeeping: the systemd unit of the mailwall package covers it")
		default:
			add("", "not imported: no mailwall equivalent")
		}
	}
	return nil
}

// notCheckedNote says what IgnoreHosts became.
const notCheckedNote = "Mail from these hosts is passed on with no checks and no signature, as OpenDMARC left it; " +
	"hosts that should also be signed belong in checks.internal_hosts (OpenDKIM's InternalHosts), which wins where both list a host"
