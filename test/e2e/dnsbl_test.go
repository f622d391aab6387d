package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// blZones writes the zones of the blocklist test: bl.test with an SPF
// record for loopback and a server with a forward-confirmed static name
// (mx.bl.test, 127.0.0.52); the lists: bl.lab.test lists 127.0.0.51
// (127.0.0.2, RFC 5782's listing code, with a TXT reason), wl.lab.test
// allow-lists 127.0.0.53 (127.0.10.2, dnswl.org's style). 127.0.0.53 and
// 127.0.0.54 have no PTR: rgrey greylists them.
func blZones(t *testing.T, dir string) []string {
	t.Helper()
	soa := func(o string) string {
		return "$ORIGIN " + o + "\n$TTL 300\n@ IN SOA ns1.bl.test. hostmaster.bl.test. ( 1 3600 600 86400 60 )\n@ IN NS ns1.bl.test.\n"
	}
	files := map[string]string{
		"bl.test.zone": soa("bl.test.") + `@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
ns1 IN A 127.0.0.1
mx IN A 127.0.0.52
`,
		"52.zone":          soa("52.0.0.127.in-addr.arpa.") + "@ IN PTR mx.bl.test.\n",
		"bl.lab.test.zone": soa("bl.lab.test.") + "51.0.0.127 IN A 127.0.0.2\n51.0.0.127 IN TXT \"listed in the lab\"\n2.0.0.127 IN A 127.0.0.2\n",
		"wl.lab.test.zone": soa("wl.lab.test.") + "53.0.0.127 IN A 127.0.10.2\n",
	}
	return writeZones(t, dir, files)
}

// blDropProxy is a DNS proxy on loopback that passes queries to upstream
// and never answers those for names under drop: a list that times out.
func blDropProxy(t *testing.T, upstream, drop string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := append([]byte(nil), buf[:n]...)
			go func() {
				var m dns.Msg
				if m.Unpack(q) != nil || len(m.Question) != 1 || dns.IsSubDomain(drop, m.Question[0].Name) {
					return
				}
				c, err := net.Dial("udp", upstream)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(q); err != nil {
					return
				}
				ans := make([]byte, 65535)
				if n, err := c.Read(ans); err == nil {
					pc.WriteTo(ans[:n], from)
				}
			}()
		}
	}()
	return pc.LocalAddr().String()
}

// TestDNSBLPostfix: through a real Postfix with check_policy_service at
// mailwall serve (lists from lab DNS, greylisting on in rgrey mode): a
// client listed in a lab list is refused at RCPT with 554 5.7.1 and the
// zone in the reply; an unlisted one is accepted; a list that never
// answers costs at most its budget and refuses no one (counted as an
// error); an allow-listed client that rgrey would greylist (no PTR) is
// not, while one not allow-listed is.
func TestDNSBLPostfix(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-bl-")
	t.Setenv("STATE_DIRECTORY", root)
	lab, _ := startLabDNS(t, bin, blZones(t, root)...)
	const budget = 300 * time.Millisecond
	d := startDaemon(t, bin, filepath.Join(root, "mw"), daemonSetup{dns: blDropProxy(t, lab, "slow.lab.test."), extra: fmt.Sprintf(`greylist:
  enabled: true
  client_name: dns
  delay: 60s
  allow_ips: []
dnsbl:
  ip_sites: ["bl.lab.test=127.0.0.[2..11]*3", "slow.lab.test", "wl.lab.test=127.0.[0..255].[2..3]*-4"]
  timeout: %s
  budget: %s
  reject_threshold: 3
  allowlist_threshold: -1
`, budget, budget)})
	smtpPort := freePort(t)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_recipient_restrictions = check_policy_service inet:%s\nsmtpd_policy_service_timeout = 30s", d.policy))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")

	t.Run("listed client refused at RCPT", func(t *testing.T) {
		err := send(smtpAddr, "127.0.0.51", "client.bl.test", "alice@bl.test", "bob@rcpt.test", "bl-listed")
		if smtpCode(err) != 554 {
			t.Fatalf("listed client: %v, want 554", err)
		}
		// Postfix puts "<rcpt>: Recipient address rejected:" before the
		// policy server's text.
		for _, want := range []string{"5.7.1 ", "Service unavailable; Client host [127.0.0.51] blocked using bl.lab.test"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("reply %q lacks %q", err, want)
			}
		}
	})
	t.Run("unlisted client accepted", func(t *testing.T) {
		if err := send(smtpAddr, "127.0.0.52", "mx.bl.test", "alice@bl.test", "bob@rcpt.test", "bl-clean"); err != nil {
			t.Fatalf("unlisted client: %v", err)
		}
		if msg := delivered(t, maildir, "bl-clean"); !strings.Contains(msg, "Received-SPF: Pass") {
			t.Errorf("accepted message lacks Received-SPF:\n%s", msg)
		}
	})
	t.Run("a list that times out costs at most its budget", func(t *testing.T) {
		start := time.Now()
		got := policyAsk(t, d.policy, "127.0.0.52", "mx.bl.test", "carol@bl.test")
		took := time.Since(start)
		if !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
			t.Errorf("answer %q, want SPF's", got)
		}
		// The budget, plus SPF's and the PTR's cached lookups.
		if took > budget+time.Second {
			t.Errorf("answered after %s, want at most the %s budget", took, budget)
		}
		t.Logf("answer with one list timing out: %s (budget %s)", took.Round(time.Millisecond), budget)
		if n := d.metric(t, `mailwall_dnsbl_lookups_total{outcome="error",zone="slow.lab.test"}`); n < 2 {
			t.Errorf("slow.lab.test errors counted: %v, want every check", n)
		}
		if n := d.metric(t, `mailwall_dnsbl_lookups_total{outcome="listed",zone="bl.lab.test"}`); n < 1 {
			t.Errorf("bl.lab.test listings counted: %v", n)
		}
		if n := d.metric(t, `mailwall_dnsbl_actions_total{action="reject"}`); n != 1 {
			t.Errorf("rejections counted: %v, want 1", n)
		}
	})
	t.Run("allow-listed client not greylisted", func(t *testing.T) {
		if err := send(smtpAddr, "127.0.0.53", "client.bl.test", "alice@bl.test", "bob@rcpt.test", "bl-allowed"); err != nil {
			t.Fatalf("allow-listed client without PTR: %v, want accepted", err)
		}
		delivered(t, maildir, "bl-allowed")
		err := send(smtpAddr, "127.0.0.54", "client.bl.test", "alice@bl.test", "bob@rcpt.test", "bl-grey")
		if smtpCode(err) != 450 || !strings.Contains(err.Error(), "Greylisted") {
			t.Errorf("client without PTR, not allow-listed: %v, want 450 greylisted", err)
		}
		if n := d.metric(t, `mailwall_dnsbl_actions_total{action="allowlisted"}`); n != 1 {
			t.Errorf("allow-listed counted: %v, want 1", n)
		}
	})
	d.alive(t)
}

// TestDNSBLLabRun: "mailwall lab run examples/lab-blocklist.yaml" serves
// the file's lists from lab DNS and prints the listed host refused at
// RCPT with the zone, the other accepted.
func TestDNSBLLabRun(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-bl-lab-")
	out, err := exec.Command(bin, "lab", "run", "../../examples/lab-blocklist.yaml", "--dir", filepath.Join(root, "lab"),
		"--dns", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--mx-port", "0").Output()
	if err != nil {
		t.Fatalf("lab run: %v\n%s", err, out)
	}
	t.Logf("lab run:\n%s", out)
	var listed, clean bool
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "bulk.shop.test":
			listed = strings.Contains(l, "refused") && strings.Contains(l, "554 5.7.1 Service unavailable; Client host [127.0.0.12] blocked using bl.rcpt.test")
		case len(f) > 0 && f[0] == "mail.shop.test":
			clean = strings.Contains(l, "accept") && strings.Contains(l, " 250 ")
		}
	}
	if !listed || !clean {
		t.Errorf("want bulk.shop.test refused with the zone and mail.shop.test accepted:\n%s", out)
	}
}
