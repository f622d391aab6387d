package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/dkim"
	"mailwall/internal/migrate"
	"mailwall/internal/milter"
)

// The lab DNS of the import test listens on port 53 of its own loopback
// address: OpenDMARC's glibc resolver cannot use another port.
const importDNS = "127.0.0.9"

func requireOldStack(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"opendkim", "opendmarc", "policyd-spf", "postmap", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MAILWALL_E2E") == "1" {
				t.Fatalf("MAILWALL_E2E=1 but %s is not installed (apt-get install opendkim opendmarc postfix-policyd-spf-python postfix)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	if os.Geteuid() != 0 {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatal("MAILWALL_E2E=1 but not root: OpenDMARC's lab DNS needs port 53 and a mount namespace")
		}
		t.Skip("needs root")
	}
}

// TestImportGivesTheOldVerdicts lays out the old stack's configuration as
// Debian ships it with typical edits (policyd-spf, OpenDKIM with a
// KeyTable and SigningTable, OpenDMARC rejecting failures, main.cf with a
// HELO hash: table and S25R tables), runs the old daemons on it, runs
// "mailwall import" on the same files and mailwall on the result, and
// sends the same envelopes and messages to both: every verdict and every
// DKIM and DMARC result must agree.
func TestImportGivesTheOldVerdicts(t *testing.T) {
	requireOldStack(t)
	root, bin := e2eRoot(t, "mailwall-import-")
	etc := filepath.Join(root, "etc")
	for _, d := range []string{"postfix-policyd-spf-python", "opendkim/keys", "opendmarc", "postfix", "zones", "pylab"} {
		os.MkdirAll(filepath.Join(etc, d), 0o755)
	}
	write := func(rel, text string) string {
		p := filepath.Join(etc, rel)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "@ETC@", etc)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The key and the zones: corp.test signs and says p=reject, loose.test
	// says p=none, other.test is a stranger's with SPF of its own.
	keyDir := filepath.Join(etc, "opendkim/keys")
	if out, err := exec.Command(bin, "dkim", "keygen", "--domain", "corp.test", "--selector", "sel", "--algorithm", "rsa", "--bits", "2048", "--out", keyDir).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	keyRecord, _ := os.ReadFile(filepath.Join(keyDir, "sel.txt"))
	soa := "$TTL 60\n@ IN SOA ns.%[1]s. hostmaster.%[1]s. ( 1 3600 600 86400 60 )\n@ IN NS ns.%[1]s.\n"
	zone := func(name, body string) string {
		return write("zones/"+name+".zone", "$ORIGIN "+name+".\n"+fmt.Sprintf(soa, name)+body)
	}
	zones := []string{
		zone("corp.test", "ns A 127.0.0.9\nmail A 127.0.0.2\n@ TXT \"v=spf1 ip4:127.0.0.2 -all\"\n_dmarc TXT \"v=DMARC1; p=reject\"\n"+string(keyRecord)+"\n"),
		zone("loose.test", "ns A 127.0.0.9\n@ TXT \"v=spf1 ip4:127.0.0.2 -all\"\n_dmarc TXT \"v=DMARC1; p=none\"\n"),
		zone("other.test", "ns A 127.0.0.9\nrelay A 127.0.0.3\n@ TXT \"v=spf1 ip4:127.0.0.3 -all\"\n"),
		zone("isp.example", "ns A 127.0.0.9\np1234-dyn5 A 127.0.0.4\n"),
		zone("127.in-addr.arpa", "ns A 127.0.0.9\n2.0.0 PTR mail.corp.test.\n3.0.0 PTR relay.other.test.\n4.0.0 PTR p1234-dyn5.isp.example.\n"),
	}
	startProcess(t, "lab DNS listening", bin, append([]string{"lab-dns", "--listen", importDNS + ":53"}, zones...)...)

	// The old stack's files, as Debian ships them, with the edits an
	// admin makes. Lines marked "lab" only point the old daemons at the
	// lab DNS and keep them in the foreground.
	dkimPort, dmarcPort := freePort(t), freePort(t)
	policydConf := write("postfix-policyd-spf-python/policyd-spf.conf", `#  For a fully commented sample config file see policyd-spf.conf.commented

debugLevel = 1
TestOnly = 1

HELO_reject = Fail
Mail_From_reject = Fail

PermError_reject = False
TempError_Defer = False

skip_addresses = 127.0.0.1/32,::ffff:127.0.0.1/128,::1
Header_Type = AR
Authserv_Id = mx.rcpt.test
`)
	write("opendkim/key.table", "sel._domainkey.corp.test corp.test:sel:@ETC@/opendkim/keys/sel.private\n")
	write("opendkim/signing.table", "*@corp.test sel._domainkey.corp.test\n")
	write("opendkim/trusted.hosts", "127.0.0.1\n10.0.0.0/8\n")
	write("opendkim/unbound.conf", "server:\n  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n  local-zone: \"127.in-addr.arpa.\" nodefault\n")
	dkimConf := write("opendkim.conf", fmt.Sprintf(`Syslog			yes
SyslogSuccess		yes
Canonicalization	relaxed/simple
Mode			sv
OversignHeaders		From
KeyTable		refile:@ETC@/opendkim/key.table
SigningTable		refile:@ETC@/opendkim/signing.table
ExternalIgnoreList	@ETC@/opendkim/trusted.hosts
InternalHosts		@ETC@/opendkim/trusted.hosts
AuthservID		mx.rcpt.test
Socket			inet:%d@127.0.0.1
PidFile			@ETC@/opendkim.pid
# lab
Nameservers		%s
ResolverConfiguration	@ETC@/opendkim/unbound.conf
Background		no
`, dkimPort, importDNS))
	write("opendmarc/ignore.hosts", "127.0.0.1\n10.0.0.0/8\n")
	dmarcConf := write("opendmarc.conf", fmt.Sprintf(`AuthservID mx.rcpt.test
TrustedAuthservIDs mx.rcpt.test
PidFile @ETC@/opendmarc.pid
PublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat
Socket inet:%d@127.0.0.1
Syslog true
UMask 0002
IgnoreHosts @ETC@/opendmarc/ignore.hosts
RejectFailures true
SPFSelfValidate true
RequiredHeaders false
# lab
Background false
`, dmarcPort))
	write("postfix/helo_access", "spammer.example REJECT known spammer\n")
	write("postfix/s25r_allow", "mail.corp.test OK\n")
	write("postfix/s25r", `/^unknown$/                                   450 reverse DNS required
/^[^\.]*[0-9][^0-9\.]+[0-9]/                  450 S25R check, be patient
/^[^\.]*[0-9]{5}/                             450 S25R check, be patient
/^([^\.]+\.)?[0-9][^\.]*\.[^\.]+\..+\.[a-z]/  450 S25R check, be patient
/^[^\.]*[0-9]\.[^\.]*[0-9]-[0-9]/             450 S25R check, be patient
/^[^\.]*[0-9]\.[^\.]*[0-9]\.[^\.]+\..+\./     450 S25R check, be patient
/^(dhcp|dialup|ppp|[achrsvx]?dsl)[^\.]*[0-9]/ 450 S25R check, be patient
`)
	mainCF := write("postfix/main.cf", fmt.Sprintf(`smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
compatibility_level = 3.6
myhostname = mx.rcpt.test
mynetworks = 127.0.0.1/32 [::1]/128
smtpd_helo_required = yes
smtpd_client_restrictions = permit_mynetworks,
    check_client_access hash:$config_directory/s25r_allow,
    check_client_access regexp:$config_directory/s25r
smtpd_helo_restrictions = permit_mynetworks,
    check_helo_access hash:$config_directory/helo_access
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination,
    check_policy_service unix:private/policyd-spf
milter_default_action = accept
smtpd_milters = inet:127.0.0.1:%d, inet:127.0.0.1:%d
non_smtpd_milters = $smtpd_milters
`, dkimPort, dmarcPort))
	for _, table := range []string{"helo_access", "s25r_allow"} {
		if out, err := exec.Command("postmap", "-c", filepath.Join(etc, "postfix"), "hash:"+filepath.Join(etc, "postfix", table)).CombinedOutput(); err != nil {
			t.Fatalf("postmap: %v\n%s", err, out)
		}
	}

	// The old stack.
	startDaemonNoReady(t, "opendkim", "-f", "-x", dkimConf)
	write("opendmarc/resolv.conf", "nameserver "+importDNS+"\n")
	startDaemonNoReady(t, "unshare", "-m", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount --bind '%s' /etc/resolv.conf && exec opendmarc -f -c '%s'", filepath.Join(etc, "opendmarc/resolv.conf"), dmarcConf))
	write("pylab/sitecustomize.py", fmt.Sprintf(`import dns.resolver
_r = dns.resolver.Resolver(configure=False)
_r.nameservers = [%q]
_r.timeout = _r.lifetime = 5
dns.resolver.default_resolver = _r
`, importDNS))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", dkimPort))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", dmarcPort))

	// mailwall on the imported config, with only where it listens and
	// stores changed for the test.
	cfgPath := filepath.Join(root, "mailwall.yaml")
	out, err := exec.Command(bin, "import", "--policyd-spf", policydConf, "--opendkim", dkimConf, "--opendmarc", dmarcConf,
		"--main-cf", mainCF, "--out", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Logf("mailwall import:\n%s", out)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	milterAddr, policyAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.Hostname = "mx.rcpt.test"
	cfg.DNS.Servers = []string{importDNS + ":53"}
	cfg.Milter.Listen, cfg.Policyd.Listen = []string{"inet:" + milterAddr}, []string{"inet:" + policyAddr}
	cfg.Store.DSN = filepath.Join(root, "data", "mailwall.db")
	cfg.Web.Listen, cfg.Admin.Socket = "", ""
	data, err := migrate.YAML(cfg, "the imported config, listening where the test says")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfgPath, data, 0o600)
	startProcess(t, "milter listening", bin, "serve", "--config", cfgPath)

	signed := func(from string, tamper bool) string {
		msg := fmt.Sprintf("From: <%s>\r\nTo: <bob@rcpt.test>\r\nSubject: quarterly figures\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%d@corp.test>\r\n\r\nThe figures are attached as agreed.\r\n", from, time.Now().UnixNano())
		cmd := exec.Command(bin, "dkim", "sign", "--domain", "corp.test", "--selector", "sel", "--key", filepath.Join(keyDir, "sel.private"))
		cmd.Stdin = strings.NewReader(msg)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dkim sign: %v", err)
		}
		if tamper {
			out = bytes.Replace(out, []byte("as agreed"), []byte("as amended"), 1)
		}
		return string(out)
	}
	plain := func(from string) string {
		return fmt.Sprintf("From: <%s>\r\nTo: <bob@rcpt.test>\r\nSubject: invoice\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%d@other.test>\r\n\r\nPlease pay the attached invoice.\r\n", from, time.Now().UnixNano())
	}
	cases := []struct {
		name, ip, clientName, helo, mailFrom, message string
		want                                          string // the old stack's action, checked too
	}{
		{"signed, aligned", "127.0.0.2", "mail.corp.test", "mail.corp.test", "alice@corp.test", signed("alice@corp.test", false), "accept"},
		{"signature broken, SPF aligned", "127.0.0.2", "mail.corp.test", "mail.corp.test", "alice@corp.test", signed("alice@corp.test", true), "accept"},
		{"SPF fail", "127.0.0.3", "relay.other.test", "relay.other.test", "alice@corp.test", plain("alice@corp.test"), "reject"},
		{"DMARC fail, p=reject", "127.0.0.3", "relay.other.test", "relay.other.test", "bounce@other.test", plain("alice@corp.test"), "reject"},
		{"DMARC fail, p=none", "127.0.0.3", "relay.other.test", "relay.other.test", "bounce@other.test", plain("news@loose.test"), "accept"},
		{"HELO in the hash: table", "127.0.0.3", "relay.other.test", "spammer.example", "bounce@other.test", plain("x@other.test"), "reject"},
		{"S25R client name", "127.0.0.4", "p1234-dyn5.isp.example", "p1234-dyn5.isp.example", "x@isp.example", plain("x@isp.example"), "tempfail"},
	}
	for _, c := range cases {
		old := oldStackVerdict(t, etc, policydConf, dkimPort, dmarcPort, c.ip, c.clientName, c.helo, c.mailFrom, c.message)
		neu := mailwallVerdict(t, policyAddr, milterAddr, c.ip, c.clientName, c.helo, c.mailFrom, c.message)
		t.Logf("%-32s old stack %-40s mailwall %s", c.name, old, neu)
		if old.action != c.want {
			t.Errorf("%s: the old stack said %s, the test expects %s", c.name, old, c.want)
		}
		// A refused message carries no headers from the old stack: only
		// the actions compare then.
		if old.action != neu.action || old.action == "accept" && old != neu {
			t.Errorf("%s: old stack %s, mailwall %s", c.name, old, neu)
		}
	}
}

// verdict is what both stacks are compared on: the action, and the DKIM
// and DMARC results when the message got as far as its end.
type verdict struct{ action, dkim, dmarc string }

func (v verdict) String() string {
	return fmt.Sprintf("%s dkim=%s dmarc=%s", v.action, v.dkim, v.dmarc)
}

var arResult = regexp.MustCompile(`\b(dkim|dmarc)=([a-z]+)`)

// results reads dkim= and dmarc= out of Authentication-Results fields;
// a field that names no DKIM result (OpenDKIM on an unsigned message)
// reads as dkim=none.
func (v *verdict) results(ar string) {
	defer func() {
		if v.dkim == "" {
			v.dkim = "none"
		}
		if v.dmarc == "" {
			v.dmarc = "none"
		}
	}()
	for _, m := range arResult.FindAllStringSubmatch(strings.ToLower(ar), -1) {
		if m[1] == "dkim" && v.dkim == "" {
			v.dkim = m[2]
		}
		if m[1] == "dmarc" && v.dmarc == "" {
			v.dmarc = m[2]
		}
	}
}

// accessAction reads a Postfix access(5) result as an action.
func accessAction(result string) string {
	switch {
	case result == "":
		return ""
	case strings.HasPrefix(result, "4") || strings.HasPrefix(strings.ToUpper(result), "DEFER"):
		return "tempfail"
	case strings.HasPrefix(result, "5") || strings.HasPrefix(strings.ToUpper(result), "REJECT"):
		return "reject"
	}
	return ""
}

func replyAction(r milter.Reply) string {
	switch r.Code {
	case 'r':
		return "reject"
	case 't':
		return "tempfail"
	case 'y':
		return accessAction(r.Text)
	case 'd':
		return "discard"
	}
	return ""
}

// oldStackVerdict runs one message through what Postfix did with the old
// stack: its client and HELO tables (looked up by Postfix's postmap), then
// policyd-spf, then OpenDKIM and OpenDMARC, OpenDMARC seeing OpenDKIM's
// Authentication-Results as Postfix would pass them on.
func oldStackVerdict(t *testing.T, etc, policydConf string, dkimPort, dmarcPort int, ip, clientName, helo, mailFrom, message string) verdict {
	t.Helper()
	postmap := func(key, table string) string {
		out, _ := exec.Command("postmap", "-c", filepath.Join(etc, "postfix"), "-q", key, table).Output()
		return strings.TrimSpace(string(out))
	}
	if postmap(clientName, "hash:"+filepath.Join(etc, "postfix/s25r_allow")) == "" {
		if a := accessAction(postmap(clientName, "regexp:"+filepath.Join(etc, "postfix/s25r"))); a != "" {
			return verdict{action: a}
		}
	}
	if a := accessAction(postmap(helo, "hash:"+filepath.Join(etc, "postfix/helo_access"))); a != "" {
		return verdict{action: a}
	}
	cmd := exec.Command("policyd-spf", policydConf)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(etc, "pylab"))
	cmd.Stdin = strings.NewReader(policyRequest(ip, helo, mailFrom))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("policyd-spf: %v", err)
	}
	if a := accessAction(strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "action=")); a != "" {
		return verdict{action: a}
	}
	mods, r := milterSession(t, fmt.Sprintf("127.0.0.1:%d", dkimPort), ip, clientName, helo, mailFrom, message)
	var ar strings.Builder
	for _, m := range mods {
		if strings.EqualFold(m.Name, "Authentication-Results") {
			ar.WriteString(m.Value + "\n")
			message = "Authentication-Results: " + m.Value + "\r\n" + message
		}
	}
	if a := replyAction(r); a != "" {
		return verdict{action: a}
	}
	mods, r = milterSession(t, fmt.Sprintf("127.0.0.1:%d", dmarcPort), ip, clientName, helo, mailFrom, message)
	return endVerdict(ar.String(), mods, r)
}

// endVerdict reads the verdict at the end of a message: the reply, and
// the results in the Authentication-Results fields added (after earlier,
// those of milters before).
func endVerdict(earlier string, mods []milter.Modification, r milter.Reply) verdict {
	ar := earlier
	for _, m := range mods {
		if strings.EqualFold(m.Name, "Authentication-Results") {
			ar += m.Value + "\n"
		}
	}
	var v verdict
	v.results(ar)
	if v.action = replyAction(r); v.action == "" {
		v.action = "accept"
	}
	return v
}

// mailwallVerdict runs the same message through mailwall: the milter from
// the connection on (it answers at connect and HELO), the policy server at
// RCPT as Postfix asks it.
func mailwallVerdict(t *testing.T, policyAddr, milterAddr, ip, clientName, helo, mailFrom, message string) verdict {
	t.Helper()
	c, err := milter.Dial("tcp", milterAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []func() (milter.Reply, error){
		func() (milter.Reply, error) { return c.Connect(clientName, netip.MustParseAddr(ip), 40000) },
		func() (milter.Reply, error) { return c.Helo(helo) },
	} {
		r, err := step()
		if err != nil {
			t.Fatal(err)
		}
		if a := replyAction(r); a != "" {
			return verdict{action: a}
		}
	}
	if a := accessAction(strings.TrimPrefix(policyAsk(t, policyAddr, ip, helo, mailFrom), "action=")); a != "" {
		return verdict{action: a}
	}
	mods, r := finishSession(t, c, mailFrom, message)
	return endVerdict("", mods, r)
}

func policyRequest(ip, helo, sender string) string {
	return fmt.Sprintf("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=%s\nclient_name=unknown\nhelo_name=%s\nsender=%s\nrecipient=bob@rcpt.test\ninstance=%d\n\n", ip, helo, sender, time.Now().UnixNano())
}

// milterSession sends one whole message to a milter.
func milterSession(t *testing.T, addr, ip, clientName, helo, mailFrom, message string) ([]milter.Modification, milter.Reply) {
	t.Helper()
	c, err := milter.Dial("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Macro('C', "j", "mx.rcpt.test", "{daemon_name}", "mx.rcpt.test")
	if r, err := c.Connect(clientName, netip.MustParseAddr(ip), 40000); err != nil || replyAction(r) != "" {
		return nil, r
	}
	if r, err := c.Helo(helo); err != nil || replyAction(r) != "" {
		return nil, r
	}
	return finishSession(t, c, mailFrom, message)
}

// finishSession sends MAIL FROM, RCPT TO, the message and its end.
func finishSession(t *testing.T, c *milter.Client, mailFrom, message string) ([]milter.Modification, milter.Reply) {
	t.Helper()
	c.Macro('M', "i", fmt.Sprintf("Q%d", time.Now().UnixNano()%1e9))
	if r, err := c.Mail("<" + mailFrom + ">"); err != nil || replyAction(r) != "" {
		return nil, r
	}
	if r, err := c.Rcpt("<bob@rcpt.test>"); err != nil || replyAction(r) != "" {
		return nil, r
	}
	br := bufio.NewReader(strings.NewReader(message))
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if _, err := c.Header(f.Name, strings.ReplaceAll(f.Value(), "\r\n", "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.EndOfHeaders(); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(br)
	if _, err := c.Body(body); err != nil {
		t.Fatal(err)
	}
	mods, r, err := c.EndOfMessage()
	if err != nil {
		t.Fatal(err)
	}
	return mods, r
}

// startDaemonNoReady runs a daemon until the test ends; its output is
// shown when the test fails.
func startDaemonNoReady(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
