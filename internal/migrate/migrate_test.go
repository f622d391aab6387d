package migrate

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mailwall/internal/config"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
)

// layDebian copies testdata/debian into a temporary root, with @ROOT@ in
// the files replaced by it, and makes the signing key there.
func layDebian(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir("testdata/debian", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/debian", p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(root, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, rel), []byte(strings.ReplaceAll(string(data), "@ROOT@", root)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "etc/opendkim/keys/example.test")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dkim.WriteKeyFiles(dir, "sel", "example.test", key); err != nil {
		t.Fatal(err)
	}
	return root
}

func debianSources(root string) Sources {
	return Sources{
		PolicydSPF: filepath.Join(root, "etc/postfix-policyd-spf-python/policyd-spf.conf"),
		OpenDKIM:   filepath.Join(root, "etc/opendkim.conf"),
		OpenDMARC:  filepath.Join(root, "etc/opendmarc.conf"),
		MainCF:     filepath.Join(root, "etc/postfix/main.cf"),
		TableDir:   filepath.Join(root, "etc/mailwall/imported"),
	}
}

func TestImportDebian(t *testing.T) {
	root := layDebian(t)
	src := debianSources(root)
	res, err := Import(src)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	p := c.Policyd
	if p.HeloReject != "SPF_Not_Pass" || p.MailFromReject != "Fail" || p.PermErrorReject || !p.TempErrorDefer || !p.HideReceiver {
		t.Errorf("policyd reject settings: %+v", p)
	}
	if !slices.Equal(p.SkipAddresses, []string{"127.0.0.0/8", "::ffff:127.0.0.0/104", "::1", "192.0.2.0/28"}) ||
		!slices.Equal(p.AllowIPs, []string{"198.51.100.7"}) || !slices.Equal(p.AllowDomains, []string{"pobox.example"}) {
		t.Errorf("policyd lists: %q %q %q", p.SkipAddresses, p.AllowIPs, p.AllowDomains)
	}
	if c.SPF.Timeout.D().Seconds() != 10 || c.Checks.AuthServID != "mx.example.test" {
		t.Errorf("spf.timeout %v, authserv_id %q", c.SPF.Timeout.D(), c.Checks.AuthServID)
	}
	// InternalHosts (signed, not checked) apart from IgnoreHosts (neither
	// checked nor signed); the host name is left out.
	if want := []string{"127.0.0.1/32", "::1/128", "10.20.0.0/16"}; !slices.Equal(c.Checks.InternalHosts, want) {
		t.Errorf("internal_hosts %q, want %q", c.Checks.InternalHosts, want)
	}
	if want := []string{"127.0.0.1/32", "10.20.0.0/16", "10.30.0.0/16"}; !slices.Equal(c.Checks.NotChecked, want) {
		t.Errorf("not_checked %q, want %q", c.Checks.NotChecked, want)
	}
	key := filepath.Join(root, "etc/opendkim/keys/example.test/sel.private")
	wantSigning := []config.SigningConfig{{Domain: "example.test", Selector: "sel", Key: key}, {Domain: "example.org", Selector: "mail", Key: key}}
	if !slices.Equal(c.Checks.Signing, wantSigning) {
		t.Errorf("signing %+v, want %+v", c.Checks.Signing, wantSigning)
	}
	a := c.Checks.Actions
	if a.DMARCReject != "reject" || a.TempError != "tempfail" || a.DMARCQuarantine != "tag" || a.HeloInvalid != "reject" || a.S25R != "tempfail" || a.IPRevFail != "tempfail" {
		t.Errorf("actions %+v", a)
	}
	if !c.Checks.S25R || !c.Checks.DMARCPSL || c.Checks.Score.Quarantine != 0 || c.Checks.Score.Reject != 0 {
		t.Errorf("s25r %v, dmarc_psl %v, score %+v", c.Checks.S25R, c.Checks.DMARCPSL, c.Checks.Score)
	}
	if want := []string{`^(.*\.)?mail-out01\.example\.com$`}; !slices.Equal(c.Checks.S25RAllowNames, want) {
		t.Errorf("s25r_allow_names %q, want %q", c.Checks.S25RAllowNames, want)
	}
	if want := []string{"192.0.2.0/24", "198.51.100.17/32"}; !slices.Equal(c.Checks.S25RAllowIPs, want) {
		t.Errorf("s25r_allow_ips %q, want %q", c.Checks.S25RAllowIPs, want)
	}
	converted := filepath.Join(src.TableDir, "helo-helo_access.regexp")
	if want := []string{filepath.Join(root, "etc/postfix/helo_access.regexp"), converted}; !slices.Equal(c.Checks.HeloRegexpTables, want) {
		t.Errorf("helo tables %q, want %q", c.Checks.HeloRegexpTables, want)
	}

	// Every old setting has a line; those without an equivalent say why.
	report := Report(res.Mappings)
	for _, want := range []string{
		"Header_Type = AR", "HELO_Whitelist = relay.example.net", "On-BadSignature reject", "TrustedAuthservIDs mx.example.test",
		"mail.example.test", // the host name InternalHosts cannot take
		"*@*.example.org",   // the signing pattern with no equivalent
		"spam-host",         // the S25R table's own rule, left in Postfix
		"check_policy_service unix:private/policyd-spf",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, m := range res.Mappings {
		if !m.Mapped() && m.Note == "" {
			t.Errorf("%s: %q has no equivalent and no reason", m.File, m.Setting)
		}
	}

	// The written file reads back as the same configuration.
	data, err := YAML(c, "test")
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	again, _ := YAML(back, "test")
	if string(again) != string(data) {
		t.Errorf("round trip differs:\n%s\n---\n%s", data, again)
	}
	if strings.Contains(string(data), "password") || strings.Contains(string(data), "PRIVATE KEY") {
		t.Errorf("the config holds a secret:\n%s", data)
	}
}

// TestConvertedHeloTable: the hash: table converted to regexp: answers
// as Postfix's access lookups do: a domain key matches itself and its
// subdomains, a ".domain" key only subdomains, an address key the bare
// address and its literal.
func TestConvertedHeloTable(t *testing.T) {
	root := layDebian(t)
	res, err := Import(debianSources(root))
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, d := range res.Tables {
		data = d
	}
	tbl, err := conncheck.ParseRegexpTable(strings.NewReader(string(data)), "converted")
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	for helo, want := range map[string]string{
		"spammer.example":         "REJECT known spammer",
		"mx1.spammer.example":     "REJECT known spammer",
		"SPAMMER.example":         "REJECT known spammer",
		"notspammer.example":      "",
		"dyn.example.net":         "",
		"host1.dyn.example.net":   "450 try again later",
		"192.0.2.66":              "REJECT bad literal",
		"[192.0.2.66]":            "REJECT bad literal",
		"192.0.2.6":               "",
		"mail.legit.example.test": "",
	} {
		got, _ := tbl.Lookup(helo)
		if got != want {
			t.Errorf("%s: %q, want %q", helo, got, want)
		}
	}
}

func TestImportTestOnly(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "policyd-spf.conf")
	os.WriteFile(conf, []byte("TestOnly = 0\nHELO_reject = Fail\nMail_From_reject = Softfail\n"), 0o644)
	res, err := Import(Sources{PolicydSPF: conf})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Config.Policyd; p.HeloReject != "False" || p.MailFromReject != "False" {
		t.Errorf("TestOnly = 0 must reject nothing: %+v", p)
	}
}

// TestImportDefaults: OpenDKIM and OpenDMARC as Debian ships them (no
// InternalHosts, IgnoreHosts or RejectFailures) leave mail from 127.0.0.1
// alone and reject nothing; no policyd-spf means no policy listener.
func TestImportDefaults(t *testing.T) {
	dir := t.TempDir()
	dkimConf := filepath.Join(dir, "opendkim.conf")
	dmarcConf := filepath.Join(dir, "opendmarc.conf")
	os.WriteFile(dkimConf, []byte("Syslog\t\t\tyes\nSyslogSuccess\t\tyes\nCanonicalization\trelaxed/simple\nOversignHeaders\t\tFrom\nUserID\t\t\topendkim\nUMask\t\t\t007\nSocket\t\t\tlocal:/run/opendkim/opendkim.sock\nPidFile\t\t\t/run/opendkim/opendkim.pid\nTrustAnchorFile\t\t/usr/share/dns/root.key\n"), 0o644)
	os.WriteFile(dmarcConf, []byte("PidFile /run/opendmarc/opendmarc.pid\nPublicSuffixList /usr/share/publicsuffix/public_suffix_list.dat\nSocket local:/run/opendmarc/opendmarc.sock\nSyslog true\nUMask 0002\nUserID opendmarc\n"), 0o644)
	res, err := Import(Sources{OpenDKIM: dkimConf, OpenDMARC: dmarcConf})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	if !slices.Equal(c.Checks.InternalHosts, []string{"127.0.0.1/32"}) || !slices.Equal(c.Checks.NotChecked, []string{"127.0.0.1/32"}) ||
		c.Checks.Actions.DMARCReject != "tag" || len(c.Policyd.Listen) != 0 || len(c.Checks.Signing) != 0 {
		t.Errorf("internal %q, not_checked %q, dmarc_reject %q, policyd.listen %q, signing %v", c.Checks.InternalHosts, c.Checks.NotChecked,
			c.Checks.Actions.DMARCReject, c.Policyd.Listen, c.Checks.Signing)
	}
	// OpenDKIM's On-DNSError defaults to tempfail.
	if c.Checks.Actions.TempError != "tempfail" {
		t.Errorf("temperror %q, want OpenDKIM's default tempfail", c.Checks.Actions.TempError)
	}
}

// TestImportDNSError: OpenDKIM's On-DNSError, else On-Default, decides
// checks.actions.temperror, unless OpenDMARC's RejectFailures is stricter.
func TestImportDNSError(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ dkim, dmarc, want string }{
		{"On-DNSError accept\n", "", "accept"},
		{"On-Default accept\n", "", "accept"},
		{"On-Default accept\nOn-DNSError r\n", "", "reject"},
		{"On-DNSError accept\n", "RejectFailures true\n", "tempfail"},
		{"On-DNSError reject\n", "RejectFailures true\n", "reject"},
		{"On-DNSError discard\n", "", "accept"},
	} {
		dkimConf := filepath.Join(dir, "opendkim.conf")
		os.WriteFile(dkimConf, []byte("Mode v\n"+tc.dkim), 0o644)
		src := Sources{OpenDKIM: dkimConf}
		if tc.dmarc != "" {
			src.OpenDMARC = filepath.Join(dir, "opendmarc.conf")
			os.WriteFile(src.OpenDMARC, []byte(tc.dmarc), 0o644)
		}
		res, err := Import(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Config.Checks.Actions.TempError; got != tc.want {
			t.Errorf("%q %q: temperror %q, want %q", tc.dkim, tc.dmarc, got, tc.want)
		}
	}
	os.WriteFile(filepath.Join(dir, "bad.conf"), []byte("On-DNSError sometimes\n"), 0o644)
	if _, err := Import(Sources{OpenDKIM: filepath.Join(dir, "bad.conf")}); err == nil {
		t.Error("On-DNSError sometimes: no error")
	}
}

func TestImportErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	for name, src := range map[string]Sources{
		"missing file":       {OpenDKIM: filepath.Join(dir, "nope.conf")},
		"bad reject value":   {PolicydSPF: write("a.conf", "HELO_reject = Sometimes\n")},
		"line without =":     {PolicydSPF: write("b.conf", "HELO_reject Fail\n")},
		"bad boolean":        {OpenDMARC: write("c.conf", "RejectFailures maybe\n")},
		"keytable alone":     {OpenDKIM: write("d.conf", "KeyTable "+write("kt", "k example.test:s:/k\n")+"\n")},
		"unknown key name":   {OpenDKIM: write("e.conf", "KeyTable "+write("kt2", "k example.test:s:/k\n")+"\nSigningTable "+write("st", "example.test other\n")+"\n")},
		"ldap data set":      {OpenDKIM: write("f.conf", "InternalHosts ldap://ldap.example.test/\n")},
		"bad regexp table":   {MainCF: write("main.cf", "smtpd_helo_restrictions = check_helo_access regexp:"+write("bad.regexp", "/(/ REJECT\n")+"\n")},
		"dangling directive": {MainCF: write("main2.cf", "smtpd_helo_restrictions = check_helo_access\n")},
	} {
		if _, err := Import(src); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestImportClientRegexpTable: the rules of a regexp: client table are
// read as Postfix reads them (a pattern may hold spaces, carry flags, be
// negated or sit in an if block), not split at the first space.
func TestImportClientRegexpTable(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "client.regexp")
	os.WriteFile(table, []byte(`if /example/
/^a b$/  OK
endif
/^mx[0-9]+\.example\.net$/i OK
/^[^\.]*[0-9][^0-9\.]+[0-9]/i  450 S25R check
/^(dhcp|dialup|ppp|[achrsvx]?dsl)[^\.]*[0-9]/  450 S25R check
!/^(mail|mx)[0-9]*\./  WARN not a mail host name
/^late\.example$/ OK
`), 0o644)
	mainCF := filepath.Join(dir, "main.cf")
	os.WriteFile(mainCF, []byte("smtpd_client_restrictions = check_client_access regexp:"+table+"\n"), 0o644)
	res, err := Import(Sources{MainCF: mainCF, TableDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config.Checks
	if !c.S25R || c.Actions.S25R != "tempfail" {
		t.Errorf("s25r %v, action %q", c.S25R, c.Actions.S25R)
	}
	// The OK lines before the S25R rules are their exceptions (the one
	// with a space whole); the OK after them never applies to S25R.
	if want := []string{"^a b$", `^mx[0-9]+\.example\.net$`}; !slices.Equal(c.S25RAllowNames, want) {
		t.Errorf("allow names %q, want %q", c.S25RAllowNames, want)
	}
	report := Report(res.Mappings)
	if !strings.Contains(report, `other rules stay in Postfix: !/^(mail|mx)[0-9]*\./ WARN not a mail host name`) {
		t.Errorf("the negated rule is not reported as staying in Postfix:\n%s", report)
	}
}

// TestImportPolicyGroup: a Postfix 3.0 "{ address, settings }" group after
// check_policy_service is one argument; the restriction after it is still
// read.
func TestImportPolicyGroup(t *testing.T) {
	dir := t.TempDir()
	helo := filepath.Join(dir, "helo.regexp")
	os.WriteFile(helo, []byte("/^localhost$/ REJECT\n"), 0o644)
	mainCF := filepath.Join(dir, "main.cf")
	os.WriteFile(mainCF, []byte("smtpd_recipient_restrictions = reject_unauth_destination,\n    check_policy_service { unix:private/policyd-spf, default_action=DUNNO },\n    check_helo_access regexp:"+helo+"\n"), 0o644)
	res, err := Import(Sources{MainCF: mainCF, TableDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Config.Checks.HeloRegexpTables, []string{helo}) {
		t.Errorf("helo tables %q", res.Config.Checks.HeloRegexpTables)
	}
	var policy []Mapping
	for _, m := range res.Mappings {
		if strings.Contains(m.Setting, "check_policy_service") {
			policy = append(policy, m)
		}
	}
	if len(policy) != 1 || policy[0].Setting != "smtpd_recipient_restrictions: check_policy_service { unix:private/policyd-spf, default_action=DUNNO }" || policy[0].Becomes != "policyd.listen" {
		t.Errorf("policy mappings %+v", policy)
	}
}
