// Package e2e runs mailwall with a real Postfix: lab-dns serves the lab
// zones, "mailwall serve" is Postfix's check_policy_service, and mail is
// sent over SMTP from several loopback addresses.
//
// Postfix must be installed (make test-deps installs it). Without it the test is
// skipped, unless MAILWALL_E2E=1, where its absence is a failure.
package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func requirePostfix(t *testing.T) {
	if _, err := exec.LookPath("postfix"); err != nil {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatal("MAILWALL_E2E=1 but postfix is not installed")
		}
		t.Skip("postfix not installed (apt-get install postfix, or sudo make test-deps)")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatal("MAILWALL_E2E=1 but not root: a private Postfix instance needs root")
		}
		t.Skip("a private Postfix instance needs root")
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// e2eRoot makes the directory a test's Postfix, zones and binary live in
// (removed at the end) and builds mailwall into it.
func e2eRoot(t *testing.T, prefix string) (root, bin string) {
	t.Helper()
	root, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755) // the virtual delivery agent runs as nobody
	t.Cleanup(func() { os.RemoveAll(root) })
	return root, buildMailwall(t, root)
}

// startLabDNS serves the lab zones (testdata/lab) and any more zone
// arguments on a free loopback port and returns its address.
func startLabDNS(t *testing.T, bin string, moreZones ...string) (string, *exec.Cmd) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	zones, _ := filepath.Glob("../../testdata/lab/*.zone")
	args := append(append([]string{"lab-dns", "--listen", addr}, moreZones...), zones...)
	return addr, startProcess(t, "lab DNS listening", bin, args...)
}

// buildMailwall compiles the binary under test.
func buildMailwall(t *testing.T, dir string) string {
	bin := filepath.Join(dir, "mailwall")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/mailwall").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs a command until the test ends and waits until it
// prints want on stdout.
func startProcess(t *testing.T, want string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := startProcessOutput(t, want, name, args...)
	return cmd
}

// startProcessOutput is startProcess, returning the lines printed up to
// and including the one with want.
func startProcessOutput(t *testing.T, want string, name string, args ...string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	stdout, _ := cmd.StdoutPipe()
	logf, _ := os.Create(filepath.Join(t.TempDir(), "stderr"))
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s stderr:\n%s", filepath.Base(name), b)
		}
	})
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var lines []string
		found := false
		for sc.Scan() {
			if !found {
				lines = append(lines, sc.Text())
			}
			if !found && strings.Contains(sc.Text(), want) {
				found = true
				ready <- lines
			}
		}
		if !found {
			close(ready)
		}
	}()
	select {
	case lines, ok := <-ready:
		if !ok {
			t.Fatalf("%s exited before printing %q", name, want)
		}
		return cmd, lines
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not print %q", name, want)
	}
	return cmd, nil
}

// startPostfix writes a private instance whose recipient restrictions
// and milters are given in extra, and starts it.
func startPostfix(t *testing.T, root string, smtpPort int, extra string) {
	startPostfixServices(t, root, smtpPort, extra, "")
}

// startPostfixServices is startPostfix with more master.cf services.
func startPostfixServices(t *testing.T, root string, smtpPort int, extra, services string) {
	etc := filepath.Join(root, "etc")
	spool := filepath.Join(root, "spool")
	data := filepath.Join(root, "data")
	mail := filepath.Join(root, "mail")
	for _, d := range []string{etc, spool, data, mail} {
		os.MkdirAll(d, 0o755)
	}
	exec.Command("chown", "postfix", data).Run()
	exec.Command("chown", "65534:65534", mail).Run()
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s
data_directory = %[2]s
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.rcpt.test
mydomain = rcpt.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
mynetworks =
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
virtual_mailbox_domains = rcpt.test
virtual_mailbox_base = %[3]s
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_relay_restrictions = reject_unauth_destination
maillog_file = %[4]s/postfix.log
maillog_file_prefixes = %[4]s
%[5]s
`, spool, data, mail, root, extra)
	masterCF := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
smtp       unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
virtual    unix  - n n -  - virtual
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
`, smtpPort) + services
	os.WriteFile(filepath.Join(etc, "main.cf"), []byte(mainCF), 0o644)
	os.WriteFile(filepath.Join(etc, "master.cf"), []byte(masterCF), 0o644)
	exec.Command("postfix", "-c", etc, "set-permissions").Run()
	if out, err := exec.Command("postfix", "-c", etc, "check").CombinedOutput(); err != nil {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	if out, err := exec.Command("postfix", "-c", etc, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("postfix", "-c", etc, "stop").Run()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(root, "postfix.log"))
			t.Logf("postfix log:\n%s", b)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", smtpPort))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix not listening: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// send delivers a generated message with that subject from source IP
// src; it returns the error of the first SMTP command that failed.
func send(smtpAddr, src, helo, from, to, subject string) error {
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d@example.test>\r\n\r\nhello\r\n", from, to, subject, time.Now().UnixNano())
	return sendMessage(smtpAddr, src, helo, from, to, msg)
}

// delivered waits for a message with subject in the Maildir.
func delivered(t *testing.T, maildir, subject string) string {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(maildir, "new", "*"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if strings.Contains(string(b), "Subject: "+subject+"\n") {
				return string(b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("message %q not delivered", subject)
	return ""
}

func smtpCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestPostfixPolicyService(t *testing.T) {
	requirePostfix(t)
	root, bin := e2eRoot(t, "mailwall-e2e-")
	dnsAddr, labDNS := startLabDNS(t, bin)
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
  temperror_defer: true
milter:
  listen: []
store:
  dsn: %q
web:
  listen: ""
`, dnsAddr, policyPort, filepath.Join(root, "mailwall.db"))), 0o644)
	serve := startProcess(t, "policy server listening", bin, "serve", "--config", cfg)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:%d\nsmtpd_policy_service_timeout = 30s", policyPort))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	maildir := filepath.Join(root, "mail", "inbox")

	t.Run("allowed IP delivered with Received-SPF Pass", func(t *testing.T) {
		if err := send(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", "spf-pass"); err != nil {
			t.Fatalf("send: %v", err)
		}
		msg := delivered(t, maildir, "spf-pass")
		want := "Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=127.0.0.2; helo=mail.example.test; envelope-from=alice@example.test; receiver=<UNKNOWN>"
		if !strings.Contains(msg, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, msg)
		}
	})

	t.Run("disallowed IP of a -all domain rejected with 550 5.7.23", func(t *testing.T) {
		err := send(smtpAddr, "127.0.0.3", "stranger.example.org", "alice@example.test", "bob@rcpt.test", "spf-fail")
		if smtpCode(err) != 550 || !strings.Contains(err.Error(), "5.7.23") {
			t.Fatalf("got %v, want 550 5.7.23", err)
		}
	})

	t.Run("DNS down gives 4xx with temperror_defer", func(t *testing.T) {
		labDNS.Process.Kill()
		labDNS.Wait()
		// SIGHUP flushes mailwall's DNS cache: every lookup now times out.
		serve.Process.Signal(syscall.SIGHUP)
		time.Sleep(200 * time.Millisecond)
		err := send(smtpAddr, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", "spf-temperror")
		if code := smtpCode(err); code < 400 || code > 499 {
			t.Fatalf("got %v, want a 4xx reply", err)
		}
		if !strings.Contains(err.Error(), "4.7.24") {
			t.Errorf("reply %q lacks the 4.7.24 enhanced status", err)
		}
	})
}
