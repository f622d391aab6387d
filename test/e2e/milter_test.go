package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/milter"
	"mailwall/internal/store"
)

// sendMessage delivers a prepared message (header and body) over SMTP from
// source address src.
func sendMessage(smtpAddr, src, helo, from, to, message string) error {
	return sendAs(smtpAddr, src, helo, nil, from, to, message)
}

// sendAs is sendMessage with SMTP AUTH when auth is not nil.
func sendAs(smtpAddr, src, helo string, auth smtp.Auth, from, to, message string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", smtpAddr)
	if err != nil {
		return err
	}
	c, err := smtp.NewClient(conn, "mx.rcpt.test")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return err
	}
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(message)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// plainAuth is SASL PLAIN (RFC 4616) without net/smtp's refusal to send
// it in clear to a host not named localhost: the lab runs on loopback.
type plainAuth struct{ user, password string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.password), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, fmt.Errorf("unexpected server challenge")
	}
	return nil, nil
}

// saslConfig writes a Cyrus SASL sasldb with one user and the smtpd.conf
// that points Postfix's smtpd at it, and returns the main.cf lines.
func saslConfig(t *testing.T, root, user, realm, password string) string {
	if _, err := exec.LookPath("saslpasswd2"); err != nil {
		t.Fatal("saslpasswd2 not installed (apt-get install sasl2-bin libsasl2-modules)")
	}
	// Debian's Postfix looks for smtpd.conf in $config_directory/sasl
	// whatever cyrus_sasl_config_path says; other builds follow the
	// parameter. Both name this directory.
	dir := filepath.Join(root, "etc", "sasl")
	os.MkdirAll(dir, 0o755)
	db := filepath.Join(dir, "sasldb2")
	cmd := exec.Command("saslpasswd2", "-p", "-c", "-f", db, "-u", realm, user)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("saslpasswd2: %v\n%s", err, out)
	}
	exec.Command("chown", "postfix", db).Run()
	conf := fmt.Sprintf("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: %s\n", db)
	os.WriteFile(filepath.Join(dir, "smtpd.conf"), []byte(conf), 0o644)
	return fmt.Sprintf("smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\ncyrus_sasl_config_path = %s\nsmtpd_sasl_local_domain = %s\n", dir, realm)
}

func TestPostfixMilter(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-milter-")

	// A signing key for example.test, published in its own lab zone.
	key, err := dkim.GenerateKey("rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv, txt, err := dkim.WriteKeyFiles(root, "e2e", "example.test", key)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := os.ReadFile(txt)
	keyZone := filepath.Join(root, "_domainkey.example.test.zone")
	os.WriteFile(keyZone, []byte("$ORIGIN example.test.\n$TTL 300\n_domainkey IN SOA ns1 hostmaster 1 3600 600 86400 60\n"+string(rec)), 0o644)
	heloTable := filepath.Join(root, "helo_checks")
	os.WriteFile(heloTable, []byte("/^(.+\\.)?desctrl\\.com$/ REJECT\n"), 0o644)

	dnsAddr, _ := startLabDNS(t, bin, "_domainkey.example.test="+keyZone)
	milterPort, smtpPort := freePort(t), freePort(t)

	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(milterConfig(dnsAddr, milterPort)+fmt.Sprintf(`checks:
  helo_regexp_tables: [%q]
  internal_hosts: ["127.0.0.4/32"]
  signing:
    - domain: example.test
      selector: e2e
      key: %q
store:
  dsn: %q
web:
  listen: ""
`, heloTable, priv, filepath.Join(root, "mailwall.db"))), 0o644)
	startProcess(t, "milter listening", bin, "serve", "--config", cfg)
	sasl := saslConfig(t, root, "alice", "example.test", "lab-password")
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:127.0.0.1:%d\nmilter_default_action = tempfail\nmilter_protocol = 6\n%s", milterPort, sasl))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")
	body := func(subject string) string {
		return fmt.Sprintf("From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: %s\r\nMessage-ID: <%d@example.test>\r\n\r\nHello Bob.\r\n", subject, time.Now().UnixNano())
	}
	signer := &dkim.Signer{Domain: "example.test", Selector: "e2e", Key: key}

	t.Run("signed aligned message delivered with spf, dkim and dmarc pass", func(t *testing.T) {
		m := body("milter-pass")
		sig, err := signer.Sign(strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		if err := sendMessage(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", sig+m); err != nil {
			t.Fatalf("send: %v", err)
		}
		got := delivered(t, maildir, "milter-pass")
		for _, want := range []string{"Authentication-Results: mx.rcpt.test;", "spf=pass smtp.mailfrom=alice@example.test", "dkim=pass header.d=example.test header.s=e2e", "dmarc=pass (p=reject dis=none) header.from=example.test", "X-Mailwall-Verdict: pass"} {
			if !strings.Contains(got, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, got)
			}
		}
	})

	t.Run("p=reject domain from an unlisted host, unsigned: 550", func(t *testing.T) {
		err := sendMessage(smtpAddr, "127.0.0.3", "stranger.example.org", "alice@example.test", "bob@rcpt.test", body("milter-reject"))
		if smtpCode(err) != 550 {
			t.Fatalf("got %v, want 550", err)
		}
	})

	t.Run("HELO in the regexp table: 554", func(t *testing.T) {
		err := sendMessage(smtpAddr, "127.0.0.3", "mail.desctrl.com", "x@desctrl.test", "bob@rcpt.test", body("milter-helo"))
		if smtpCode(err) != 554 || !strings.Contains(err.Error(), "Helo command rejected: Access denied") {
			t.Fatalf("got %v, want 554 Helo command rejected", err)
		}
	})

	verifySigned := func(t *testing.T, subject string) string {
		got := delivered(t, maildir, subject)
		if !strings.Contains(got, "DKIM-Signature: v=1; a=rsa-sha256") {
			t.Fatalf("no signature:\n%s", got)
		}
		res := dnsx.NewCache(&dnsx.Client{Servers: []string{dnsAddr}, Timeout: time.Second}, dnsx.CacheOptions{})
		r, err := (&dkim.Verifier{Resolver: res}).Verify(context.Background(), strings.NewReader(got))
		if err != nil || len(r) != 1 || r[0].Status != dkim.Pass {
			t.Errorf("signature on the delivered copy: %+v %v", r, err)
		}
		return got
	}

	t.Run("mail from an internal host is signed on its way", func(t *testing.T) {
		if err := sendMessage(smtpAddr, "127.0.0.4", "laptop.example.test", "alice@example.test", "bob@rcpt.test", body("milter-signed")); err != nil {
			t.Fatalf("send: %v", err)
		}
		verifySigned(t, "milter-signed")
	})

	t.Run("authenticated submission is signed on its way", func(t *testing.T) {
		// 127.0.0.5 is not internal: only the SASL login makes it ours.
		auth := plainAuth{"alice@example.test", "lab-password"}
		if err := sendAs(smtpAddr, "127.0.0.5", "roaming.example.net", auth, "alice@example.test", "bob@rcpt.test", body("milter-auth")); err != nil {
			t.Fatalf("send: %v", err)
		}
		got := verifySigned(t, "milter-auth")
		if !strings.Contains(got, "smtp.auth=alice@example.test") {
			t.Errorf("no auth result in the delivered copy:\n%s", got)
		}
	})

	t.Run("mailwall send-test: signed, delivered, dkim=pass", func(t *testing.T) {
		out, err := exec.Command(bin, "send-test", "--from", "alice@example.test", "--to", "bob@rcpt.test", "--server", smtpAddr,
			"--source-ip", "127.0.0.2", "--helo", "mail.example.test", "--selector", "e2e", "--key", priv, "--subject", "milter-sendtest").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "C: MAIL FROM:<alice@example.test>") || !strings.Contains(string(out), "accepted: 250") {
			t.Fatalf("send-test: %v\n%s", err, out)
		}
		got := delivered(t, maildir, "milter-sendtest")
		for _, want := range []string{"dkim=pass header.d=example.test header.s=e2e", "dmarc=pass", "MIME-Version: 1.0"} {
			if !strings.Contains(got, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, got)
			}
		}
	})

	t.Run("mailwall send-test: refused spoof exits 1 with the reply", func(t *testing.T) {
		out, err := exec.Command(bin, "send-test", "--from", "alice@example.test", "--to", "bob@rcpt.test", "--server", smtpAddr,
			"--source-ip", "127.0.0.3", "--helo", "stranger.example.org").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "refused: 550 5.7.1") {
			t.Fatalf("send-test: %v\n%s", err, out)
		}
	})

	t.Run("look-alike that passes SPF and DMARC p=none: held by its score", func(t *testing.T) {
		m := "From: update-account@amozonjp-update.test\r\nTo: bob@rcpt.test\r\nSubject: milter-phish\r\n" +
			fmt.Sprintf("Message-ID: <%d@amozonjp-update.test>\r\n\r\nPlease update your account.\r\n", time.Now().UnixNano())
		if err := sendMessage(smtpAddr, "127.0.0.5", "mail.amozonjp-update.test", "update-account@amozonjp-update.test", "bob@rcpt.test", m); err != nil {
			t.Fatalf("send: %v", err)
		}
		// Quarantine is Postfix's hold queue: accepted, not delivered.
		waitHeld(t, root)
		held, _ := exec.Command("postcat", "-c", filepath.Join(root, "etc"), "-hq", heldID(t, root)).Output()
		for _, want := range []string{"X-Mailwall-Score: ", "brand_from_domain=45", "dmarc_none_brand=20", "spf=pass", "dmarc=pass"} {
			if !strings.Contains(string(held), want) {
				t.Errorf("held message lacks %q:\n%s", want, held)
			}
		}
	})

	t.Run("wrong password: 535, nothing sent", func(t *testing.T) {
		auth := plainAuth{"alice@example.test", "not-the-password"}
		err := sendAs(smtpAddr, "127.0.0.5", "roaming.example.net", auth, "alice@example.test", "bob@rcpt.test", body("milter-badauth"))
		if smtpCode(err) != 535 {
			t.Fatalf("got %v, want 535", err)
		}
	})

	t.Run("every verdict is in the store, with its DMARC row", func(t *testing.T) {
		st, err := store.Open(context.Background(), "sqlite", filepath.Join(root, "mailwall.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		// The recorder writes in the background: wait for it a little.
		var vs []store.Verdict
		for range 50 {
			if vs, err = st.Verdicts(context.Background(), store.VerdictFilter{}); err == nil && hasActions(vs, "accept", "reject", "quarantine") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !hasActions(vs, "accept", "reject", "quarantine") {
			t.Fatalf("verdicts in the store: %+v (%v)", vs, err)
		}
		for _, v := range vs {
			// Source milter: the HELO refusal of the same client is a
			// verdict too (source helo).
			if v.Source == "milter" && v.Action == "reject" && v.ClientIP == "127.0.0.3" && (v.DMARC != "fail" || v.FromDomain != "example.test" || v.QueueID == "") {
				t.Errorf("the rejected spoof: %+v", v)
			}
		}
		if pending, _ := st.UnreportedDomains(context.Background()); len(pending) == 0 {
			t.Error("no DMARC rows waiting for a report")
		}
	})
}

// milterConfig is the start of a config for "mailwall serve" as Postfix's
// milter, with the lab DNS and no policy server.
func milterConfig(dnsAddr string, milterPort int) string {
	return fmt.Sprintf(`hostname: mx.rcpt.test
dns:
  servers: [%q]
  timeout: 500ms
  attempts: 1
policyd:
  listen: []
milter:
  listen: ["inet:127.0.0.1:%d"]
`, dnsAddr, milterPort)
}

func hasActions(vs []store.Verdict, actions ...string) bool {
	seen := map[string]bool{}
	for _, v := range vs {
		seen[v.Action] = true
	}
	for _, a := range actions {
		if !seen[a] {
			return false
		}
	}
	return true
}

// heldID is the queue ID of the first message in the hold queue.
func heldID(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("postqueue", "-c", filepath.Join(root, "etc"), "-j").Output()
	if err != nil {
		t.Fatalf("postqueue: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		var q struct {
			QueueName string `json:"queue_name"`
			QueueID   string `json:"queue_id"`
		}
		if json.Unmarshal([]byte(line), &q) == nil && q.QueueName == "hold" {
			return q.QueueID
		}
	}
	t.Fatalf("no held message in %s", out)
	return ""
}

// TestPostfixMilterHeloNoWait: with no HELO rule that can refuse
// (helo_invalid: tag, a table that only holds), mailwall asks Postfix not
// to wait for it at HELO, and Postfix, which then sends HELO without
// waiting, still has every HELO judged: at end of message.
func TestPostfixMilterHeloNoWait(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-helo-")
	heloTable := filepath.Join(root, "helo_checks")
	os.WriteFile(heloTable, []byte("/^hold\\.example\\.org$/ HOLD\n"), 0o644)
	dnsAddr, _ := startLabDNS(t, bin)
	milterPort, smtpPort := freePort(t), freePort(t)
	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(milterConfig(dnsAddr, milterPort)+fmt.Sprintf(`checks:
  helo_regexp_tables: [%q]
  actions:
    helo_invalid: tag
store:
  dsn: %q
web:
  listen: ""
`, heloTable, filepath.Join(root, "mailwall.db"))), 0o644)
	startProcess(t, "milter listening", bin, "serve", "--config", cfg)

	c, err := milter.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", milterPort), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Protocol&milter.ProtoNRHelo == 0 {
		t.Errorf("protocol %#x: mailwall asks for a reply at HELO with no rule that refuses there", c.Protocol)
	}
	c.Close()

	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:127.0.0.1:%d\nmilter_default_action = tempfail\nmilter_protocol = 6\n", milterPort))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	body := func(subject string) string {
		return fmt.Sprintf("From: <someone@other.test>\r\nTo: bob@rcpt.test\r\nSubject: %s\r\nMessage-ID: <%d@other.test>\r\n\r\nHello.\r\n", subject, time.Now().UnixNano())
	}

	if err := sendMessage(smtpAddr, "127.0.0.3", "-bad-.example.org", "someone@other.test", "bob@rcpt.test", body("helo-invalid")); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := delivered(t, filepath.Join(root, "mail", "inbox"), "helo-invalid")
	_, verdictLine, _ := strings.Cut(got, "X-Mailwall-Verdict: ")
	verdictLine, _, _ = strings.Cut(verdictLine, "\n")
	if !strings.Contains(verdictLine, "action=tag") || !strings.Contains(verdictLine, "helo") {
		t.Errorf("the invalid HELO is not tagged: X-Mailwall-Verdict: %s\n%s", verdictLine, got)
	}

	if err := sendMessage(smtpAddr, "127.0.0.3", "hold.example.org", "someone@other.test", "bob@rcpt.test", body("helo-hold")); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitHeld(t, root)
}

// waitHeld waits up to 20 s for a message in Postfix's hold queue.
func waitHeld(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("postqueue", "-c", filepath.Join(root, "etc"), "-j").Output()
		if strings.Contains(string(out), `"queue_name": "hold"`) || strings.Contains(string(out), `"queue_name":"hold"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in the hold queue: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
