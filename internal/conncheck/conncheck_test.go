package conncheck

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

func TestIPRev(t *testing.T) {
	s := labtest.Serve(t,
		labtest.Zone(t, "example.test", "mail IN A 192.0.2.1", "liar IN A 192.0.2.99", "multi IN A 192.0.2.3"),
		labtest.Zone(t, "2.0.192.in-addr.arpa", "1 IN PTR mail.example.test.", "2 IN PTR liar.example.test.",
			"3 IN PTR gone.example.test.", "3 IN PTR multi.example.test."),
	)
	r := &dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}
	for _, tc := range []struct {
		ip, result, name string
	}{
		{"192.0.2.1", "pass", "mail.example.test"},
		{"192.0.2.2", "fail", ""},
		{"192.0.2.3", "pass", "multi.example.test"},
		{"192.0.2.4", "permerror", ""},
	} {
		got := CheckIPRev(context.Background(), r, netip.MustParseAddr(tc.ip))
		if got.Result != tc.result || got.Name != tc.name {
			t.Errorf("%s: %+v, want %s %s", tc.ip, got, tc.result, tc.name)
		}
	}
	silent := &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 50 * time.Millisecond, Attempts: 1}
	if got := CheckIPRev(context.Background(), silent, netip.MustParseAddr("192.0.2.1")); got.Result != "temperror" {
		t.Errorf("DNS timeout: %+v", got)
	}
}

func TestS25R(t *testing.T) {
	s, err := NewS25R(nil, []string{`\.trusted\.example$`}, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name, rule string
	}{
		{"p1234-ipad56.tokyo.ocn.example", "rule1"},
		{"yahoobb219000000000.bbtec.example", "rule2"},
		{"ea6-12.ppp.example.net", "rule1"},
		{"1-2-3-4.dyn.isp.example.net", "rule1"},
		{"p57a6b8c9.dip0.t-ipconnect.example", "rule1"},
		{"dhcp9-10.example.net", "rule1"},
		{"dialupx4.example.net", "rule6"},
		{"adsl7.example.net", "rule6"},
		{"mail.example.com", ""},
		{"mx1.example.com", ""},
		{"smtp2.mail.example.net", ""},
		{"3-4.x.example.com.tld", "rule1"},
		{"", "no verified host name"},
		{"unknown", "no verified host name"},
		{"pc12x34.office.trusted.example", ""},
	} {
		rule, matched := s.Match(ip, tc.name)
		if rule != tc.rule || matched != (tc.rule != "") {
			t.Errorf("%q: %q %v, want %q", tc.name, rule, matched, tc.rule)
		}
	}
	if _, matched := s.Match(netip.MustParseAddr("198.51.100.7"), "p1234-ipad56.tokyo.ocn.example"); matched {
		t.Error("allowed network matched")
	}
}

func TestHeloSyntax(t *testing.T) {
	for _, tc := range []struct {
		helo  string
		fqdn  bool
		reply string
	}{
		{"mail.example.com", true, ""},
		{"[192.0.2.1]", true, ""},
		{"[IPv6:2001:db8::1]", true, ""},
		{"under_score.example.com", true, ""},
		{"OEMCOMPUTER", false, ""},
		{"OEMCOMPUTER", true, "504 5.5.2 <OEMCOMPUTER>: Helo command rejected: need fully-qualified hostname"},
		{"192.0.2.1", true, "504 5.5.2 <192.0.2.1>: Helo command rejected: need fully-qualified hostname"},
		{"JUMPIN' JUPITER", false, "501 5.5.2 <JUMPIN' JUPITER>: Helo command rejected: Invalid name"},
		{"-bad.example.com", false, "501 5.5.2 <-bad.example.com>: Helo command rejected: Invalid name"},
		{"a..b", false, "501 5.5.2 <a..b>: Helo command rejected: Invalid name"},
		{"[999.1.1.1]", false, "501 5.5.2 <[999.1.1.1]>: Helo command rejected: Invalid name"},
		{"123.456", false, "501 5.5.2 <123.456>: Helo command rejected: Invalid name"},
	} {
		if got := HeloSyntax(tc.helo, tc.fqdn); got != tc.reply {
			t.Errorf("%q: %q, want %q", tc.helo, got, tc.reply)
		}
	}
}

const heloTable = `# HELO checks, written the way admins write them
/^(.+\.)?desctrl\.com$/     REJECT
/^localhost$/               550 5.7.1 You are not me
!/\./                       REJECT HELO must be a domain: $0
/^mx([0-9]+)\.partner\.example$/  OK
if /\.example\.net$/
/^dyn-/                     DEFER dynamic host $1 try later
/^([a-z]+)-relay\./          REJECT relay ${1} refused
endif
/CaseSensitive\.example$/i  REJECT exact case only
/^spam/
   REJECT continued result line
`

func TestRegexpTable(t *testing.T) {
	tab, err := ParseRegexpTable(strings.NewReader(heloTable), "helo_checks")
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "line 7") {
		t.Errorf("warnings %v, want one for line 7", tab.Warnings)
	}
	for _, tc := range []struct{ key, result string }{
		{"desctrl.com", "REJECT"},
		{"smtp.DESCTRL.com", "REJECT"},
		{"notdesctrl.com", ""},
		{"localhost", "550 5.7.1 You are not me"},
		{"OEMCOMPUTER", "REJECT HELO must be a domain: $0"},
		{"mx12.partner.example", "OK"},
		{"dyn-4.example.net", ""}, // $1 without a group: skipped, as Postfix does
		{"east-relay.example.net", "REJECT relay east refused"},
		{"east-relay.example.org", ""},
		{"host.CaseSensitive.example", "REJECT exact case only"},
		{"host.casesensitive.example", ""},
		{"spam.example.org", "REJECT continued result line"},
	} {
		got, ok := tab.Lookup(tc.key)
		if got != tc.result || ok != (tc.result != "") {
			t.Errorf("%q: %q %v, want %q", tc.key, got, ok, tc.result)
		}
	}
	d := ParseAction("REJECT")
	if got := d.Reply("Helo command", "desctrl.com"); got != "554 5.7.1 <desctrl.com>: Helo command rejected: Access denied" {
		t.Errorf("reply %q", got)
	}
	for _, tc := range []struct {
		action, kind, dsn, text string
		code                    int
	}{
		{"550 5.7.1 You are not me", "reject", "5.7.1", "You are not me", 550},
		{"421 try later", "defer", "4.7.1", "try later", 421},
		{"DEFER dynamic", "defer", "4.7.1", "dynamic", 450},
		{"REJECT go away", "reject", "5.7.1", "go away", 554},
		{"HOLD review", "hold", "", "review", 0},
		{"OK", "ok", "", "", 0},
		{"DUNNO", "dunno", "", "", 0},
		{"FILTER smtp:[127.0.0.1]:10025", "other", "", "FILTER smtp:[127.0.0.1]:10025", 0},
	} {
		d := ParseAction(tc.action)
		if d.Kind != tc.kind || d.DSN != tc.dsn || d.Text != tc.text || d.Code != tc.code {
			t.Errorf("%q: %+v", tc.action, d)
		}
	}
}

func TestRegexpTableErrors(t *testing.T) {
	for _, tc := range []struct{ table, want string }{
		{"/unclosed REJECT\n", "line 1: pattern"},
		{"# c\n/ok/ OK\n/(bad/ REJECT\n", "line 3"},
		{"/nores/\n", "no result"},
		{"if /a/\n/b/ OK\n", "if without endif"},
		{"endif\n", "endif without if"},
		{"/a/q REJECT\n", "unknown pattern flag"},
	} {
		_, err := ParseRegexpTable(strings.NewReader(tc.table), "t")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.table, err, tc.want)
		}
	}
}

// Postfix itself answers the same lookups: postmap -q KEY regexp:FILE.
func TestRegexpTableAgainstPostmap(t *testing.T) {
	if _, err := exec.LookPath("postmap"); err != nil {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatal("MAILWALL_E2E=1 but postmap (postfix) is missing")
		}
		t.Skip("postmap not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "helo_checks")
	// postmap does not expand $0; the rest of the table is compared.
	table := strings.Replace(heloTable, "!/\\./                       REJECT HELO must be a domain: $0", "!/\\./ REJECT HELO must be a domain", 1)
	os.WriteFile(path, []byte(table), 0o644)
	// An empty main.cf: postmap reads its configuration directory.
	os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644)
	tab, err := LoadRegexpTable(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"desctrl.com", "smtp.DESCTRL.com", "notdesctrl.com", "localhost", "OEMCOMPUTER", "mx12.partner.example",
		"dyn-4.example.net", "east-relay.example.net", "host.CaseSensitive.example", "host.casesensitive.example", "spam.example.org", "mail.example.com"} {
		cmd := exec.Command("postmap", "-c", dir, "-q", key, "regexp:"+path)
		out, err := cmd.Output()
		want := strings.TrimRight(string(out), "\n")
		if err != nil {
			want = "" // exit 1: not found
		}
		got, _ := tab.Lookup(key)
		if got != want {
			t.Errorf("%q: mailwall %q, postmap %q", key, got, want)
		}
	}
}
