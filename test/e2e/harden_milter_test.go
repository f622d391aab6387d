package e2e

// Hardening of the milter (issue 23, items 2, 3 and 7): messages with
// more header fields than anyone sends, macros without end, and
// connections that never negotiate, against "mailwall serve" as its own
// process, through a real Postfix where the attack came that way. Each
// test asserts a bound on serve's CPU time or memory and that serve goes
// on serving. MAILWALL_E2E_BIN runs them against another binary (an
// older build, to measure the before).

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/labtest"
	"mailwall/internal/milter"
)

// mhRoot is e2eRoot, with the binary MAILWALL_E2E_BIN names if set.
func mhRoot(t *testing.T, prefix string) (root, bin string) {
	t.Helper()
	b := os.Getenv("MAILWALL_E2E_BIN")
	if b == "" {
		return e2eRoot(t, prefix)
	}
	root, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755) // the virtual delivery agent runs as nobody
	t.Cleanup(func() { os.RemoveAll(root) })
	return root, b
}

// mhCPU is the CPU time (user and system) process pid has used.
func mhCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// mhRSS is serve's resident set now (VmRSS), in bytes.
func mhRSS(t *testing.T, d *daemon) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// mhPostfix starts a Postfix whose smtpd_milters is d's milter and
// returns its SMTP address. Its message_size_limit is off: its queue
// file accounting (a few octets a field) otherwise stops 2,000,000
// fields a little short of its 10 MB default, and the attack's size is
// the test's to choose.
func mhPostfix(t *testing.T, root string, d *daemon) string {
	t.Helper()
	smtpPort := freePort(t)
	startPostfix(t, root, smtpPort, fmt.Sprintf("smtpd_milters = inet:%s\nmilter_default_action = tempfail\nmilter_protocol = 6\nmessage_size_limit = 0\n", d.milter))
	return fmt.Sprintf("127.0.0.1:%d", smtpPort)
}

// mhMessage is a message with n more header fields named name (empty
// values, 4 octets each), after a From, To and Subject; extra comes
// first.
func mhMessage(extra string, n int, name string) string {
	var b strings.Builder
	b.WriteString(extra)
	b.WriteString("From: <alice@example.test>\r\nTo: <bob@rcpt.test>\r\nSubject: many fields\r\nMessage-ID: <mh@example.test>\r\n")
	for range n {
		b.WriteString(name + ":\r\n")
	}
	b.WriteString("\r\nhello\r\n")
	return b.String()
}

// TestHardenMilterHeaderFields: 2,000,000 header fields (8 MB) through
// Postfix get the configured reply, 552 5.3.4, within seconds, and serve
// keeps none of them: its peak RSS grows by less than 64 MB (by 383 MB
// when the milter kept them all, and the message was accepted).
func TestHardenMilterHeaderFields(t *testing.T) {
	requirePostfix(t)
	root, bin := mhRoot(t, "mailwall-mh-fields-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t)})
	smtp := mhPostfix(t, root, d)
	// One ordinary message first, so the baseline has the pipeline warm.
	if err := send(smtp, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", "warm-up"); err != nil {
		t.Logf("warm-up: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	rssBefore, peakBefore, cpuBefore := mhRSS(t, d), d.peakRSS(t), mhCPU(t, d.cmd.Process.Pid)

	msg := mhMessage("", 2_000_000, "A")
	start := time.Now()
	err := sendMessage(smtp, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", msg)
	took := time.Since(start)
	cpu := mhCPU(t, d.cmd.Process.Pid) - cpuBefore
	grew := d.peakRSS(t) - peakBefore
	t.Logf("2,000,000 fields (%.1f MB): %v in %v; serve: %v CPU, RSS %.0f MB before, peak +%.0f MB",
		float64(len(msg))/1e6, err, took.Round(time.Millisecond), cpu, float64(rssBefore)/(1<<20), float64(grew)/(1<<20))
	if smtpCode(err) != 552 || !strings.Contains(err.Error(), "5.3.4 Message header has more than 1000 fields") {
		t.Errorf("got %v, want 552 5.3.4 Message header has more than 1000 fields", err)
	}
	if grew > 64<<20 {
		t.Errorf("serve's peak RSS grew by %.0f MB, want under 64 MB", float64(grew)/(1<<20))
	}
	if cpu > 5*time.Second || took > 30*time.Second {
		t.Errorf("serve used %v of CPU, the reply came after %v", cpu, took)
	}
	d.alive(t)
	// Still serving.
	if _, r, err := deliver(d.milter, "MHAFTER1"); err != nil || !accepted(r) {
		t.Errorf("a session afterwards: %v %v", r, err)
	}
}

// mhSignature is a DKIM-Signature of bomb.test whose h= names From and
// then "B" (a field the message lacks), names in all, folded; its bh= is right for the body "hello", so a
// verifier goes on to hash the header fields h= selects.
func mhSignature(t *testing.T, key dkim.Signer, names int) string {
	t.Helper()
	sig, err := key.Sign(strings.NewReader("From: <alice@example.test>\r\nA:1\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var h strings.Builder
	h.WriteString("h=From") // From must be signed (RFC 6376 §5.4), or the verifier stops there
	for i := 1; i < names; i++ {
		if i%30 == 0 {
			h.WriteString("\r\n\t")
		}
		h.WriteString(":B") // not in the message: each one is looked for among all the fields
	}
	h.WriteString(";")
	// The h= tag, not the end of bh=.
	out := regexp.MustCompile(`([;\s])h=[^;]*;`).ReplaceAllString(sig, "${1}"+h.String())
	if out == sig {
		t.Fatalf("no h= in %q", sig)
	}
	return out
}

// TestHardenMilterHeaderHashBomb: a DKIM-Signature whose h= names 25,000
// fields the message lacks, over a message of 200,000 fields (0.9 MB)
// through Postfix, is refused for its fields in well under 1 s of
// serve's CPU (it cost 54 s when every field reached the verifier).
func TestHardenMilterHeaderHashBomb(t *testing.T) {
	requirePostfix(t)
	root, bin := mhRoot(t, "mailwall-mh-hash-")
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := dkim.PublicKeyRecord(key)
	if err != nil {
		t.Fatal(err)
	}
	zones := append(labtest.LabZones(t), labtest.Zone(t, "bomb.test", fmt.Sprintf(`mh._domainkey IN TXT %q`, rec)))
	dns := labtest.Serve(t, zones...)
	d := startDaemon(t, bin, root, daemonSetup{dns: dns.Addr()})
	smtp := mhPostfix(t, root, d)
	sig := mhSignature(t, dkim.Signer{Domain: "bomb.test", Selector: "mh", Key: key, Headers: []string{"A"}}, 25_000)

	for _, tc := range []struct {
		name   string
		fields int
		want   int // SMTP code
	}{
		{"200,000 fields: refused", 200_000, 552},
		{"900 fields, within the limit: judged", 900, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := mhMessage(sig, tc.fields, "A")
			cpuBefore := mhCPU(t, d.cmd.Process.Pid)
			start := time.Now()
			err := sendMessage(smtp, "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", msg)
			took := time.Since(start)
			time.Sleep(200 * time.Millisecond) // the verdict's work after the reply
			cpu := mhCPU(t, d.cmd.Process.Pid) - cpuBefore
			t.Logf("h= of 25,000 names, %d fields (%.2f MB): %v in %v; serve: %v CPU", tc.fields, float64(len(msg))/1e6, err, took.Round(time.Millisecond), cpu)
			if smtpCode(err) != tc.want {
				t.Errorf("got %v, want SMTP code %d", err, tc.want)
			}
			if cpu > time.Second {
				t.Errorf("serve used %v of CPU, want under 1 s", cpu)
			}
		})
	}
	d.alive(t)
}

// TestHardenMilterMacroFlood: 250 macro commands of 1 MB each, every one
// with new names, on one milter connection, then a whole message on it.
// Serve keeps only the macros its filter reads, and no more than 64 KiB
// of those: its RSS grows by less than 64 MB (the macros were all kept:
// 1.29 GB), and the message gets its verdict.
func TestHardenMilterMacroFlood(t *testing.T) {
	root, bin := mhRoot(t, "mailwall-mh-macros-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t)})
	if _, r, err := deliver(d.milter, "MHWARM1"); err != nil || !accepted(r) {
		t.Fatalf("warm-up: %v %v", r, err)
	}
	time.Sleep(300 * time.Millisecond)
	peakBefore := d.peakRSS(t)
	c, err := milter.Dial("tcp", d.milter, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	value := strings.Repeat("m", 330_000) // three a command: just under 1 MB, the most a packet may be
	stages := "CHMRTNE"
	for i := range 250 {
		// New names each time, and the names the filter reads, too big.
		c.Macro(stages[i%len(stages)], fmt.Sprintf("{mh_%d}", i), value, fmt.Sprintf("{mh_%d_b}", i), value, "i", value)
		if err := c.Flush(); err != nil {
			t.Fatalf("macro %d: %v", i, err)
		}
	}
	if r, err := c.Connect("mail.example.test", netip.MustParseAddr("127.0.0.2"), 40000); err != nil || r.Code != 'c' {
		t.Fatalf("connect after the flood: %v %v", r, err)
	}
	c.Helo("mail.example.test")
	c.Macro('M', "i", "MHFLOOD1")
	c.Mail("<alice@example.test>")
	c.Rcpt("<bob@rcpt.test>")
	for _, h := range labMessage.headers {
		c.Header(h[0], h[1])
	}
	c.EndOfHeaders()
	c.Body(labMessage.body)
	mods, r, err := c.EndOfMessage()
	grew := d.peakRSS(t) - peakBefore
	t.Logf("250 macro commands of 1 MB: serve's peak RSS +%.0f MB; then %v %v", float64(grew)/(1<<20), r, err)
	if err != nil || !accepted(r) || !strings.Contains(header(mods, "Authentication-Results"), "dmarc=pass") {
		t.Errorf("the message after the flood: %v %v", r, err)
	}
	if grew > 64<<20 {
		t.Errorf("serve's peak RSS grew by %.0f MB, want under 64 MB", float64(grew)/(1<<20))
	}
	waitStored(t, d.db, []string{"MHFLOOD1"}, 10*time.Second)
	d.alive(t)
}

// mhStartDaemon is startDaemon with the config daemonConfig writes
// passed through patch.
func mhStartDaemon(t *testing.T, bin, dir string, setup daemonSetup, patch func(cfg string) string) *daemon {
	t.Helper()
	d := &daemon{db: filepath.Join(dir, "data", "mailwall.db"), cfg: filepath.Join(dir, "mailwall.yaml")}
	os.MkdirAll(dir, 0o750)
	mp, pp, wp := freePort(t), freePort(t), freePort(t)
	d.milter, d.policy, d.web = fmt.Sprintf("127.0.0.1:%d", mp), fmt.Sprintf("127.0.0.1:%d", pp), fmt.Sprintf("127.0.0.1:%d", wp)
	if err := os.WriteFile(d.cfg, []byte(patch(daemonConfig(setup, mp, pp, wp, d.db))), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string(nil), setup.wrap...), bin), "serve", "--config", d.cfg)
	d.cmd, d.said = startProcessOutput(t, "mailwall: web on http://", argv[0], argv[1:]...)
	d.stderr = d.cmd.Stderr.(*os.File).Name()
	return d
}

// mhFlood opens n TCP connections to addr that never negotiate, and
// closes them when the test ends or close is called.
func mhFlood(t *testing.T, addr string, n int) (close func()) {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break // the kernel's queue is full: enough
		}
		conns = append(conns, c)
	}
	done := false
	close = func() {
		if !done {
			done = true
			for _, c := range conns {
				c.Close()
			}
		}
	}
	t.Cleanup(close)
	return close
}

// mhPolicyWithin asks the policy server once and returns how long the
// answer took.
func mhPolicyWithin(t *testing.T, d *daemon) time.Duration {
	t.Helper()
	start := time.Now()
	if got := policyAsk(t, d.policy, "192.0.2.1", "mail.example.test", "alice@example.test"); !strings.HasPrefix(got, "action=") {
		t.Errorf("policy answer %q", got)
	}
	return time.Since(start)
}

// TestHardenMilterIdleConnections: serve with 64 file descriptors, and
// hundreds of milter connections that never negotiate.
//
// On the defaults the milter keeps at most half the descriptors (32):
// the policy server answers within 1 s, and a real milter session gets
// through, in place of the oldest idle connection.
//
// With two milter listeners, 32 each, the flood takes every descriptor:
// Accept's EMFILE, which used to end serve, is waited out, and once the
// connections close (or their 10 s handshake deadline passes) the milter
// and the policy server serve again.
func TestHardenMilterIdleConnections(t *testing.T) {
	for _, tc := range []struct {
		name      string
		listeners int
	}{
		{"defaults", 1},
		{"fd limit reached", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, bin := mhRoot(t, "mailwall-mh-fds-")
			second := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			d := mhStartDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t), wrap: []string{"prlimit", "--nofile=64:64", "--"}}, func(cfg string) string {
				if tc.listeners == 1 {
					return cfg
				}
				return regexp.MustCompile(`(?m)^(milter:\n  listen: \["inet:127\.0\.0\.1:\d+")\]$`).ReplaceAllString(cfg, `${1}, "inet:`+second+`"]`)
			})
			if _, r, err := deliver(d.milter, "MHFD0"); err != nil || !accepted(r) {
				t.Fatalf("before the flood: %v %v", r, err)
			}
			closeFlood := mhFlood(t, d.milter, 300)
			if tc.listeners == 2 {
				closeSecond := mhFlood(t, second, 300)
				defer closeSecond()
			}
			time.Sleep(500 * time.Millisecond)
			d.alive(t)
			if tc.listeners == 1 {
				took := mhPolicyWithin(t, d)
				t.Logf("policy answer with 300 idle milter connections: %v", took.Round(time.Millisecond))
				if took > time.Second {
					t.Errorf("policy answer took %v with the milter flooded, want under 1 s", took)
				}
				if _, r, err := deliver(d.milter, "MHFD1"); err != nil || !accepted(r) {
					t.Errorf("a milter session during the flood: %v %v", r, err)
				}
			} else if n := strings.Count(d.log(), "accept failed, retrying"); n == 0 {
				t.Errorf("no EMFILE episode in the log: the flood did not take every descriptor")
			} else {
				t.Logf("%d accept failures waited out", n)
			}
			closeFlood()
			// The descriptors come back as serve sees the closes.
			start := time.Now()
			var r milter.Reply
			var err error
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if _, r, err = deliver(d.milter, "MHFD2"); err == nil && accepted(r) {
					break
				}
			}
			t.Logf("a milter session after the flood closed: %v %v, after %v", r, err, time.Since(start).Round(time.Millisecond))
			if err != nil || !accepted(r) {
				t.Errorf("a milter session after the flood: %v %v", r, err)
			}
			if took := mhPolicyWithin(t, d); took > 5*time.Second {
				t.Errorf("policy answer after the flood took %v", took)
			}
			d.alive(t)
		})
	}
}
