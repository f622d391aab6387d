package e2e

// Load and fault tests: "mailwall serve" as its own process, driven over
// loopback by a milter client and a policy client, while its DNS, its
// store or its clients misbehave. Each asserts what mailwall did: the
// configured tempfail or accept, never a crash, never a lost verdict.
// docs/reliability.md has the table these tests stand behind.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mailwall/internal/labtest"
	"mailwall/internal/milter"
	"mailwall/internal/store"
)

// daemon is a running "mailwall serve" with a milter, a policy server, a
// SQLite store and the web listener (for /metrics).
type daemon struct {
	cmd                 *exec.Cmd
	said                []string // what it printed up to its web address
	milter, policy, web string
	db                  string // the store's path as the test sees it
	cfg                 string
	stderr              string
}

// daemonSetup is what a test varies in serve's config.
type daemonSetup struct {
	dns        string
	hostname   string   // default mx.rcpt.test
	store      string   // the store section's driver and dsn; default SQLite in dir/data
	dnsTimeout string   // default 500ms
	extra      string   // YAML sections appended (not those daemonConfig writes)
	wrap       []string // a command line serve runs under, such as unshare
}

func daemonConfig(s daemonSetup, milterPort, policyPort, webPort int, dbPath string) string {
	if s.dnsTimeout == "" {
		s.dnsTimeout = "500ms"
	}
	if s.hostname == "" {
		s.hostname = "mx.rcpt.test"
	}
	if s.store == "" {
		s.store = fmt.Sprintf("dsn: %q", dbPath)
	}
	return fmt.Sprintf(`hostname: %s
log:
  level: info
dns:
  servers: [%q]
  timeout: %s
  attempts: 1
policyd:
  listen: ["inet:127.0.0.1:%d"]
  skip_addresses: []
milter:
  listen: ["inet:127.0.0.1:%d"]
store:
  %s
web:
  listen: 127.0.0.1:%d
%s`, s.hostname, s.dns, s.dnsTimeout, policyPort, milterPort, s.store, webPort, s.extra)
}

// startDaemon writes the config into dir and starts serve.
func startDaemon(t *testing.T, bin, dir string, setup daemonSetup) *daemon {
	t.Helper()
	d := &daemon{db: filepath.Join(dir, "data", "mailwall.db"), cfg: filepath.Join(dir, "mailwall.yaml")}
	os.MkdirAll(dir, 0o750)
	mp, pp, wp := freePort(t), freePort(t), freePort(t)
	d.milter, d.policy, d.web = fmt.Sprintf("127.0.0.1:%d", mp), fmt.Sprintf("127.0.0.1:%d", pp), fmt.Sprintf("127.0.0.1:%d", wp)
	if err := os.WriteFile(d.cfg, []byte(daemonConfig(setup, mp, pp, wp, d.db)), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string(nil), setup.wrap...), bin), "serve", "--config", d.cfg)
	d.cmd, d.said = startProcessOutput(t, "mailwall: web on http://", argv[0], argv[1:]...)
	d.stderr = d.cmd.Stderr.(*os.File).Name()
	return d
}

// log is what serve has logged so far.
func (d *daemon) log() string {
	b, _ := os.ReadFile(d.stderr)
	return string(b)
}

// alive fails the test if serve has exited.
func (d *daemon) alive(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("mailwall serve is gone: %v\n%s", err, d.log())
	}
}

// metric reads one sample of /metrics, by its full name with labels.
func (d *daemon) metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}

// peakRSS is serve's peak resident set (VmHWM), in bytes.
func (d *daemon) peakRSS(t *testing.T) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		t.Fatal("no VmHWM in /proc/PID/status")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// storedQueueIDs opens the SQLite store at path and returns its verdicts
// by queue ID.
func storedQueueIDs(t *testing.T, path string) map[string]store.Verdict {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return queueIDs(t, st)
}

// queueIDs returns every verdict of st by queue ID.
func queueIDs(t *testing.T, st *store.Store) map[string]store.Verdict {
	t.Helper()
	out := map[string]store.Verdict{}
	for f := (store.VerdictFilter{Limit: 1000}); ; {
		vs, err := st.Verdicts(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			out[v.QueueID] = v
		}
		if len(vs) < f.Limit {
			return out
		}
		f.BeforeID = vs[len(vs)-1].ID
	}
}

// waitStored waits until every queue ID in want has a verdict in the
// SQLite store at path.
func waitStored(t *testing.T, path string, want []string, within time.Duration) map[string]store.Verdict {
	t.Helper()
	return waitForVerdicts(t, func() map[string]store.Verdict { return storedQueueIDs(t, path) }, want, within)
}

// waitForVerdicts waits until look, asked again and again, has a verdict
// for every queue ID in want.
func waitForVerdicts(t *testing.T, look func() map[string]store.Verdict, want []string, within time.Duration) map[string]store.Verdict {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := look()
		missing := 0
		for _, id := range want {
			if _, ok := got[id]; !ok {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d verdicts not in the store after %s (it has %d)", missing, len(want), within, len(got))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// labMessage is a small message from example.test, whose SPF record
// passes 127.0.0.2.
var labMessage = struct {
	headers [][2]string
	body    []byte
}{
	headers: [][2]string{{"From", "Alice <alice@example.test>"}, {"To", "bob@rcpt.test"}, {"Subject", "reliability"},
		{"Date", "Mon, 23 Nov 2026 09:00:00 +0000"}, {"Message-ID", "<r@example.test>"}},
	body: []byte(strings.Repeat("A line of an ordinary message body, nothing to see here.\r\n", 40)),
}

// session is one milter conversation up to and including the headers;
// finish sends the body and the end of message.
type session struct {
	c *milter.Client
}

func openSession(addr, queueID string) (*session, error) {
	c, err := milter.Dial("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	fail := func(step string, r milter.Reply, err error) (*session, error) {
		c.Close()
		return nil, fmt.Errorf("%s: %v %v", step, r, err)
	}
	if r, err := c.Connect("mail.example.test", netip.MustParseAddr("127.0.0.2"), 40000); err != nil || r.Code != 'c' {
		return fail("connect", r, err)
	}
	if r, err := c.Helo("mail.example.test"); err != nil || r.Code != 'c' {
		return fail("helo", r, err)
	}
	c.Macro('M', "i", queueID)
	if r, err := c.Mail("<alice@example.test>"); err != nil || r.Code != 'c' {
		return fail("mail", r, err)
	}
	if r, err := c.Rcpt("<bob@rcpt.test>"); err != nil || r.Code != 'c' {
		return fail("rcpt", r, err)
	}
	for _, h := range labMessage.headers {
		if _, err := c.Header(h[0], h[1]); err != nil {
			return fail("header", milter.Reply{}, err)
		}
	}
	if _, err := c.EndOfHeaders(); err != nil {
		return fail("end of headers", milter.Reply{}, err)
	}
	// The client holds commands that get no reply; the session's headers
	// are to be at the server now.
	if err := c.Flush(); err != nil {
		return fail("flush", milter.Reply{}, err)
	}
	return &session{c: c}, nil
}

// finish sends the body and the end of message and returns the verdict's
// reply and headers added.
func (s *session) finish() ([]milter.Modification, milter.Reply, error) {
	defer s.c.Close()
	if _, err := s.c.Body(labMessage.body); err != nil {
		return nil, milter.Reply{}, err
	}
	return s.c.EndOfMessage()
}

// deliver runs one whole session.
func deliver(addr, queueID string) ([]milter.Modification, milter.Reply, error) {
	s, err := openSession(addr, queueID)
	if err != nil {
		return nil, milter.Reply{}, err
	}
	return s.finish()
}

func accepted(r milter.Reply) bool { return r.Code == 'c' || r.Code == 'a' }

// header returns the value of the first added header named name.
func header(mods []milter.Modification, name string) string {
	for _, m := range mods {
		if (m.Kind == 'h' || m.Kind == 'i') && strings.EqualFold(m.Name, name) {
			return m.Value
		}
	}
	return ""
}

// TestThousandConcurrentMilterSessions holds 1,000 milter sessions open at
// once (each has sent its headers), then finishes them all: every one gets
// its verdict, every verdict is stored, and serve stays under 128 MB.
func TestThousandConcurrentMilterSessions(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-load-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t)})
	const n = 1000
	sessions := make([]*session, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ids[i] = fmt.Sprintf("LOAD%04d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := openSession(d.milter, ids[i])
			if err != nil {
				errs <- err
				return
			}
			sessions[i] = s
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("opening 1,000 sessions: %v", err)
	}
	open := d.metric(t, "go_goroutines")
	start := time.Now()
	var ok, bad atomic.Int32
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mods, r, err := s.finish()
			if err != nil || !accepted(r) || !strings.Contains(header(mods, "Authentication-Results"), "dmarc=pass") {
				bad.Add(1)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if ok.Load() != n {
		t.Errorf("%d of %d sessions accepted with dmarc=pass, %d not", ok.Load(), n, bad.Load())
	}
	waitStored(t, d.db, ids, 30*time.Second)
	rss := d.peakRSS(t)
	t.Logf("1,000 sessions open at once: %.0f goroutines in serve; all finished in %s; serve's peak RSS %.1f MB", open, took.Round(time.Millisecond), float64(rss)/(1<<20))
	// The bar was 100 MB before the classifier ran by default: its
	// starter model (3 MB live, twice that in the GC's headroom) and each
	// verdict's explanations and kept features add some 10 MB, and the
	// burst of 1,000 verdicts at once moves the peak by as much again on
	// a loaded machine (96-116 MB measured, 88-91 MB without the
	// classifier).
	if rss > 128<<20 {
		t.Errorf("peak RSS %.1f MB at 1,000 sessions, want under 128 MB", float64(rss)/(1<<20))
	}
	d.alive(t)
}

// TestDNSFaults: the DNS server slow, silent or answering garbage. A late
// answer within dns.timeout is used; past it, and for silence or garbage,
// the checks end in temperror, which does what checks.actions.temperror
// says (tempfail by default, accept when configured), and the verdict is
// stored. The daemon keeps answering.
func TestDNSFaults(t *testing.T) {
	_, bin := e2eRoot(t, "mailwall-dnsfault-")
	lab := labtest.Lab(t)
	for _, tc := range []struct {
		name, dns, timeout, extra string
		wantTempfail              bool   // else accepted
		wantAR                    string // in Authentication-Results, when accepted
		wantSPF                   string // the stored SPF result
		minTime                   time.Duration
	}{
		{"slow 2s within a 3s timeout", labtest.Slow(t, lab, 2*time.Second), "3s", "", false, "spf=pass", "pass", 2 * time.Second},
		{"slow 2s past a 1s timeout", labtest.Slow(t, lab, 2*time.Second), "1s", "", true, "", "temperror", time.Second},
		{"silent", labtest.Silent(t), "1s", "", true, "", "temperror", 0},
		{"garbage", labtest.Garbage(t), "1s", "", true, "", "temperror", 0},
		{"silent, temperror: accept", labtest.Silent(t), "1s", "checks:\n  actions:\n    temperror: accept\n", false, "spf=temperror", "temperror", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, bin, t.TempDir(), daemonSetup{dns: tc.dns, dnsTimeout: tc.timeout, extra: tc.extra})
			var ids []string
			for i := range 2 {
				id := fmt.Sprintf("DNS%d", i)
				ids = append(ids, id)
				start := time.Now()
				mods, r, err := deliver(d.milter, id)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("session %d: %v\n%s", i, err, d.log())
				}
				if tempfail := r.Code == 't' || r.Code == 'y' && strings.HasPrefix(r.Text, "451 "); tc.wantTempfail != tempfail || !tempfail && !accepted(r) {
					t.Errorf("session %d: reply %v, want tempfail %v", i, r, tc.wantTempfail)
				}
				if tc.wantAR != "" && !strings.Contains(header(mods, "Authentication-Results"), tc.wantAR) {
					t.Errorf("session %d: Authentication-Results %q, want %s", i, header(mods, "Authentication-Results"), tc.wantAR)
				}
				if i == 0 && took < tc.minTime {
					t.Errorf("first session took %s, want at least %s (a cached answer?)", took, tc.minTime)
				}
			}
			vs := waitStored(t, d.db, ids, 10*time.Second)
			for _, id := range ids {
				if vs[id].SPF != tc.wantSPF {
					t.Errorf("%s stored with spf=%s, want %s", id, vs[id].SPF, tc.wantSPF)
				}
			}
			// The policy server says the same of the same mail.
			ans := policyAsk(t, d.policy, "127.0.0.2", "mail.example.test", "alice@example.test")
			if want := map[string]string{"pass": "Pass", "temperror": "Temperror"}[tc.wantSPF]; !strings.Contains(ans, "Received-SPF: "+want) {
				t.Errorf("policy answer %q, want Received-SPF: %s", ans, want)
			}
			d.alive(t)
		})
	}
}

// policyAsk sends one policy request and returns the action line.
func policyAsk(t *testing.T, addr, ip, helo, sender string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprint(c, policyRequest(ip, helo, sender))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("policy answer: %v", err)
	}
	return strings.TrimSpace(line)
}

// TestStoreFaults: the store's disk full, then its database locked by
// another process. Mail keeps its verdicts (accepted, headers added) all
// along; the records are held and written when the store recovers, so
// every verdict ends in the store.
func TestStoreFaults(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-storefault-")
	lab := labtest.Lab(t)
	sendAll := func(t *testing.T, d *daemon, prefix string, n int) []string {
		t.Helper()
		var ids []string
		for i := range n {
			id := fmt.Sprintf("%s%03d", prefix, i)
			start := time.Now()
			mods, r, err := deliver(d.milter, id)
			if err != nil || !accepted(r) || !strings.Contains(header(mods, "Authentication-Results"), "dmarc=pass") {
				t.Fatalf("%s: %v %v (headers %v)", id, r, err, mods)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("%s took %s: the store held the mail up", id, took)
			}
			ids = append(ids, id)
		}
		return ids
	}

	t.Run("disk full", func(t *testing.T) {
		if os.Geteuid() != 0 {
			if os.Getenv("MAILWALL_E2E") == "1" {
				t.Fatal("MAILWALL_E2E=1 but not root: a private tmpfs needs root")
			}
			t.Skip("a private tmpfs needs root")
		}
		// serve runs in its own mount namespace, on a 2 MB tmpfs mounted
		// over its data directory; the test reaches that directory
		// through /proc/PID/root.
		dir := filepath.Join(root, "full")
		data := filepath.Join(dir, "data")
		os.MkdirAll(data, 0o750)
		d := startDaemon(t, bin, dir, daemonSetup{dns: lab, wrap: []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
			fmt.Sprintf("mount -t tmpfs -o size=2m tmpfs %s && exec \"$0\" \"$@\"", data)}})
		inside := fmt.Sprintf("/proc/%d/root%s", d.cmd.Process.Pid, data)
		before := sendAll(t, d, "FULLA", 20)
		// Fill the file system to the last block, once sure it is the
		// 2 MB tmpfs and not the disk under it.
		mounts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", d.cmd.Process.Pid))
		if !regexp.MustCompile(`(?m) ` + regexp.QuoteMeta(data) + ` .* - tmpfs `).Match(mounts) {
			t.Fatalf("no tmpfs on %s in serve's mount namespace:\n%s", data, mounts)
		}
		fill, err := os.Create(filepath.Join(inside, "fill"))
		if err != nil {
			t.Fatal(err)
		}
		block := make([]byte, 4096)
		for written := 0; ; written += len(block) {
			if written > 4<<20 {
				t.Fatal("wrote 4 MB to a 2 MB tmpfs")
			}
			if _, err := fill.Write(block); err != nil {
				if !strings.Contains(err.Error(), "no space left") {
					t.Fatal(err)
				}
				break
			}
		}
		fill.Close()
		during := sendAll(t, d, "FULLB", 300)
		waitForLog(t, d, "store write failed: verdicts held in memory")
		os.Remove(filepath.Join(inside, "fill"))
		after := sendAll(t, d, "FULLC", 20)
		waitForLog(t, d, "store writes resumed")
		// SQLite resolves the /proc/PID/root link to "/", outside the
		// tmpfs: the test reads a copy of the database and its WAL.
		snapshot := func() string {
			to := t.TempDir()
			for _, name := range []string{"mailwall.db", "mailwall.db-wal"} {
				if b, err := os.ReadFile(filepath.Join(inside, name)); err == nil {
					os.WriteFile(filepath.Join(to, name), b, 0o600)
				}
			}
			return filepath.Join(to, "mailwall.db")
		}
		waitForVerdicts(t, func() map[string]store.Verdict { return storedQueueIDs(t, snapshot()) }, append(append(before, during...), after...), 60*time.Second)
		d.alive(t)
	})

	t.Run("database locked", func(t *testing.T) {
		d := startDaemon(t, bin, filepath.Join(root, "locked"), daemonSetup{dns: lab})
		before := sendAll(t, d, "LOCKA", 10)
		waitStored(t, d.db, before, 10*time.Second)
		// Another process takes the write lock for longer than serve's
		// busy timeout (10 s): serve's writes fail, and are held.
		lock := exec.Command("python3", "-c", `import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")`, d.db, "13")
		out, _ := lock.StdoutPipe()
		if err := lock.Start(); err != nil {
			t.Fatal(err)
		}
		defer lock.Wait()
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
			t.Fatalf("the locker said %q", line)
		}
		during := sendAll(t, d, "LOCKB", 50)
		waitForLog(t, d, "store write failed: verdicts held in memory")
		lock.Wait()
		waitForLog(t, d, "store writes resumed")
		waitStored(t, d.db, append(before, during...), 60*time.Second)
		d.alive(t)
	})
}

// waitForLog waits until serve has logged want.
func waitForLog(t *testing.T, d *daemon, want string) {
	t.Helper()
	for deadline := time.Now().Add(40 * time.Second); !strings.Contains(d.log(), want); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log %q:\n%s", want, d.log())
		}
	}
}

// TestMilterClientDisconnects: clients that vanish mid-body, after the
// headers or mid-packet leave nothing behind (goroutines back to where
// they were) and no verdict, and the next session is judged as usual.
func TestMilterClientDisconnects(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-disconnect-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t)})
	warm := []string{"WARM"}
	if _, r, err := deliver(d.milter, warm[0]); err != nil || !accepted(r) {
		t.Fatalf("first session: %v %v", r, err)
	}
	waitStored(t, d.db, warm, 10*time.Second)
	base := d.metric(t, "go_goroutines")
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := openSession(d.milter, fmt.Sprintf("GONE%03d", i))
			if err != nil {
				t.Error(err)
				return
			}
			conn := s.c.Conn()
			switch i % 3 {
			case 0: // half the body, then the connection drops
				s.c.Body(labMessage.body[:len(labMessage.body)/2])
			case 1: // a body packet promising 1,000 octets, then 10 of them
				conn.Write(append([]byte{0, 0, 0x03, 0xe8, 'B'}, labMessage.body[:10]...))
			} // case 2: gone right after the headers
			s.c.Flush()  // what the client held back for the next reply
			conn.Close() // no QUIT
		}()
	}
	wg.Wait()
	var now float64
	// The goroutines that served the sessions wait milter.WorkerIdle for
	// another before they end: leftovers are what remains after that.
	for deadline := time.Now().Add(milter.WorkerIdle + 10*time.Second); ; time.Sleep(100 * time.Millisecond) {
		if now = d.metric(t, "go_goroutines"); now <= base+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %v after %d abandoned sessions, %v before", now, n, base)
		}
	}
	after := []string{"AFTER"}
	if mods, r, err := deliver(d.milter, after[0]); err != nil || !accepted(r) || !strings.Contains(header(mods, "Authentication-Results"), "dmarc=pass") {
		t.Fatalf("a session after the disconnects: %v %v", r, err)
	}
	vs := waitStored(t, d.db, after, 10*time.Second)
	for id := range vs {
		if strings.HasPrefix(id, "GONE") {
			t.Errorf("a verdict for the abandoned session %s", id)
		}
	}
	t.Logf("%d abandoned sessions: goroutines %v before, %v after", n, base, now)
	d.alive(t)
}

// TestReloadUnderLoad sends SIGHUP again and again while policy requests
// and milter sessions run: the config switches between rejecting SPF
// fails and only marking them, with a broken config in between. No
// request fails, every answer is one of the two configs', the last config
// is the one in effect, the broken one changed nothing, and every milter
// verdict is stored.
func TestReloadUnderLoad(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-reload-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t)})
	base, _ := os.ReadFile(d.cfg)
	// setWhole writes cfg, sends SIGHUP and waits until the reload it
	// asked for is counted under outcome. Signals sent while a reload
	// runs may be coalesced by the kernel and by signal.Notify's buffer
	// (two SIGHUPs 78 ms apart once counted as one), so the test asserts
	// what must hold instead of racing: every SIGHUP is eventually
	// applied, with the outcome its file calls for.
	var sent struct{ ok, failed float64 }
	setWhole := func(cfg, outcome string) bool {
		t.Helper()
		tmp := d.cfg + ".new"
		os.WriteFile(tmp, []byte(cfg), 0o600)
		os.Rename(tmp, d.cfg) // whole, never half-written
		d.cmd.Process.Signal(syscall.SIGHUP)
		want := &sent.ok
		if outcome == "failed" {
			want = &sent.failed
		}
		*want++
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			ok, failed := d.metric(t, `mailwall_config_reloads_total{outcome="ok"}`), d.metric(t, `mailwall_config_reloads_total{outcome="failed"}`)
			if ok > sent.ok || failed > sent.failed {
				t.Errorf("reloads ok %v failed %v after %v ok and %v failed asked for: a reload with the wrong outcome", ok, failed, sent.ok, sent.failed)
				return false
			}
			if ok == sent.ok && failed == sent.failed {
				return true
			}
			if time.Now().After(deadline) {
				t.Errorf("SIGHUP not applied within 20s: reloads ok %v failed %v, want %v and %v", ok, failed, sent.ok, sent.failed)
				return false
			}
		}
	}
	reject := strings.Replace(string(base), "  skip_addresses: []\n", "  skip_addresses: []\n  mail_from_reject: Fail\n", 1)
	mark := strings.Replace(string(base), "  skip_addresses: []\n", "  skip_addresses: []\n  mail_from_reject: \"False\"\n", 1)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var rejected, marked, policyErrs, milterErrs atomic.Int32
	var other atomic.Value
	var ids sync.Map
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", d.policy)
			if err != nil {
				policyErrs.Add(1)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.3\nhelo_name=stranger.test\nsender=a@example.test\nrecipient=bob@rcpt.test\ninstance=%d.%d\n\n", w, i)
				line, err := br.ReadString('\n')
				if blank, _ := br.ReadString('\n'); err != nil || blank != "\n" {
					policyErrs.Add(1)
					return
				}
				switch {
				case strings.HasPrefix(line, "action=550 5.7.23 "):
					rejected.Add(1)
				case strings.HasPrefix(line, "action=PREPEND Received-SPF: Fail"):
					marked.Add(1)
				default:
					other.Store(line)
				}
			}
		}()
	}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("HUP%d-%04d", w, i)
				if _, r, err := deliver(d.milter, id); err != nil || !accepted(r) {
					milterErrs.Add(1)
					continue
				}
				ids.Store(id, true)
			}
		}()
	}
	const cycles = 10
	for range cycles {
		time.Sleep(150 * time.Millisecond)
		if !setWhole(mark, "ok") {
			break
		}
		time.Sleep(150 * time.Millisecond)
		if !setWhole("policyd: [this is not a config\n", "failed") {
			break
		}
		time.Sleep(150 * time.Millisecond)
		if !setWhole(reject, "ok") {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	if n := policyErrs.Load(); n > 0 {
		t.Errorf("%d policy connections failed", n)
	}
	if n := milterErrs.Load(); n > 0 {
		t.Errorf("%d milter sessions failed", n)
	}
	if o := other.Load(); o != nil {
		t.Errorf("an answer from neither config: %q", o)
	}
	if rejected.Load() == 0 || marked.Load() == 0 {
		t.Errorf("rejected %d, marked %d: the reloads did not switch the answers", rejected.Load(), marked.Load())
	}
	// The last reload was to "reject": it is what now answers.
	if ans := policyAsk(t, d.policy, "127.0.0.3", "stranger.test", "a@example.test"); !strings.HasPrefix(ans, "action=550 ") {
		t.Errorf("after the last reload: %q, want a rejection", ans)
	}
	var want []string
	ids.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	waitStored(t, d.db, want, 30*time.Second)
	t.Logf("%d reloads (%d broken) under load: %d policy answers (%d rejections, %d marks), %d milter verdicts, all stored",
		3*cycles, cycles, rejected.Load()+marked.Load(), rejected.Load(), marked.Load(), len(want))
	d.alive(t)
}
