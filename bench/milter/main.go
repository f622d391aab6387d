// Command milter measures messages per second through milters: mailwall's
// (SPF, DKIM, DMARC, iprev, S25R in one) against Debian's OpenDKIM plus
// OpenDMARC (each message through both, as Postfix would), on the same
// signed messages and the same lab DNS. Loopback only.
//
//	bash ../shared/peers/setup.sh && NO_POSTFIX=1 bash ../shared/peers/start.sh
//	bash bench/peers/opendkim-threadsafe.sh && bash bench/peers/rspamd-auth-only.sh
//	go run ./bench/milter [-n 2000] [-t 5s] [-runs 3] [-c 1,8,64] [-sizes small,1MB] [-baseline OLDBIN]
//
// -all runs mailwall with everything on (phishing rules, DNS blocklists
// on the lab zones bench/peers/nsd-lab-lists.sh adds, the classifier,
// reputation, allow and block lists); bench/peers/rspamd-full.sh gives
// rspamd its default full configuration beside it:
//
//	bash bench/peers/nsd-no-rrl.sh && bash bench/peers/nsd-lab-lists.sh && bash bench/peers/rspamd-full.sh
//	go run ./bench/milter -all -peer-c none -baseline OLDBIN
//
// (make bench-peers does all of it.) rspamd, when start.sh started it, is
// driven through its milter (the proxy worker, which hands each message
// to the normal worker); rspamd-auth-only.sh leaves it the same checks.
// Every message's Authentication-Results must show spf=pass, dkim=pass
// and dmarc=pass, from one milter or the pair; a row says how many did not.
//
// The peers' nsd serves example.test on 127.0.0.1:5353 with the DKIM key
// /tmp/peers/keys/sel.private; both sides use it. mailwall runs as its own
// process ("mailwall serve"), so its CPU time and peak memory are its own;
// the peers' come from /proc of the pids start.sh saved. Each message is
// one milter session: negotiate, connect, HELO, MAIL, RCPT, headers, body,
// end of message.
//
// -baseline runs a second mailwall, a binary built from an earlier
// commit, in turn with this tree's on the same rows, and prints their
// ratio: the side-by-side check that a change costs ordinary mail nothing
// (git worktree add /tmp/base REV && (cd /tmp/base && go build -o
// /tmp/mailwall-base ./cmd/mailwall)).
//
// mailwall tags an invalid HELO name here rather than refusing it at
// HELO: the peers answer only at the end of the message, and so does
// mailwall when no HELO rule can refuse. -helo-reject runs mailwall on its
// default, which makes Postfix wait for an answer at HELO: a round trip
// more per session.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mailwall/bench/internal/proc"
	"mailwall/bench/internal/repeat"
	"mailwall/internal/benchmsg"
	"mailwall/internal/dkim"
	"mailwall/internal/milter"
)

func main() {
	n := flag.Int("n", 2000, "messages per run (small); large messages use n/10")
	concs := flag.String("c", "1,8,64", "concurrent sessions")
	peerConcs := flag.String("peer-c", "1,8,64", "concurrent sessions for OpenDKIM+OpenDMARC: more than 1 needs OpenDKIM restarted by bench/peers/opendkim-threadsafe.sh (../shared/peers/README.md)")
	rspamdConcs := flag.String("rspamd-c", "1,8,64", "concurrent sessions for rspamd's milter (its proxy worker, 127.0.0.1:11332)")
	peers := flag.String("peers", "/tmp/peers", "the peers' directory (start.sh's $PEERS)")
	dnsAddr := flag.String("dns", "127.0.0.1:5353", "the lab DNS the peers use")
	sizes := flag.String("sizes", "small,1MB", "message sizes to run: small (2 KB body), 1MB")
	cpuProfile := flag.String("cpuprofile", "", "write the harness's own CPU profile here (the client side of every session)")
	heloReject := flag.Bool("helo-reject", false, "run mailwall with its default checks.actions.helo_invalid: reject, answering at HELO (a round trip more per session) where the peers answer at end of message only")
	runs := flag.Int("runs", 3, "runs of each row, the milters taking turns; the row shows the median and the range")
	minTime := flag.Duration("t", 5*time.Second, "the least time a row runs: it sends its -n messages and more until then")
	baseline := flag.String("baseline", "", "a mailwall binary built from an earlier commit, run in turn with this tree's as \"mailwall-baseline\" on the same messages: the side-by-side check that a change did not slow ordinary mail")
	all := flag.Bool("all", false, "run this tree's mailwall with everything on: the phishing rules, the DNS blocklists (zen.bl.test, bl2.bl.test, dbl.bl.test: bench/peers/nsd-lab-lists.sh serves them; cached as any list's answers), the classifier with its starter model, reputation, and allow and block lists in its store; the messages get a link (the lists and the rules have a host to read). -baseline's binary keeps the configuration it knew")
	pin := flag.Bool("pin", false, "run the milters on CPU 1 and this load generator and the lab DNS on CPU 0, so the milter under test has one CPU of its own")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	keyPath := filepath.Join(*peers, "keys", "sel.private")
	key, err := dkim.LoadPrivateKey(keyPath)
	if err != nil {
		log.Fatalf("%v (start the peers first: see the command's doc)", err)
	}
	signer := &dkim.Signer{Domain: "example.test", Selector: "sel", Key: key}
	msgs := map[string][]byte{"small": message(signer, 2<<10, *all), "1MB": message(signer, 1<<20, *all)}

	dir, _ := os.MkdirTemp("", "mailwall-bench-milter-")
	defer os.RemoveAll(dir)
	opendkim := proc.FromPidFile(filepath.Join(*peers, "run", "opendkim.pid"))
	opendmarc := proc.FromPidFile(filepath.Join(*peers, "run", "opendmarc.pid"))
	rspamd := proc.FromPidFile(filepath.Join(*peers, "run", "rspamd.pid"))
	nsd := proc.FromPidFile(filepath.Join(*peers, "run", "nsd.pid"))
	var mwCPU string
	if *pin {
		// The peers run several processes and threads; each gets CPU 1,
		// as mailwall does, and they get every CPU back at the end. The
		// lab DNS server counts as the network, on the harness's side.
		var servers []int
		for _, pid := range []int{opendkim, opendmarc, rspamd} {
			if pid != 0 {
				servers = append(servers, proc.Tree(pid)...)
			}
		}
		pinAll(servers, []int{1})
		defer pinAll(servers, nil)
		if nsd != 0 {
			dns := proc.Tree(nsd)
			pinAll(dns, []int{0})
			defer pinAll(dns, nil)
		}
		pinAll([]int{0}, []int{0})
		mwCPU = "1"
	}
	mw := startMailwall(dir, "", *dnsAddr, mwCPU, *heloReject, *all)
	defer mw.stop()
	var base *mailwall
	if *baseline != "" {
		baseDir := filepath.Join(dir, "baseline")
		os.Mkdir(baseDir, 0o700)
		base = startMailwall(baseDir, *baseline, *dnsAddr, mwCPU, *heloReject, false)
		defer base.stop()
	}

	fmt.Printf("milter sessions, lab DNS %s, %d CPUs; mailwall checks iprev, S25R, SPF, DKIM, DMARC; OpenDKIM verifies DKIM, OpenDMARC checks SPF and DMARC\n", *dnsAddr, proc.NumCPU())
	if *heloReject {
		fmt.Println("mailwall refuses invalid HELO names at HELO (its default): Postfix waits for it there")
	} else {
		fmt.Println("mailwall tags invalid HELO names and, as the peers, answers at end of message only (-helo-reject: its default)")
	}
	if *all {
		fmt.Println("mailwall with everything on: phishing rules, DNS blocklists zen.bl.test, bl2.bl.test, dbl.bl.test (lab, cached), classifier (starter model), reputation, allow and block lists; each message has a link")
	}
	if *pin {
		fmt.Println("pinned: each milter on CPU 1; this load generator and the lab DNS on CPU 0")
	}
	fmt.Println()
	fmt.Printf("%-28s %6s %5s %9s %11s %8s %8s %13s %9s\n", "milters", "size", "conc", "msgs/s", "range", "p50 ms", "p99 ms", "CPU ms/1000", "peak RSS")
	type key2 struct{ size, conc string }
	rates := map[string]map[key2]float64{}
	type milterUnderTest struct {
		name  string
		addrs []string
		pids  func() []int
		concs string // the concurrencies it runs at; "" for all
	}
	milters := []milterUnderTest{{"mailwall", []string{mw.addr}, func() []int { return []int{mw.pid()} }, ""}}
	if base != nil {
		milters = append(milters, milterUnderTest{"mailwall-baseline", []string{base.addr}, func() []int { return []int{base.pid()} }, ""})
	}
	if opendkim != 0 && opendmarc != 0 {
		milters = append(milters, milterUnderTest{"OpenDKIM+OpenDMARC", []string{"127.0.0.1:8891", "127.0.0.1:8893"}, func() []int { return []int{opendkim, opendmarc} }, *peerConcs})
	}
	if rspamd != 0 {
		// rspamd is a main process and its workers: all count.
		milters = append(milters, milterUnderTest{"rspamd", []string{"127.0.0.1:11332"}, func() []int { return proc.Tree(rspamd) }, *rspamdConcs})
	}
	for _, m := range milters {
		rates[m.name] = map[key2]float64{}
	}
	for _, size := range strings.Split(*sizes, ",") {
		if msgs[size] == nil {
			log.Fatalf("-sizes: unknown size %q", size)
		}
		count := *n
		if size == "1MB" {
			count = max(*n/10, 20)
		}
		// Each milter gets the same warm-up before its first row of a
		// size, not counted: the DNS answers in its cache, its first
		// garbage collections or table growth behind it.
		for _, m := range milters {
			if m.concs == "none" {
				continue // not measured: OpenDKIM crashes at 8 sessions without opendkim-threadsafe.sh
			}
			run(max(count/20, 8), 8, 0, msgs[size], m.addrs, nil)
		}
		for _, cs := range strings.Split(*concs, ",") {
			c, _ := strconv.Atoi(cs)
			// The milters take turns, -runs times, so that a slow spell
			// of this shared machine falls on each of them alike; each
			// row is the run with the median rate.
			results := map[string][]result{}
			for range *runs {
				for _, m := range milters {
					if m.concs == "" || slices.Contains(strings.Split(m.concs, ","), cs) {
						results[m.name] = append(results[m.name], run(count, c, *minTime, msgs[size], m.addrs, m.pids()))
					}
				}
			}
			for _, m := range milters {
				rs := results[m.name]
				if len(rs) == 0 {
					continue
				}
				med, lowest, highest := repeat.Median(rs, func(r result) float64 { return r.rate })
				med.lowest, med.highest = lowest, highest
				med.errs, med.unjudged = 0, 0 // summed over every run below
				for _, r := range rs {
					med.errs += r.errs
					med.unjudged += r.unjudged
					if med.firstErr == nil {
						med.firstErr = r.firstErr
					}
					if med.sample == "" {
						med.sample = r.sample
					}
				}
				med.print(m.name, size, c)
				rates[m.name][key2{size, cs}] = med.rate
			}
		}
	}
	if base != nil {
		fmt.Println()
		for _, size := range strings.Split(*sizes, ",") {
			for _, cs := range strings.Split(*concs, ",") {
				k := key2{size, cs}
				if b := rates["mailwall-baseline"][k]; b > 0 {
					fmt.Printf("%s, %s sessions: mailwall %.3fx mailwall-baseline (%+.1f%%)\n", size, cs, rates["mailwall"][k]/b, 100*(rates["mailwall"][k]/b-1))
				}
			}
		}
	}
	if (opendkim == 0 || opendmarc == 0) && rspamd == 0 {
		fmt.Println("\nOpenDKIM/OpenDMARC and rspamd not running (start.sh): no comparison")
		return
	}
	fmt.Println()
	for _, size := range strings.Split(*sizes, ",") {
		for _, cs := range strings.Split(*concs, ",") {
			k := key2{size, cs}
			if p := rates["OpenDKIM+OpenDMARC"][k]; p > 0 {
				fmt.Printf("%s, %s sessions: mailwall %.1fx OpenDKIM+OpenDMARC\n", size, cs, rates["mailwall"][k]/p)
			}
			if p := rates["rspamd"][k]; p > 0 {
				fmt.Printf("%s, %s sessions: mailwall %.1fx rspamd\n", size, cs, rates["mailwall"][k]/p)
			}
		}
	}
}

// message builds a signed message with a body of about size bytes; link
// puts a link in its first line.
func message(s *dkim.Signer, size int, link bool) []byte {
	m := benchmsg.Header + benchmsg.Body(size, link)
	sig, err := s.Sign(strings.NewReader(m))
	if err != nil {
		log.Fatal(err)
	}
	return []byte(sig + m)
}

type result struct {
	rate float64
	// lowest and highest are the rates of the row's fastest and slowest
	// runs.
	lowest, highest float64
	p50, p99        time.Duration
	cpu             float64 // ms per 1000 messages, all milters together
	rss             int64
	errs            int
	firstErr        error
	// unjudged counts messages whose Authentication-Results, from all
	// the milters together, lack one of spf=pass, dkim=pass, dmarc=pass:
	// a milter that skipped work would otherwise look fast.
	unjudged int
	sample   string // the fields of the first of them
}

func (r result) print(name, size string, c int) {
	if r.errs > 0 {
		fmt.Printf("%-28s %6s %5d   %d sessions failed (first: %v)\n", name, size, c, r.errs, r.firstErr)
	}
	if r.unjudged > 0 {
		fmt.Printf("%-28s %6s %5d   %d messages without spf=pass, dkim=pass and dmarc=pass (first: %q)\n", name, size, c, r.unjudged, r.sample)
	}
	fmt.Printf("%-28s %6s %5d %9.0f %11s %8.2f %8.2f %13.0f %7.1f MB\n", name, size, c, r.rate, fmt.Sprintf("%.0f-%.0f", r.lowest, r.highest), ms(r.p50), ms(r.p99), r.cpu, float64(r.rss)/(1<<20))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// run sends at least count messages, and goes on for at least minTime,
// over c concurrent workers; each message goes through every milter
// address in turn. A short row measures start-up and the garbage
// collector's first cycles more than the milter: at 4,000 messages
// mailwall's row lasted one second, the peers' five.
func run(count, c int, minTime time.Duration, msg []byte, addrs []string, pids []int) result {
	hdrs, body := split(msg)
	cpu0 := proc.CPUTime(pids...)
	var mu sync.Mutex
	var lat []time.Duration
	var res result
	var wg sync.WaitGroup
	var taken atomic.Int64
	start := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, count/c+1)
			for {
				i := taken.Add(1)
				if i > int64(count) && time.Since(start) >= minTime {
					break
				}
				t0 := time.Now()
				var err error
				var ar strings.Builder
				queueID := fmt.Sprintf("4B%02X%06X", w, i) // Postfix-like, one per message
				for _, a := range addrs {
					if err = session(a, queueID, hdrs, body, &ar); err != nil {
						break
					}
				}
				if err == nil && !judged(ar.String()) {
					mu.Lock()
					if res.unjudged++; res.unjudged == 1 {
						res.sample = ar.String()
					}
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					res.errs++
					if res.firstErr == nil {
						res.firstErr = err
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if len(lat) == 0 {
		return res
	}
	slices.Sort(lat)
	res.rate = float64(len(lat)) / el.Seconds()
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	res.cpu = float64((proc.CPUTime(pids...) - cpu0).Milliseconds()) * 1000 / float64(len(lat))
	for _, p := range pids {
		res.rss += proc.PeakRSS(p)
	}
	return res
}

type field struct{ name, value string }

func split(msg []byte) ([]field, []byte) {
	br := bufio.NewReader(bytes.NewReader(msg))
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		log.Fatal(err)
	}
	var out []field
	for _, f := range fields {
		out = append(out, field{f.Name, strings.ReplaceAll(f.Value(), "\r\n", "\n")})
	}
	body, _ := io.ReadAll(br)
	return out, body
}

// judged reports whether Authentication-Results fields hold a pass for
// each of SPF, DKIM and DMARC.
func judged(ar string) bool {
	ar = strings.ToLower(ar)
	return strings.Contains(ar, "spf=pass") && strings.Contains(ar, "dkim=pass") && strings.Contains(ar, "dmarc=pass")
}

// session sends one message and appends the Authentication-Results fields
// the milter adds to ar.
func session(addr, queueID string, hdrs []field, body []byte, ar *strings.Builder) error {
	c, err := milter.Dial("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	// The events and macros Postfix 3.7 sends with its default
	// milter_*_macros (those with a value without TLS or AUTH).
	steps := []func() (milter.Reply, error){
		func() (milter.Reply, error) {
			c.Macro('C', "j", "lab.example.test", "{daemon_name}", "lab.example.test", "{daemon_addr}", "127.0.0.1", "v", "Postfix 3.7.11", "_", "mail.example.test [127.0.0.1]")
			return c.Connect("mail.example.test", netip.MustParseAddr("127.0.0.1"), 40000)
		},
		func() (milter.Reply, error) { return c.Helo("mail.example.test") },
		func() (milter.Reply, error) {
			c.Macro('M', "i", queueID, "{mail_addr}", "sender@example.test", "{mail_host}", "example.test", "{mail_mailer}", "smtp")
			return c.Mail("<sender@example.test>")
		},
		func() (milter.Reply, error) {
			c.Macro('R', "i", queueID, "{rcpt_addr}", "rcpt@rcpt.test", "{rcpt_host}", "rcpt.test", "{rcpt_mailer}", "smtp")
			return c.Rcpt("<rcpt@rcpt.test>")
		},
		func() (milter.Reply, error) {
			c.Macro('T', "i", queueID)
			return c.Data()
		},
	}
	for _, s := range steps {
		if r, err := s(); err != nil || r.Code != 'c' {
			return fmt.Errorf("%s: reply %v %v", addr, r, err)
		}
	}
	for _, h := range hdrs {
		if _, err := c.Header(h.name, h.value); err != nil {
			return err
		}
	}
	c.Macro('N', "i", queueID)
	if _, err := c.EndOfHeaders(); err != nil {
		return err
	}
	if _, err := c.Body(body); err != nil {
		return err
	}
	c.Macro('E', "i", queueID)
	mods, r, err := c.EndOfMessage()
	if err != nil {
		return err
	}
	for _, m := range mods {
		if (m.Kind == 'h' || m.Kind == 'i') && strings.EqualFold(m.Name, "Authentication-Results") {
			ar.WriteString(m.Value + "\n")
		}
	}
	if r.Code != 'c' && r.Code != 'a' {
		return fmt.Errorf("%s: end of message: %v", addr, r)
	}
	return nil
}

// mailwall is "mailwall serve" with only the milter on.
type mailwall struct {
	cmd  *exec.Cmd
	addr string
}

// pinAll pins the processes to cpus (nil: every CPU); pid 0 is this one.
func pinAll(pids []int, cpus []int) {
	for _, pid := range pids {
		if err := proc.Pin(pid, cpus); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // a process that has ended (a peer's worker, restarted)
			}
			log.Fatalf("-pin: %v", err)
		}
	}
}

// startMailwall starts bin, or when bin is "" builds this tree's mailwall
// and starts that; cpus, when set, is a taskset CPU list for it, so its
// runtime sizes itself (GOMAXPROCS) to those.
func startMailwall(dir, bin, dnsAddr, cpus string, heloReject, all bool) *mailwall {
	if bin == "" {
		bin = filepath.Join(dir, "mailwall")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/mailwall").CombinedOutput(); err != nil {
			log.Fatalf("go build: %v\n%s", err, out)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "mailwall.yaml")
	// dmarc_psl: the peers' nsd serves example.test only and refuses
	// _dmarc.test, which the RFC 9989 tree walk asks for; OpenDMARC uses the
	// Public Suffix List, and so does mailwall here. With a warm cache the
	// tree walk's extra lookups cost nothing anyway. Logging stays at
	// info, as in production: a line per message, as OpenDKIM's
	// LogResults and OpenDMARC write theirs.
	heloInvalid := "tag"
	if heloReject {
		heloInvalid = "reject"
	}
	// Its own store in dir, as a fresh installation's; no dashboard or
	// admin socket, which could meet an installed mailwall's.
	conf := fmt.Sprintf("hostname: lab.example.test\nlog:\n  level: info\ndns:\n  servers: [%q]\npolicyd:\n  listen: []\nmilter:\n  listen: [\"inet:%s\"]\nstore:\n  dsn: %q\nweb:\n  listen: \"\"\nadmin:\n  socket: \"\"\nchecks:\n  dmarc_psl: true\n  actions:\n    helo_invalid: %s\n", dnsAddr, addr, filepath.Join(dir, "mailwall.db"), heloInvalid)
	if all {
		// Everything on (-all): the lab's lists score and never refuse
		// (action none is the policy server's; the milter scores);
		// the classifier's starter model; reputation in the store.
		conf += "  phish:\n    enabled: true\n  classifier:\n    enabled: true\n  reputation:\n    enabled: true\n" +
			"dnsbl:\n  ip_sites: [\"zen.bl.test*3\", \"bl2.bl.test\"]\n  domain_sites: [\"dbl.bl.test*2\"]\n  action: none\n"
	}
	os.WriteFile(cfg, []byte(conf), 0o644)
	if all {
		// Lists with entries the benchmark's mail does not match: the
		// milter's list stage reads them for every message.
		for _, a := range [][]string{
			{"allow", "add", "--ip", "192.0.2.0/24"}, {"allow", "add", "--domain", "partner-bench.test"},
			{"block", "add", "--domain", "blocked-bench.test"}, {"block", "add", "--sender", "spammer@blocked-bench.test"},
		} {
			if out, err := exec.Command(bin, append(a, "--config", cfg)...).CombinedOutput(); err != nil {
				log.Fatalf("mailwall %s: %v\n%s", strings.Join(a, " "), err, out)
			}
		}
	}
	args := []string{"serve", "--config", cfg}
	if p := os.Getenv("MAILWALL_CPUPROFILE"); p != "" {
		args = append(args, "--cpuprofile", p)
	}
	if p := os.Getenv("MAILWALL_MEMPROFILE"); p != "" {
		args = append(args, "--memprofile", p)
	}
	m := &mailwall{cmd: exec.Command(bin, args...), addr: addr}
	if cpus != "" {
		m.cmd = exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...)
	}
	out, _ := m.cmd.StdoutPipe()
	logs, _ := m.cmd.StderrPipe()
	if err := m.cmd.Start(); err != nil {
		log.Fatal(err)
	}
	// The per-message lines are read and dropped; warnings and errors
	// are shown.
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), "level=INFO") {
				fmt.Fprintln(os.Stderr, "mailwall:", sc.Text())
			}
		}
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), "milter listening") {
	}
	go io.Copy(io.Discard, out)
	return m
}

func (m *mailwall) pid() int { return m.cmd.Process.Pid }
func (m *mailwall) stop()    { m.cmd.Process.Signal(os.Interrupt); m.cmd.Wait() }
