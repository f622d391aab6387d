package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/policyd"
)

// blocklistLab: one domain, two hosts; bl.rcpt.test lists the second
// with a reason, wl.rcpt.test (an allow list) the first.
const blocklistLab = `mx: {name: mx.rcpt.test, domain: rcpt.test}
domains:
  - name: a.test
    spf: "v=spf1 ip4:127.0.0.0/8 -all"
    hosts: [{name: good, ip: 127.0.0.21}, {name: bad, ip: 127.0.0.22}]
blocklists:
  - zone: bl.rcpt.test
    weight: 3
    listed: [{ip: 127.0.0.22, reason: "spam trap hits"}]
  - zone: wl.rcpt.test
    weight: -2
    listed: [{ip: 127.0.0.21, answer: 127.0.10.2}]
`

// TestLabBlocklists: a lab file's lists are served by lab DNS and asked
// by the MX at RCPT with the policy server's decision: the listed host is
// refused in reject_rbl_client's words, the other delivered.
func TestLabBlocklists(t *testing.T) {
	f, err := Parse([]byte(blocklistLab))
	if err != nil {
		t.Fatal(err)
	}
	f.DNS = "127.0.0.1:0"
	l, err := Start(f, Options{Dir: t.TempDir(), Pipeline: pipeline,
		Blocklists: policyd.Blocklists{RejectThreshold: 3, Reply: policyd.DefaultBlocklistReply + " ({reason})"}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rows, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Row{}
	for _, r := range rows {
		got[r.Host] = r
	}
	bad := got["bad.a.test"]
	if want := "554 5.7.1 Service unavailable; Client host [127.0.0.22] blocked using bl.rcpt.test (spam trap hits)"; bad.Action != "refused" || bad.Reply != want {
		t.Errorf("listed host: %s %q, want refused %q", bad.Action, bad.Reply, want)
	}
	if good := got["good.a.test"]; good.Action != "accept" || !strings.HasPrefix(good.Reply, "250 ") {
		t.Errorf("allow-listed host: %s %q, want accepted", good.Action, good.Reply)
	}
	var table strings.Builder
	WriteTable(&table, rows)
	if !strings.Contains(table.String(), "blocked using bl.rcpt.test") {
		t.Errorf("table does not show the refusal:\n%s", table.String())
	}
}

func TestLabBlocklistsInvalid(t *testing.T) {
	base := "mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, hosts: [{name: m, ip: 127.0.0.9}]}]\n"
	for _, tc := range []struct{ lists, want string }{
		{"blocklists: [{zone: a.test}]", "a domain already"},
		{"blocklists: [{zone: rcpt.test}]", "the mx domain"},
		{"blocklists: [{zone: test}]", "not a list domain"},
		{"blocklists: [{zone: bl.rcpt.test}, {zone: BL.rcpt.test.}]", "a blocklist already"},
		{"blocklists: [{zone: ../bl.test}]", "not a list domain"},
		{"blocklists: [{zone: bl.rcpt.test, listed: [{ip: 2001:db8::1}]}]", "not an IPv4"},
		{"blocklists: [{zone: bl.rcpt.test, listed: [{ip: 127.0.0.9, answer: 192.0.2.1}]}]", "127.0.0.0/8"},
		{"blocklists: [{zone: bl.rcpt.test, listed: [{ip: 127.0.0.9, reason: \"a\\nb\"}]}]", "control character"},
	} {
		if _, err := Parse([]byte(base + tc.lists)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.lists, err, tc.want)
		}
	}
}

// TestLabBlocklistZoneSymlink: a symlink planted where a list's zone file
// goes is replaced, never written through.
func TestLabBlocklistZoneSymlink(t *testing.T) {
	f, err := Parse([]byte(blocklistLab))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	target, unchanged := victim(t)
	os.MkdirAll(filepath.Join(dir, "zones"), 0o755)
	link := filepath.Join(dir, "zones", "bl.rcpt.test.zone")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Build(dir); err != nil {
		t.Fatal(err)
	}
	unchanged()
	b, err := os.ReadFile(link)
	if err != nil || !strings.Contains(string(b), "22.0.0.127 IN A 127.0.0.2") {
		t.Errorf("zone file: %q %v", b, err)
	}
}
