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
	milter, policy, web string
	db                  string // the store's path as the test sees it
	cfg                 string
	stderr              string
}

// daemonSetup is what a test varies in serve's config.
type daemonSetup struct {
	dns        string
	dnsTimeout string   // default 500ms
	extra      string   // YAML sections appended (not those daemonConfig writes)
	wrap       []string // a command line serve runs under, such as unshare
}

func daemonConfig(s daemonSetup, milterPort, policyPort, webPort int, dbPath string) string {
	if s.dnsTimeout == "" {
		s.dnsTimeout = "500ms"
	}
	return fmt.Sprintf(`hostname: mx.rcpt.test
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
  dsn: %q
web:
  listen: 127.0.0.1:%d
%s`, s.dns, s.dnsTimeout, policyPort, milterPort, dbPath, webPort, s.extra)
}

// startDaemon writes the config into dir and starts serve.
func startDaemon(t *testing.T, bin, dir string, setup daemonSetup) *daemon {
	t.Helper()
	d := &daemon{db: filepath.Join(dir, "data", "mailwall.db"), cfg: filepath.Join(dir, "mailwall.yaml")}
	mp, pp, wp := freePort(t), freePort(t), freePort(t)
	d.milter, d.policy, d.web = fmt.Sprintf("127.0.0.1:%d", mp), fmt.Sprintf("127.0.0.1:%d", pp), fmt.Sprintf("127.0.0.1:%d", wp)
	if err := os.WriteFile(d.cfg, []byte(daemonConfig(setup, mp, pp, wp, d.db)), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string(nil), setup.wrap...), bin), "serve", "--config", d.cfg)
	d.cmd = startProcess(t, "mailwall: web on http://", argv[0], argv[1:]...)
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

// storedQueueIDs opens the store at path and returns the queue IDs of its
// verdicts.
func storedQueueIDs(t *testing.T, path string) map[string]store.Verdict {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
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

// waitStored waits until every queue ID in want has a verdict in the store.
func waitStored(t *testing.T, path string, want []string, within time.Duration) map[string]store.Verdict {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := storedQueueIDs(t, path)
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
			t.Fatalf("%d of %d verdicts not in the store after %s", missing, len(want), within)
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
// its verdict, every verdict is stored, and serve stays under 100 MB.
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
	if rss > 100<<20 {
		t.Errorf("peak RSS %.1f MB at 1,000 sessions, want under 100 MB", float64(rss)/(1<<20))
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
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=%s\nhelo_name=%s\nsender=%s\nrecipient=bob@rcpt.test\ninstance=%d\n\n", ip, helo, sender, time.Now().UnixNano())
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("policy answer: %v", err)
	}
	return strings.TrimSpace(line)
}
