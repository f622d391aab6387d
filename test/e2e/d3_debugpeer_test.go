package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// d3Fields signs a message from alice@domain and returns its fields as
// the milter gets them (values after the colon, LF folded), and its body
// (a link to menu.domain).
func d3Fields(t *testing.T, signer *dkim.Signer, domain, subject string) ([][2]string, string) {
	t.Helper()
	body := "See https://menu." + domain + "/today for lunch.\r\n"
	head := "From: Alice <alice@" + domain + ">\r\nTo: bob@rcpt.test\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@" + domain + ">\r\n" +
		"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
	sig, err := signer.Sign(strings.NewReader(head + "\r\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	var fields [][2]string
	for _, f := range strings.SplitAfter(strings.TrimSuffix(sig+head, "\r\n"), "\r\n") {
		if f == "" {
			continue
		}
		if f[0] == ' ' || f[0] == '\t' { // a folded line of the field before
			fields[len(fields)-1][1] += "\n" + strings.TrimSuffix(f, "\r\n")
			continue
		}
		name, value, _ := strings.Cut(strings.TrimSuffix(f, "\r\n"), ":")
		fields = append(fields, [2]string{name, value})
	}
	return fields, body
}

// d3SignedZone is domain's zone, with spf as its SPF record, a DMARC
// record at p=reject and an Ed25519 DKIM key at selector s1, and the
// signer for that key.
func d3SignedZone(t *testing.T, domain, spf string) (*labdns.Zone, *dkim.Signer) {
	t.Helper()
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := dkim.PublicKeyRecord(key)
	if err != nil {
		t.Fatal(err)
	}
	zone := labtest.Zone(t, domain, `@ IN TXT "`+spf+`"`, `_dmarc IN TXT "v=DMARC1; p=reject"`, dkim.ZoneRecord("s1", domain, rec))
	return zone, &dkim.Signer{Domain: domain, Selector: "s1", Key: key}
}

// d3DebugLines are the detail lines logged for client ip.
func d3DebugLines(log, ip string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "debug_peer=true") && strings.Contains(l, "client="+ip+" ") {
			out = append(out, l)
		}
	}
	return out
}

// TestD3DebugPeers: serve with log.debug_peers: [127.0.0.51]. A signed
// message and a policy request from 127.0.0.51 log their details (the
// policy request and answer, the DNS answers, DKIM's hashes, the rules'
// inputs), though log.level is warn; the same from 127.0.0.52 log none.
// A SIGHUP that adds 127.0.0.52 makes its next message logged in detail,
// with no "needs a restart" warning.
func TestD3DebugPeers(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-d3-debug-")
	zone, signer := d3SignedZone(t, "d3.test", "v=spf1 ip4:127.0.0.51 ip4:127.0.0.52 -all")
	dns := labtest.Serve(t, append(labtest.LabZones(t), zone)...)
	const peersLine = "log:\n  level: info\n"
	d := mhStartDaemon(t, bin, root, daemonSetup{dns: dns.Addr(), dnsTimeout: "2s"}, func(cfg string) string {
		if !strings.Contains(cfg, peersLine) {
			t.Fatalf("the config has no %q", peersLine)
		}
		// log.level warn: a debug peer's lines show all the same.
		return strings.Replace(cfg, peersLine, "log:\n  level: warn\n  debug_peers: [127.0.0.51]\n", 1)
	})
	send := func(ip, subject string) {
		t.Helper()
		fields, body := d3Fields(t, signer, "d3.test", subject)
		mods, reply := milterSend(t, d.milter, 30*time.Second, milterMsg{host: "mail.d3.test", ip: ip, queueID: "D3" + subject,
			from: "<alice@d3.test>", rcpt: "<bob@rcpt.test>", fields: fields, body: body})
		if ar := header(mods, "Authentication-Results"); reply.Code != 'c' || !strings.Contains(ar, "dkim=pass") || !strings.Contains(ar, "dmarc=pass") {
			t.Fatalf("%s: %c %s\n%s", ip, reply.Code, reply.Text, ar)
		}
	}
	waitLogged := func(ip, what string) []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			lines := d3DebugLines(d.log(), ip)
			if strings.Contains(strings.Join(lines, "\n"), what) {
				return lines
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s for %s in the log:\n%s", what, ip, d.log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if got := policyAsk(t, d.policy, "127.0.0.51", "mail.d3.test", "alice@d3.test"); !strings.HasPrefix(got, "action=") {
		t.Fatalf("policy answer: %s", got)
	}
	policyAsk(t, d.policy, "127.0.0.52", "mail.d3.test", "alice@d3.test")
	send("127.0.0.51", "one")
	send("127.0.0.52", "two")
	lines := waitLogged("127.0.0.51", `msg="debug: verdict"`)
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		`msg="debug: policy request"`, "client_address=127.0.0.51", `msg="debug: policy answer"`,
		`msg="debug: dns"`, `v=spf1 ip4:127.0.0.51 ip4:127.0.0.52 -all`, "name=s1._domainkey.d3.test", `v=DMARC1; p=reject`,
		`msg="debug: helo"`, `msg="debug: spf"`, `msg="debug: dkim"`, "bh_signed=", "bh_computed=",
		`msg="debug: dmarc"`, `msg="debug: analysis"`, "from_name_normalized=alice", "https://menu.d3.test/today",
		"analyzer=classifier", "strongest features:",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("127.0.0.51's detail lines lack %s", want)
		}
	}
	// The detail lines are written before the milter's reply: by now
	// 127.0.0.52's would be there.
	if got := d3DebugLines(d.log(), "127.0.0.52"); len(got) > 0 {
		t.Errorf("127.0.0.52 is not a debug peer, yet:\n%s", strings.Join(got, "\n"))
	}
	if strings.Contains(d.log(), "msg=message queue_id=D3one") {
		t.Errorf("log.level warn, yet the info line of a message is there")
	}

	b, err := os.ReadFile(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.cfg, []byte(strings.Replace(string(b), "debug_peers: [127.0.0.51]", "debug_peers: [127.0.0.51, 127.0.0.52/32]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// serve takes SIGHUP once it waits for signals (TestG1ReloadGreylistVia).
	time.Sleep(time.Second)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// "config reloaded" is an info line, not shown at warn: send until
	// the reload has made 127.0.0.52 a peer.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; len(d3DebugLines(d.log(), "127.0.0.52")) == 0; i++ {
		if time.Now().After(deadline) {
			d.alive(t)
			t.Fatalf("127.0.0.52 not logged in detail after the SIGHUP:\n%s", d.log())
		}
		send("127.0.0.52", "three"+strconv.Itoa(i))
		time.Sleep(100 * time.Millisecond)
	}
	waitLogged("127.0.0.52", "bh_computed=")
	if strings.Contains(d.log(), "need a restart") {
		t.Errorf("log.debug_peers alone asked for a restart:\n%s", d.log())
	}
	d.alive(t)
}
