package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/labtest"
	"mailwall/internal/pgtest"
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
	return writeZones(t, dir, files)
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

// TestGreylistTwoNodesPostgres: two "mailwall serve" (two MX hosts) on
// one PostgreSQL store greylist as one. Postfix's client_name=unknown (no
// forward-confirmed PTR) makes the client subject. Its first attempt is
// deferred by node 1, its early retry by node 2 (the delay begun on node
// 1), its retry after the delay accepted by node 2 and then by node 1;
// each node counts its own decisions in /metrics.
func TestGreylistTwoNodesPostgres(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-gl-pg-")
	dsn := pgtest.DSN(t)
	lab := labtest.Lab(t)
	t.Setenv("STATE_DIRECTORY", root) // the first-run password file, as the unit sets it
	setup := func(n int) daemonSetup {
		return daemonSetup{dns: lab, hostname: fmt.Sprintf("mx%d.rcpt.test", n), store: fmt.Sprintf("driver: postgres\n  dsn: %q", dsn),
			extra: "greylist:\n  enabled: true\n  delay: 2s\n  allow_ips: []\n"}
	}
	n1 := startDaemon(t, bin, filepath.Join(root, "mx1"), setup(1))
	n2 := startDaemon(t, bin, filepath.Join(root, "mx2"), setup(2))
	ask := func(d *daemon) string {
		return policyAsk(t, d.policy, "127.0.0.2", "mail.example.test", "alice@example.test")
	}
	const deferred = "action=DEFER_IF_PERMIT 4.7.1 Greylisted, see RFC 6647 (no forward-confirmed reverse DNS for 127.0.0.2): try again in "
	start := time.Now()
	if got := ask(n1); got != deferred+"2 seconds" {
		t.Fatalf("node 1, first attempt: %s", got)
	}
	if got := ask(n2); !strings.HasPrefix(got, deferred) {
		t.Fatalf("node 2, early retry: %s, want deferred (the triplet is node 1's)", got)
	}
	time.Sleep(time.Until(start.Add(2200 * time.Millisecond)))
	for _, d := range []*daemon{n2, n1} {
		if got := ask(d); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
			t.Fatalf("%s after the delay: %s, want passed", d.policy, got)
		}
	}
	for _, c := range []struct {
		d      *daemon
		sample string
		want   float64
	}{
		{n1, `mailwall_greylist_total{outcome="deferred"}`, 1},
		{n1, `mailwall_greylist_total{outcome="passed"}`, 1},
		{n2, `mailwall_greylist_total{outcome="deferred"}`, 1},
		{n2, `mailwall_greylist_total{outcome="passed"}`, 1},
	} {
		if got := c.d.metric(t, c.sample); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.d.web, c.sample, got, c.want)
		}
	}
}
