// Command policy measures SPF policy requests: mailwall's policy server
// against Debian's postfix-policyd-spf-python, on the same requests and the
// same lab zones, one after the other in one run. Loopback only.
//
//	go run ./bench/policy [-n 4000] [-c 2] [-runs 3] [-pin] [-greylist] [-policyd-spf=false]
//
// Both servers run as their own processes, so their CPU time and memory
// are measured apart from this client: mailwall as "mailwall serve" (built
// from this checkout) on TCP and on a unix socket, policyd-spf as Postfix
// runs it (spawn: one process per SMTP connection reading requests on
// stdin, -c of them in parallel). Every request has its own instance, so
// none is answered from a per-message cache.
//
// "warm" requests reuse one sender domain, whose records mailwall then has
// cached; "cold" requests each name a new domain (a wildcard in the lab
// zone), so every one needs DNS queries. pyspf keeps no cache between
// requests, so for it both sets cost the same.
//
// -greylist adds a second mailwall with greylisting on (the store in
// SQLite, every client subject: client_name=unknown), asked the warm set
// in turns with the first: "new triplets" name new senders each run (the
// half SPF lets through is deferred, one insert each), "passed triplets"
// senders whose triplets passed before the measured runs (remembered in
// process: no statement), "named servers" clients with a verified static
// name (not subject to rgrey: no statement). The bound: within
// 2x of greylisting off.
// -greylist-base names another mailwall binary (say, built from an
// earlier commit: git archive REV | tar -x -C DIR, then go build there)
// to run greylisting with as well, asked the new triplets in turns with
// this checkout's: an A/B measured in one run.
// MAILWALL_CPUPROFILE and MAILWALL_GREYLIST_CPUPROFILE name files for
// the two servers' CPU profiles (MAILWALL_BASE_CPUPROFILE the base's).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"mailwall/bench/internal/proc"
	"mailwall/bench/internal/repeat"
	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/spf"
)

func main() {
	n := flag.Int("n", 4000, "requests per run")
	conc := flag.Int("c", 2, "concurrent connections (mailwall) / processes (policyd-spf)")
	zonesGlob := flag.String("zones", "testdata/lab/*.zone", "lab zone files")
	pin := flag.Bool("pin", false, "run the servers on CPU 1 and this load generator on CPU 0, so they do not compete")
	withCold := flag.Bool("cold", true, "include the cold-cache run")
	logLevel := flag.String("log-level", "info", "mailwall log.level (info logs every decision, as in production)")
	runs := flag.Int("runs", 3, "runs of each row, the servers taking turns; a row shows the median run and the range")
	grey := flag.Bool("greylist", false, "also measure a mailwall with greylisting on against the same requests")
	greyBase := flag.String("greylist-base", "", "with -greylist, a mailwall binary to measure greylisting's new triplets with too, in turns (A/B)")
	withPy := flag.Bool("policyd-spf", true, "also measure postfix-policyd-spf-python and pyspf, when installed")
	flag.StringVar(&stderrDir, "stderr", "", "write each mailwall's stderr (its logs) to a file in this directory, not discard it")
	only := flag.String("only", "", "measure only the rows whose name contains this, and greylisting off's warm tcp row (for a profile of one case)")
	flag.Parse()

	if *pin {
		if err := proc.Pin(0, []int{0}); err != nil {
			log.Fatalf("pin: %v", err)
		}
		serverCPU = "1"
	}
	files, _ := filepath.Glob(*zonesGlob)
	if len(files) == 0 {
		log.Fatalf("no zone files match %s (run from the repository root)", *zonesGlob)
	}
	lc := labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	for _, f := range files {
		lc.Zones = append(lc.Zones, labdns.ZoneFile{Path: f})
	}
	dnsSrv, err := labdns.New(lc)
	if err != nil {
		log.Fatal(err)
	}
	if err := dnsSrv.Start(); err != nil {
		log.Fatal(err)
	}
	defer dnsSrv.Shutdown(context.Background())

	dir, err := os.MkdirTemp("", "mailwall-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	fmt.Printf("SPF policy requests: %d per run, concurrency %d, lab DNS %s, %d CPUs; each row the median of %d runs, the servers taking turns\n\n", *n, *conc, dnsSrv.Addr(), proc.NumCPU(), *runs)

	mw := startMailwall(filepath.Join(dir, "off"), dnsSrv.Addr(), *logLevel, "")
	defer mw.stop()
	tcp := func() (io.ReadWriteCloser, error) { return net.Dial("tcp", mw.tcpAddr) }
	unix := func() (io.ReadWriteCloser, error) { return net.Dial("unix", mw.sock) }
	warm := requests(*n, "")
	run(warm[:min(200, len(warm))], 1, tcp, nil) // warm-up, not printed
	var servers []contender
	if *withCold {
		servers = append(servers, contender{name: "mailwall tcp, cold (new domain each)", dial: tcp, use: mw.usage,
			reqs: func(i int) []string { return requests(*n, fmt.Sprintf("r%d", i)) }})
	}
	servers = append(servers,
		contender{name: "mailwall tcp, warm cache", dial: tcp, use: mw.usage},
		contender{name: "mailwall unix socket, warm cache", dial: unix, use: mw.usage})
	if *grey {
		gw := startMailwall(filepath.Join(dir, "grey"), dnsSrv.Addr(), *logLevel, greylistConfig)
		defer gw.stop()
		gtcp := func() (io.ReadWriteCloser, error) { return net.Dial("tcp", gw.tcpAddr) }
		if *greyBase != "" {
			baseBin = *greyBase
			bw := startMailwall(filepath.Join(dir, "greybase"), dnsSrv.Addr(), *logLevel, greylistConfig)
			baseBin = ""
			defer bw.stop()
			btcp := func() (io.ReadWriteCloser, error) { return net.Dial("tcp", bw.tcpAddr) }
			servers = append(servers, contender{name: "BASE greylist on, new triplets", dial: btcp, use: bw.usage,
				reqs: func(i int) []string { return greyRequests(warm, fmt.Sprintf("b%d", i)) }})
		}
		known := greyRequests(warm, "known")
		run(known, *conc, gtcp, nil) // deferred
		time.Sleep(greylistDelay + 100*time.Millisecond)
		run(known, *conc, gtcp, nil) // passed, counted
		servers = append(servers,
			contender{name: "greylist on, new triplets", dial: gtcp, use: gw.usage,
				reqs: func(i int) []string { return greyRequests(warm, fmt.Sprintf("r%d", i)) }},
			contender{name: "greylist on, passed triplets", dial: gtcp, use: gw.usage, reqs: func(int) []string { return known }},
			contender{name: "greylist on, named servers", dial: gtcp, use: gw.usage, reqs: func(i int) []string { return named(greyRequests(warm, fmt.Sprintf("n%d", i))) }})
	}
	if *only != "" {
		servers = slices.DeleteFunc(servers, func(c contender) bool {
			return c.name != "mailwall tcp, warm cache" && !strings.Contains(c.name, *only)
		})
	}
	mailwalls := len(servers)
	_, err = os.Stat("/usr/bin/policyd-spf")
	if err == nil && *withPy {
		pd := newPolicydSPF(dir, dnsSrv.Addr())
		servers = append(servers, contender{name: "postfix-policyd-spf-python 3.0.4", dial: pd.dial, use: pd.usage})
	}
	for i := range *runs {
		for j := range servers {
			c := &servers[j]
			reqs := warm
			if c.reqs != nil {
				reqs = c.reqs(i)
			}
			c.rows = append(c.rows, run(reqs, *conc, c.dial, c.use))
		}
	}
	fmt.Printf("%-40s %10s %13s %8s %8s %14s %9s\n", "server", "req/s", "range", "p50 ms", "p99 ms", "CPU ms/1000req", "peak RSS")
	for i := range servers {
		servers[i].print()
	}
	if *grey {
		var off row
		for _, c := range servers {
			switch r, _, _ := c.median(); {
			case c.name == "mailwall tcp, warm cache":
				off = r
			case strings.HasPrefix(c.name, "greylist on"), strings.HasPrefix(c.name, "BASE greylist on"):
				fmt.Printf("\n%s: %.2fx the requests/s of greylisting off (tcp, warm), %.2fx its CPU per request", c.name, r.rps/off.rps, r.cpuPer1000/off.cpuPer1000)
			}
		}
		fmt.Println()
	}
	if len(servers) == mailwalls {
		if *withPy {
			fmt.Println("\npolicyd-spf not installed (apt-get install postfix-policyd-spf-python): no comparison")
		}
		return
	}
	pyWarm, _, _ := servers[mailwalls].median()
	fmt.Println()
	for _, c := range servers[:mailwalls] {
		r, _, _ := c.median()
		fmt.Printf("%-40s %5.0fx the requests/s, %5.0fx less CPU per request\n", c.name, r.rps/pyWarm.rps, pyWarm.cpuPer1000/r.cpuPer1000)
	}

	// The SPF evaluation alone, without the policy protocol: mailwall's
	// checker in this process against pyspf's check2 in python processes.
	fmt.Printf("\nSPF evaluations (MAIL FROM a@mail.example.test from 127.0.0.2: TXT, then A for \"a\"), %d per run, concurrency %d\n\n", *n, *conc)
	fmt.Printf("%-40s %12s\n", "evaluator", "evals/s")
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{dnsSrv.Addr()}}, dnsx.CacheOptions{})
	checker := &spf.Checker{Resolver: cache}
	coldEv := evals("mailwall spf, cold cache", *n, *conc, checker, cache.Flush)
	warmEv := evals("mailwall spf, warm cache", *n, *conc, checker, func() {})
	pyEv := pyspfEvals(dir, *n, *conc)
	fmt.Printf("\nmailwall spf, cold cache: %.0fx pyspf; warm cache: %.0fx pyspf\n", coldEv/pyEv, warmEv/pyEv)
}

// evals runs n evaluations over conc goroutines; before runs before each.
func evals(name string, n, conc int, c *spf.Checker, before func()) float64 {
	ip := netip.MustParseAddr("127.0.0.2")
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / conc {
				before()
				if o := c.CheckMailFrom(context.Background(), ip, "a@mail.example.test", "mail.example.test"); o.Result != spf.Pass {
					log.Fatalf("%s: %+v", name, o)
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(n/conc*conc) / time.Since(start).Seconds()
	fmt.Printf("%-40s %12.0f\n", name, rate)
	return rate
}

// pyspfEvals runs the same evaluation with pyspf's check2 in conc python
// processes (sitecustomize in dir points dnspython at the lab server).
func pyspfEvals(dir string, n, conc int) float64 {
	script := fmt.Sprintf(`import spf
for _ in range(%d):
    r = spf.check2(i="127.0.0.2", s="a@mail.example.test", h="mail.example.test")
    assert r[0] == "pass", r
`, n/conc)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := command("/usr/bin/python3", "-c", script)
			cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				log.Fatalf("pyspf: %v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	rate := float64(n/conc*conc) / time.Since(start).Seconds()
	fmt.Printf("%-40s %12.0f\n", "pyspf 2.0.14 check2", rate)
	return rate
}

// requests builds n policy requests. Even ones pass (127.0.0.2 is
// example.test's sender), odd ones fail, both through HELO and MAIL FROM.
// A cold set (salt not "") names a new domain in each request, salted so
// that a second run's are new too.
func requests(n int, salt string) []string {
	cold := salt != ""
	out := make([]string, n)
	for i := range out {
		ip, helo, sender := "127.0.0.2", "mail.example.test", fmt.Sprintf("user%d@example.test", i)
		if i%2 == 1 {
			ip, helo = "127.0.0.3", "host.example.org"
		}
		if cold {
			// *.wild.example.test has "v=spf1 -all": a new name every time.
			helo = fmt.Sprintf("%sh%d.wild.example.test", salt, i)
			sender = fmt.Sprintf("user@%sd%d.wild.example.test", salt, i)
		}
		out[i] = fmt.Sprintf("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=%s\nqueue_id=\nsender=%s\nrecipient=rcpt@rcpt.test\nclient_address=%s\nclient_name=unknown\ninstance=%d.%s\n\n", helo, sender, ip, i, salt)
	}
	return out
}

// baseBin, while set, is the binary startMailwall runs instead of this
// checkout's (-greylist-base).
var baseBin string

// stderrDir, when set (-stderr), keeps the servers' logs there.
var stderrDir string

// serverCPU, when set, is the CPU list the server processes are pinned to
// (taskset).
var serverCPU string

// command runs name pinned to serverCPU when -pin is given.
func command(name string, args ...string) *exec.Cmd {
	if serverCPU == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", serverCPU, name}, args...)...)
}

// usage is a server's CPU time so far and its peak RSS in bytes.
type usage func() (cpu time.Duration, peakRSS int64)

type row struct {
	rps        float64
	p50, p99   time.Duration
	cpuPer1000 float64 // server CPU milliseconds per 1000 requests
	rss        int64   // the server's peak so far; 0 unknown
}

// contender is a server under test and its runs.
type contender struct {
	name string
	reqs func(run int) []string // nil: the warm set
	dial func() (io.ReadWriteCloser, error)
	use  usage
	rows []row
}

// median is the run with the median rate, and the lowest and highest
// rates of all.
func (c *contender) median() (r row, lowest, highest float64) {
	return repeat.Median(c.rows, func(r row) float64 { return r.rps })
}

// print prints c's median run with the range of its rates.
func (c *contender) print() {
	r, lo, hi := c.median()
	rss := "-"
	if r.rss > 0 {
		rss = fmt.Sprintf("%.1f MB", float64(r.rss)/(1<<20))
	}
	fmt.Printf("%-40s %10.0f %13s %8.2f %8.2f %14.0f %9s\n", c.name, r.rps, fmt.Sprintf("%.0f-%.0f", lo, hi), ms(r.p50), ms(r.p99), r.cpuPer1000, rss)
}

// run sends reqs over conc connections and measures them.
func run(reqs []string, conc int, dial func() (io.ReadWriteCloser, error), use usage) row {
	var cpu0 time.Duration
	if use != nil {
		cpu0, _ = use()
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	conns := make([]io.ReadWriteCloser, conc)
	for w := range conc {
		c, err := dial()
		if err != nil {
			log.Fatal(err)
		}
		conns[w] = c
	}
	start := time.Now()
	per := len(reqs) / conc
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(conns[w])
			mine := make([]time.Duration, 0, per)
			for _, q := range reqs[w*per : (w+1)*per] {
				t0 := time.Now()
				if _, err := io.WriteString(conns[w], q); err != nil {
					log.Fatal(err)
				}
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "action=") {
					log.Fatalf("answer %q: %v", line, err)
				}
				r.ReadString('\n')
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	for _, c := range conns {
		c.Close()
	}
	slices.Sort(lat)
	res := row{rps: float64(len(lat)) / el.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
	if use != nil {
		cpu1, peak := use()
		res.cpuPer1000 = float64((cpu1 - cpu0).Milliseconds()) * 1000 / float64(len(lat))
		res.rss = peak
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// mailwall runs "mailwall serve" built from this checkout.
type mailwall struct {
	cmd     *exec.Cmd
	tcpAddr string
	sock    string
}

// greylistDelay is the greylisting mailwall's delay: the passed set
// waits it out before the runs.
const greylistDelay = time.Second

// greylistConfig turns greylisting on for every client: the requests'
// client_name=unknown makes each subject in rgrey mode.
var greylistConfig = fmt.Sprintf("greylist:\n  enabled: true\n  delay: %ds\n  allow_ips: []\n", int(greylistDelay/time.Second))

// named is reqs from clients Postfix found a static name for: rgrey
// leaves them alone (no store access).
func named(reqs []string) []string {
	out := make([]string, len(reqs))
	for i, q := range reqs {
		out[i] = strings.Replace(q, "client_name=unknown\n", "client_name=mail.example.test\n", 1)
	}
	return out
}

// greyRequests is reqs with each sender's local part tagged, so that
// each tag names its own triplets. The tag follows letters: greylisting
// folds numbers standing alone ("-1") into one triplet.
func greyRequests(reqs []string, tag string) []string {
	out := make([]string, len(reqs))
	for i, q := range reqs {
		out[i] = strings.Replace(q, "@example.test\n", "x"+tag+"@example.test\n", 1)
	}
	return out
}

// startMailwall builds and starts mailwall serve in dir, its policy
// server alone; extra is YAML appended to its config.
func startMailwall(dir, dnsAddr, logLevel, extra string) *mailwall {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(dir), "mailwall") // built once for both
	if baseBin != "" {
		bin = baseBin
	} else if _, err := os.Stat(bin); err != nil {
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/mailwall").CombinedOutput(); err != nil {
			log.Fatalf("go build: %v\n%s", err, out)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	tcpAddr := ln.Addr().String()
	ln.Close()
	m := &mailwall{tcpAddr: tcpAddr, sock: filepath.Join(dir, "policy.sock")}
	cfg := filepath.Join(dir, "mailwall.yaml")
	// The policy server alone: no milter, dashboard or admin socket,
	// which could meet an installed mailwall's, and a store in dir.
	os.WriteFile(cfg, []byte(fmt.Sprintf("log:\n  level: %s\ndns:\n  servers: [%q]\npolicyd:\n  listen: [\"inet:%s\", \"unix:%s\"]\n  skip_addresses: []\nmilter:\n  listen: []\nstore:\n  dsn: %q\nweb:\n  listen: \"\"\nadmin:\n  socket: \"\"\n%s", logLevel, dnsAddr, tcpAddr, m.sock, filepath.Join(dir, "mailwall.db"), extra)), 0o644)
	args := []string{"serve", "--config", cfg}
	profile := "MAILWALL_CPUPROFILE" // the server with greylisting off
	switch {
	case baseBin != "":
		profile = "MAILWALL_BASE_CPUPROFILE"
	case extra != "":
		profile = "MAILWALL_GREYLIST_CPUPROFILE"
	}
	if p := os.Getenv(profile); p != "" {
		args = append(args, "--cpuprofile", p)
	}
	m.cmd = command(bin, args...)
	if stderrDir != "" {
		f, err := os.Create(filepath.Join(stderrDir, filepath.Base(dir)+".log"))
		if err != nil {
			log.Fatal(err)
		}
		m.cmd.Stderr = f
	}
	out, _ := m.cmd.StdoutPipe()
	// Decision logs go to stderr, discarded: logging costs what it costs
	// in production.
	if err := m.cmd.Start(); err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for ready := 0; ready < 2 && sc.Scan(); {
		if strings.Contains(sc.Text(), "listening") {
			ready++
		}
	}
	go io.Copy(io.Discard, out)
	return m
}

func (m *mailwall) stop() { m.cmd.Process.Signal(syscall.SIGTERM); m.cmd.Wait() }

// usage reads the process's CPU time and peak RSS from /proc.
func (m *mailwall) usage() (time.Duration, int64) {
	pid := m.cmd.Process.Pid
	return proc.CPUTime(pid), proc.PeakRSS(pid)
}

// policydSPF spawns postfix-policyd-spf-python processes, one per
// connection, pointed at the lab DNS server.
type policydSPF struct {
	dir, conf string
	mu        sync.Mutex
	cpu       time.Duration
	peak      int64
}

func newPolicydSPF(dir, dnsAddr string) *policydSPF {
	host, port, _ := net.SplitHostPort(dnsAddr)
	// pyspf asks dnspython's default resolver: point it at the lab server.
	os.WriteFile(filepath.Join(dir, "sitecustomize.py"), []byte(fmt.Sprintf(`import dns.resolver
_r = dns.resolver.Resolver(configure=False)
_r.nameservers = [%q]
_r.port = %s
_r.timeout = _r.lifetime = 5
dns.resolver.default_resolver = _r
`, host, port)), 0o644)
	p := &policydSPF{dir: dir, conf: filepath.Join(dir, "policyd-spf.conf")}
	os.WriteFile(p.conf, []byte("debugLevel = 1\nTestOnly = 1\nHELO_reject = Fail\nMail_From_reject = Fail\nskip_addresses = 192.0.2.254/32\nHide_Receiver = Yes\n"), 0o644)
	return p
}

func (p *policydSPF) dial() (io.ReadWriteCloser, error) {
	cmd := command("/usr/bin/policyd-spf", p.conf)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+p.dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{Writer: in, Reader: out, in: in, cmd: cmd, p: p}, nil
}

// usage is the CPU and peak RSS of the processes that have exited.
func (p *policydSPF) usage() (time.Duration, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpu, p.peak
}

// child is a policyd-spf process's stdin and stdout as one connection.
type child struct {
	io.Writer
	io.Reader
	in  io.Closer
	cmd *exec.Cmd
	p   *policydSPF
}

func (c *child) Close() error {
	c.in.Close()
	err := c.cmd.Wait()
	st := c.cmd.ProcessState
	c.p.mu.Lock()
	c.p.cpu += st.UserTime() + st.SystemTime()
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		c.p.peak = max(c.p.peak, ru.Maxrss*1024)
	}
	c.p.mu.Unlock()
	return err
}
