package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailwall/internal/milter"
)

// g1Zones are glZones (gl.test, the dynamic-looking 127.0.0.41, the
// static mx.gl.test at 127.0.0.42, 127.0.0.43 without PTR) and lab
// lists: bl.g1.test lists 127.0.0.44, the allow list wl.g1.test lists
// 127.0.0.45 (no PTR either), zr.g1.test lists 127.0.0.46.
func g1Zones(t *testing.T, dir string) []string {
	t.Helper()
	soa := func(o string) string {
		return "$ORIGIN " + o + "\n$TTL 300\n@ IN SOA ns1.gl.test. hostmaster.gl.test. ( 1 3600 600 86400 60 )\n@ IN NS ns1.gl.test.\n"
	}
	zones := glZones(t, dir)
	return append(zones, writeZones(t, dir, map[string]string{
		"bl.g1.test.zone": soa("bl.g1.test.") + "44.0.0.127 IN A 127.0.0.2\n",
		"wl.g1.test.zone": soa("wl.g1.test.") + "45.0.0.127 IN A 127.0.10.2\n",
		"zr.g1.test.zone": soa("zr.g1.test.") + "46.0.0.127 IN A 127.0.0.2\n",
	})...)
}

// g1Score is the number in a message's X-Mailwall-Score.
func g1Score(t *testing.T, msg string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^X-Mailwall-Score: (-?\d+)`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no X-Mailwall-Score:\n%s", msg)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestG1MilterRcpt: a site whose Postfix asks the policy server only for
// SPF and leaves greylisting and the blocklists' thresholds to the
// milter (greylist.via: milter, dnsbl.rcpt_via: milter). Through a real
// Postfix: a dynamic-looking client gets the policy server's greylisting
// text at RCPT, from the milter (no "Recipient address rejected", which
// Postfix puts before a policy server's answer: the policy server does
// not greylist too), is accepted when it retries after the delay and is
// not greylisted again; a client on the lab blocklist is refused at RCPT
// with reject_rbl_client's text, and so is one listed in a zone whose
// weight is under the threshold but which has its own action
// (dnsbl.zone_actions); a client on the lab allow list (no PTR,
// so greylisted otherwise) is not greylisted and its X-Mailwall-Score is
// 40 lower than a static client's for the same message; a static client
// is never greylisted.
func TestG1MilterRcpt(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-g1-")
	dns, _ := startLabDNS(t, bin, g1Zones(t, root)...)
	d := startDaemon(t, bin, filepath.Join(root, "mw"), daemonSetup{dns: dns, dnsTimeout: "2s", extra: `greylist:
  enabled: true
  via: milter
  client_name: dns
  delay: 2s
  allow_ips: []
dnsbl:
  ip_sites: ["bl.g1.test*3", "wl.g1.test=127.0.10.2*-2", "zr.g1.test*1"]
  rcpt_via: milter
  reject_threshold: 3
  allowlist_threshold: -1
  zone_actions: {"zr.g1.test": reject}
`})
	smtpPort := freePort(t)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_recipient_restrictions = check_policy_service inet:%s\nsmtpd_policy_service_timeout = 30s\n"+
		"smtpd_milters = inet:%s\nmilter_default_action = tempfail\nmilter_protocol = 6", d.policy, d.milter))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")

	start := time.Now()
	t.Run("dynamic-looking client greylisted by the milter", func(t *testing.T) {
		err := send(smtpAddr, "127.0.0.41", "client.gl.test", "alice@gl.test", "bob@rcpt.test", "g1-dyn-1")
		want := "4.7.1 Greylisted, see RFC 6647 (host name 1-2-3-4.dyn.gl.test looks dynamic (S25R rule1)): try again in 2 seconds"
		if smtpCode(err) != 450 || !strings.Contains(err.Error(), want) {
			t.Fatalf("first attempt: %v, want 450 %s", err, want)
		}
		if strings.Contains(err.Error(), "Recipient address rejected") {
			t.Errorf("deferred by the policy server, not the milter: %v", err)
		}
	})
	t.Run("blocklisted client refused at RCPT", func(t *testing.T) {
		err := send(smtpAddr, "127.0.0.44", "client.gl.test", "alice@gl.test", "bob@rcpt.test", "g1-listed")
		want := "5.7.1 Service unavailable; Client host [127.0.0.44] blocked using bl.g1.test"
		if smtpCode(err) != 554 || !strings.Contains(err.Error(), want) {
			t.Fatalf("listed client: %v, want 554 %s", err, want)
		}
	})
	t.Run("client listed in a zone with its own action refused at RCPT", func(t *testing.T) {
		// Its weight (1) is under the threshold (3): the zone's action
		// refuses.
		err := send(smtpAddr, "127.0.0.46", "client.gl.test", "alice@gl.test", "bob@rcpt.test", "g1-zone")
		want := "5.7.1 Service unavailable; Client host [127.0.0.46] blocked using zr.g1.test"
		if smtpCode(err) != 554 || !strings.Contains(err.Error(), want) {
			t.Fatalf("listed client: %v, want 554 %s", err, want)
		}
	})
	var static int
	t.Run("static client not greylisted", func(t *testing.T) {
		if err := send(smtpAddr, "127.0.0.42", "mx.gl.test", "alice@gl.test", "bob@rcpt.test", "g1-static"); err != nil {
			t.Fatalf("send: %v", err)
		}
		static = g1Score(t, delivered(t, maildir, "g1-static"))
	})
	t.Run("DNSWL-listed client not greylisted, its score lower", func(t *testing.T) {
		if err := send(smtpAddr, "127.0.0.45", "mx.gl.test", "alice@gl.test", "bob@rcpt.test", "g1-dnswl"); err != nil {
			t.Fatalf("send: %v (an allow-listed client must not be greylisted)", err)
		}
		msg := delivered(t, maildir, "g1-dnswl")
		if !strings.Contains(msg, "dnswl:wl.g1.test=-40") {
			t.Errorf("no dnswl hit in the score:\n%s", msg)
		}
		// 127.0.0.45 has no PTR where 127.0.0.42 has one: iprev rules
		// may add to its score; the allow list must still take 40 off
		// whatever the rest is.
		got := g1Score(t, msg)
		t.Logf("X-Mailwall-Score: static client %d, DNSWL-listed client %d (iprev rules %d)", static, got, g1IPRevWeight(msg))
		if got > static-40+g1IPRevWeight(msg) {
			t.Errorf("score %d, want at most the static client's %d - 40 (+ iprev's rules)", got, static)
		}
	})
	t.Run("retry after the delay accepted, and not greylisted again", func(t *testing.T) {
		time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
		for _, subj := range []string{"g1-dyn-2", "g1-dyn-3"} {
			if err := send(smtpAddr, "127.0.0.41", "client.gl.test", "alice@gl.test", "bob@rcpt.test", subj); err != nil {
				t.Fatalf("%s: %v", subj, err)
			}
			delivered(t, maildir, subj)
		}
	})
	for sample, want := range map[string]float64{
		`mailwall_greylist_total{outcome="deferred"}`:                          1,
		`mailwall_greylist_total{outcome="passed"}`:                            2,
		`mailwall_dnsbl_lookups_total{outcome="listed",zone="bl.g1.test"}`:     1,
		`mailwall_dnsbl_lookups_total{outcome="listed",zone="wl.g1.test"}`:     1,
		`mailwall_dnsbl_lookups_total{outcome="not_listed",zone="bl.g1.test"}`: 1,
	} {
		if got := bmMetric(t, d, sample, want); got < want {
			t.Errorf("%s = %v, want at least %v", sample, got, want)
		}
	}
	if log := d.log(); !strings.Contains(log, "msg=greylist") || !strings.Contains(log, "outcome=deferred") {
		t.Errorf("the milter's greylisting is not logged:\n%s", log)
	}
	d.alive(t)
}

// g1IPRevWeight sums the weights of the rules in msg's X-Mailwall-Score
// that only a client without a verified PTR gets (auth_iprev_fail,
// auth_s25r).
func g1IPRevWeight(msg string) int {
	line := regexp.MustCompile(`(?m)^X-Mailwall-Score: .*(\r?\n\t.*)*`).FindString(msg)
	n := 0
	for _, m := range regexp.MustCompile(`\b(auth_iprev\w*|auth_s25r\w*)=(-?\d+)`).FindAllStringSubmatch(line, -1) {
		w, _ := strconv.Atoi(m[2])
		n += w
	}
	return n
}

// TestG1MilterRcptTimeout: with the blocklists' thresholds in the
// milter (dnsbl.rcpt_via: milter), a list that never answers costs the
// RCPT at most its budget (300 ms), refuses no one (the message is
// accepted) and is logged and counted as an error.
func TestG1MilterRcptTimeout(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-g1-slow-")
	lab, _ := startLabDNS(t, bin, g1Zones(t, root)...)
	d := startDaemon(t, bin, root, daemonSetup{dns: blDropProxy(t, lab, "slow.g1.test."), dnsTimeout: "2s", extra: `dnsbl:
  ip_sites: ["bl.g1.test*3", "slow.g1.test*3"]
  rcpt_via: milter
  reject_threshold: 3
  timeout: 300ms
  budget: 300ms
`})
	msg := func(queueID string) milterMsg {
		return milterMsg{host: "mx.gl.test", ip: "127.0.0.42", queueID: queueID, from: "<alice@gl.test>", rcpt: "<bob@rcpt.test>",
			fields: [][2]string{{"From", "Alice <alice@gl.test>"}, {"To", "bob@rcpt.test"}, {"Subject", "hello " + queueID}}, body: "Hello.\r\n"}
	}
	milterSend(t, d.milter, 10*time.Second, msg("G1W")) // the cache warm for SPF, the PTR and bl.g1.test
	start := time.Now()
	_, reply := milterSend(t, d.milter, 10*time.Second, msg("G1T")) // fails the test unless RCPT continues
	took := time.Since(start)
	t.Logf("a session with one list never answering: %s (budget 300ms at RCPT and again for the score)", took.Round(time.Millisecond))
	if !accepted(reply) {
		t.Errorf("reply %c, want the message accepted", reply.Code)
	}
	// The budget at RCPT, the budget again in the dnsbl analyzer (the
	// client's lists are asked for the score too), and slack.
	if took > 2*300*time.Millisecond+time.Second {
		t.Errorf("the session took %s, want at most twice the 300 ms budget and slack", took)
	}
	if got := bmMetric(t, d, `mailwall_dnsbl_lookups_total{outcome="error",zone="slow.g1.test"}`, 4); got < 4 {
		t.Errorf("slow.g1.test errors counted: %v, want 4 (RCPT and score, two messages)", got)
	}
	if log := d.log(); !strings.Contains(log, "msg=dnsbl") || !strings.Contains(log, "slow.g1.test: ") || !strings.Contains(log, "via=milter") {
		t.Errorf("the RCPT check's failing list is not logged:\n%s", log)
	}
	d.alive(t)
}

// g1Rcpt runs a milter session from ip up to its recipient and returns
// the milter's answer to RCPT.
func g1Rcpt(t *testing.T, addr, ip, rcpt string) milter.Reply {
	t.Helper()
	c, err := milter.Dial("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Connect("client.gl.test", netip.MustParseAddr(ip), 40000); err != nil {
		t.Fatal(err)
	}
	c.Helo("client.gl.test")
	if _, err := c.Mail("<alice@gl.test>"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Rcpt(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestG1ReloadGreylistVia: a SIGHUP that moves greylisting from the
// policy server to the milter (greylist.via) moves it: before, the
// policy server defers a client without PTR and the milter lets its
// recipient through; after, the milter defers and the policy server
// does not.
func TestG1ReloadGreylistVia(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-g1-reload-")
	dns, _ := startLabDNS(t, bin, g1Zones(t, root)...)
	d := startDaemon(t, bin, root, daemonSetup{dns: dns, dnsTimeout: "2s",
		extra: "greylist:\n  enabled: true\n  via: policy\n  client_name: dns\n  delay: 60s\n  allow_ips: []\n"})
	const greylisted = "action=DEFER_IF_PERMIT 4.7.1 Greylisted"
	if got := policyAsk(t, d.policy, "127.0.0.43", "client.gl.test", "alice@gl.test"); !strings.HasPrefix(got, greylisted) {
		t.Fatalf("policy server before: %s, want deferred", got)
	}
	if r := g1Rcpt(t, d.milter, "127.0.0.43", "<before@rcpt.test>"); r.Code != 'c' {
		t.Fatalf("milter before: %c %s, want continue", r.Code, r.Text)
	}
	b, err := os.ReadFile(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.cfg, []byte(strings.Replace(string(b), "via: policy", "via: milter", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// serve takes SIGHUP once it waits for signals, a moment after it
	// says the dashboard listens; a SIGHUP before that ends it (Go's
	// default): give it that moment.
	time.Sleep(time.Second)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.log(), "config reloaded") {
		if time.Now().After(deadline) {
			d.alive(t)
			t.Fatalf("no reload in the log:\n%s", d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := g1Rcpt(t, d.milter, "127.0.0.43", "<after@rcpt.test>"); r.Code != 'y' || !strings.HasPrefix(r.Text, "450 4.7.1 Greylisted") {
		t.Errorf("milter after: %c %s, want 450 4.7.1 Greylisted", r.Code, r.Text)
	}
	if got := policyAsk(t, d.policy, "127.0.0.43", "client.gl.test", "carol@gl.test"); strings.HasPrefix(got, greylisted) {
		t.Errorf("policy server after: %s, want no greylisting", got)
	}
	d.alive(t)
}

// TestG1MilterTarpit: with greylisting in the milter and a tarpit
// (taRgrey), a deferred recipient's answer waits the tarpit out; a
// client that is not greylisted goes on.
func TestG1MilterTarpit(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-g1-tarpit-")
	dns, _ := startLabDNS(t, bin, g1Zones(t, root)...)
	d := startDaemon(t, bin, root, daemonSetup{dns: dns, dnsTimeout: "2s",
		extra: "greylist:\n  enabled: true\n  via: milter\n  client_name: dns\n  delay: 60s\n  tarpit: 1s\n  allow_ips: []\n"})
	g1Rcpt(t, d.milter, "127.0.0.42", "<warm@rcpt.test>") // the PTR lookups cached
	start := time.Now()
	r := g1Rcpt(t, d.milter, "127.0.0.43", "<bob@rcpt.test>")
	if took := time.Since(start); r.Code != 'y' || !strings.HasPrefix(r.Text, "450 4.7.1 Greylisted") || took < time.Second {
		t.Errorf("deferred after %s: %c %s, want 450 4.7.1 Greylisted after the 1s tarpit", took, r.Code, r.Text)
	}
	if r := g1Rcpt(t, d.milter, "127.0.0.42", "<bob@rcpt.test>"); r.Code != 'c' {
		t.Errorf("static client: %c %s, want continue", r.Code, r.Text)
	}
}
