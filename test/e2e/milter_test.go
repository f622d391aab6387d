package e2e

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
)

// sendMessage delivers a prepared message (header and body) over SMTP from
// source address src.
func sendMessage(smtpAddr, src, helo, from, to, message string) error {
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

func TestPostfixMilter(t *testing.T) {
	requirePostfix(t)
	root, err := os.MkdirTemp("", "mailwall-e2e-milter-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755)
	t.Cleanup(func() { os.RemoveAll(root) })
	bin := buildMailwall(t, root)

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

	dnsPort, milterPort, smtpPort := freePort(t), freePort(t), freePort(t)
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	zones, _ := filepath.Glob("../../testdata/lab/*.zone")
	startProcess(t, "lab DNS listening", bin, append([]string{"lab-dns", "--listen", dnsAddr, "_domainkey.example.test=" + keyZone}, zones...)...)

	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`hostname: mx.rcpt.test
dns:
  servers: [%q]
  timeout: 500ms
  attempts: 1
policyd:
  listen: []
milter:
  listen: ["inet:127.0.0.1:%d"]
checks:
  helo_regexp_tables: [%q]
  internal_hosts: ["127.0.0.4/32"]
  signing:
    - domain: example.test
      selector: e2e
      key: %q
`, dnsAddr, milterPort, heloTable, priv)), 0o644)
	startProcess(t, "milter listening", bin, "serve", "--config", cfg)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:127.0.0.1:%d\nmilter_default_action = tempfail\nmilter_protocol = 6", milterPort))
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

	t.Run("mail from an internal host is signed on its way", func(t *testing.T) {
		if err := sendMessage(smtpAddr, "127.0.0.4", "laptop.example.test", "alice@example.test", "bob@rcpt.test", body("milter-signed")); err != nil {
			t.Fatalf("send: %v", err)
		}
		got := delivered(t, maildir, "milter-signed")
		if !strings.Contains(got, "DKIM-Signature: v=1; a=rsa-sha256") {
			t.Fatalf("no signature:\n%s", got)
		}
		res := dnsx.NewCache(&dnsx.Client{Servers: []string{dnsAddr}, Timeout: time.Second}, dnsx.CacheOptions{})
		r, err := (&dkim.Verifier{Resolver: res}).Verify(context.Background(), strings.NewReader(got))
		if err != nil || len(r) != 1 || r[0].Status != dkim.Pass {
			t.Errorf("signature on the delivered copy: %+v %v", r, err)
		}
	})
}
