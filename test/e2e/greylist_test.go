package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// glZones writes the zones of the greylisting test: gl.test with an SPF
// record for loopback, a dynamic-looking host (1-2-3-4.dyn.gl.test,
// 127.0.0.41, matching S25R rule 1) and a server with a proper name
// (mx.gl.test, 127.0.0.42), each with its PTR; 127.0.0.43 has none.
func glZones(t *testing.T, dir string) []string {
	t.Helper()
	soa := "@ IN SOA ns1.gl.test. hostmaster.gl.test. ( 1 3600 600 86400 60 )\n@ IN NS ns1.gl.test.\n"
	files := map[string]string{
		"gl.test.zone": "$ORIGIN gl.test.\n$TTL 300\n" + soa + `@ IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
ns1 IN A 127.0.0.1
1-2-3-4.dyn IN A 127.0.0.41
mx IN A 127.0.0.42
`,
		"41.zone": "$ORIGIN 41.0.0.127.in-addr.arpa.\n$TTL 300\n" + soa + "@ IN PTR 1-2-3-4.dyn.gl.test.\n",
		"42.zone": "$ORIGIN 42.0.0.127.in-addr.arpa.\n$TTL 300\n" + soa + "@ IN PTR mx.gl.test.\n",
	}
	var paths []string
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestGreylistRgrey: through a real Postfix with check_policy_service
// pointing at mailwall serve (greylisting on, delay 2 s, the client's
// name verified through lab DNS as Postfix runs with
// smtpd_peername_lookup = no): a client whose name looks dynamic, and one
// with no PTR, get 450 4.7.1 with a reason; the dynamic one is accepted
// when it retries after the delay, and not greylisted for its next
// message; a client with a forward-confirmed, static-looking name is
// never greylisted.
func TestGreylistRgrey(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-gl-")
	dnsAddr, _ := startLabDNS(t, bin, glZones(t, root)...)
	policyPort, smtpPort := freePort(t), freePort(t)
	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`hostname: mx.rcpt.test
dns:
  servers: [%q]
  timeout: 300ms
  attempts: 1
policyd:
  listen: ["inet:127.0.0.1:%d"]
  skip_addresses: []
greylist:
  enabled: true
  client_name: dns
  delay: 2s
  allow_ips: []
milter:
  listen: []
store:
  dsn: %q
web:
  listen: ""
`, dnsAddr, policyPort, filepath.Join(root, "mailwall.db"))), 0o644)
	startProcess(t, "policy server listening", bin, "serve", "--config", cfg)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:%d\nsmtpd_policy_service_timeout = 30s", policyPort))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")

	glDeferred := func(t *testing.T, src, subject, reason string) {
		t.Helper()
		err := send(smtpAddr, src, "client.gl.test", "alice@gl.test", "bob@rcpt.test", subject)
		if smtpCode(err) != 450 || !strings.Contains(err.Error(), "4.7.1 ") {
			t.Fatalf("first attempt from %s: %v, want 450 4.7.1", src, err)
		}
		want := "Greylisted, see RFC 6647 (" + reason + "): try again in 2 seconds"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("reply %q lacks %q", err, want)
		}
	}

	start := time.Now()
	t.Run("dynamic-looking name deferred", func(t *testing.T) {
		glDeferred(t, "127.0.0.41", "gl-dyn-1", "host name 1-2-3-4.dyn.gl.test looks dynamic (S25R rule1)")
	})
	t.Run("no PTR deferred", func(t *testing.T) {
		glDeferred(t, "127.0.0.43", "gl-noptr-1", "no forward-confirmed reverse DNS for 127.0.0.43")
	})
	t.Run("forward-confirmed static name not greylisted", func(t *testing.T) {
		if err := send(smtpAddr, "127.0.0.42", "mx.gl.test", "alice@gl.test", "bob@rcpt.test", "gl-static"); err != nil {
			t.Fatalf("send: %v", err)
		}
		delivered(t, maildir, "gl-static")
	})
	t.Run("too early a retry deferred", func(t *testing.T) {
		if time.Since(start) > 1500*time.Millisecond {
			t.Skip("the machine is too slow to retry within the delay")
		}
		err := send(smtpAddr, "127.0.0.41", "client.gl.test", "alice@gl.test", "bob@rcpt.test", "gl-dyn-early")
		if smtpCode(err) != 450 {
			t.Fatalf("retry within the delay: %v, want 450", err)
		}
	})
	t.Run("retry after the delay accepted, and not greylisted again", func(t *testing.T) {
		time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
		if err := send(smtpAddr, "127.0.0.41", "client.gl.test", "alice@gl.test", "bob@rcpt.test", "gl-dyn-2"); err != nil {
			t.Fatalf("retry after the delay: %v", err)
		}
		msg := delivered(t, maildir, "gl-dyn-2")
		if !strings.Contains(msg, "Received-SPF: Pass") {
			t.Errorf("accepted message lacks Received-SPF:\n%s", msg)
		}
		if err := send(smtpAddr, "127.0.0.41", "client.gl.test", "alice@gl.test", "bob@rcpt.test", "gl-dyn-3"); err != nil {
			t.Fatalf("next message of the passed triplet: %v", err)
		}
		delivered(t, maildir, "gl-dyn-3")
	})
}
