// Command policy measures policy requests per second: mailwall's policy
// server against Debian's postfix-policyd-spf-python, on the same requests
// and the same lab zones, one after the other in one run. Loopback only.
//
//	go run ./bench/policy [-n 2000] [-c 2]
//
// policyd-spf runs as Postfix runs it (spawn): one process per SMTP
// connection reading requests on stdin; -c processes run in parallel.
// mailwall gets -c TCP connections. Every request has its own instance, so
// none is answered from policyd-spf's per-message cache.
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
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/policyd"
	"mailwall/internal/spf"
)

func main() {
	n := flag.Int("n", 2000, "requests per run")
	conc := flag.Int("c", 2, "concurrent connections (mailwall) / processes (policyd-spf)")
	zonesGlob := flag.String("zones", "testdata/lab/*.zone", "lab zone files")
	flag.Parse()
	quiet := slog.New(slog.DiscardHandler)

	files, _ := filepath.Glob(*zonesGlob)
	if len(files) == 0 {
		log.Fatalf("no zone files match %s (run from the repository root)", *zonesGlob)
	}
	lc := labdns.Config{Listen: "127.0.0.1:0", Logger: quiet}
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

	reqs := make([]string, *n)
	for i := range reqs {
		// Alternate a pass and a fail, both through HELO and MAIL FROM.
		ip, helo := "127.0.0.2", "mail.example.test"
		if i%2 == 1 {
			ip, helo = "127.0.0.3", "host.example.org"
		}
		reqs[i] = fmt.Sprintf("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=%s\nqueue_id=\nsender=user%d@example.test\nrecipient=rcpt@rcpt.test\nclient_address=%s\nclient_name=unknown\ninstance=%d.bench\n\n", helo, i, ip, i)
	}

	fmt.Printf("policy requests, %d per run, concurrency %d, lab DNS on %s\n\n", *n, *conc, dnsSrv.Addr())
	fmt.Printf("%-34s %12s %10s %10s\n", "server", "requests/s", "p50 ms", "p99 ms")
	var results []result

	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{dnsSrv.Addr()}}, dnsx.CacheOptions{})
	srv := policyd.New(&spf.Checker{Resolver: cache}, policyd.Options{HideReceiver: true}, 1000, quiet)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	sockDir, _ := os.MkdirTemp("", "mailwall-bench-sock-")
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "policy.sock")
	uln, err := policyd.Listen("unix:"+sock, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(uln)
	defer srv.Shutdown(context.Background())
	mw := func(name, network, addr string, flush bool) {
		r := run(name, reqs, *conc, func() (io.ReadWriteCloser, error) { return net.Dial(network, addr) }, func() {
			if flush {
				cache.Flush()
			}
		})
		results = append(results, r)
	}
	mw("mailwall tcp, cold cache", "tcp", ln.Addr().String(), true)
	mw("mailwall tcp, warm cache", "tcp", ln.Addr().String(), false)
	mw("mailwall unix, warm cache", "unix", sock, false)

	if _, err := os.Stat("/usr/bin/policyd-spf"); err != nil {
		fmt.Println("\npolicyd-spf not installed (apt-get install postfix-policyd-spf-python): no comparison")
		return
	}
	dir, _ := os.MkdirTemp("", "mailwall-bench-")
	defer os.RemoveAll(dir)
	host, port, _ := net.SplitHostPort(dnsSrv.Addr())
	// pyspf asks dnspython's default resolver: point it at the lab server.
	os.WriteFile(filepath.Join(dir, "sitecustomize.py"), []byte(fmt.Sprintf(`import dns.resolver
_r = dns.resolver.Resolver(configure=False)
_r.nameservers = [%q]
_r.port = %s
_r.timeout = _r.lifetime = 5
dns.resolver.default_resolver = _r
`, host, port)), 0o644)
	conf := filepath.Join(dir, "policyd-spf.conf")
	os.WriteFile(conf, []byte("debugLevel = 0\nTestOnly = 1\nHELO_reject = Fail\nMail_From_reject = Fail\nskip_addresses = 192.0.2.254/32\nHide_Receiver = Yes\n"), 0o644)
	py := run("postfix-policyd-spf-python 3.0.4", reqs, *conc, func() (io.ReadWriteCloser, error) {
		cmd := exec.Command("/usr/bin/policyd-spf", conf)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
		return startPipe(cmd)
	}, func() {})
	results = append(results, py)

	fmt.Println()
	for _, r := range results[:3] {
		fmt.Printf("%s: %.0f times policyd-spf's throughput\n", r.name, r.rps/py.rps)
	}
}

type result struct {
	name     string
	rps      float64
	p50, p99 time.Duration
}

// run sends reqs over conc connections made by dial and prints a row.
// before runs before each request (cache flushing for cold runs).
func run(name string, reqs []string, conc int, dial func() (io.ReadWriteCloser, error), before func()) result {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	per := len(reqs) / conc
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial()
			if err != nil {
				log.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			mine := make([]time.Duration, 0, per)
			for _, q := range reqs[w*per : (w+1)*per] {
				before()
				t0 := time.Now()
				if _, err := io.WriteString(c, q); err != nil {
					log.Fatal(err)
				}
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "action=") {
					log.Fatalf("%s: answer %q: %v", name, line, err)
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
	slices.Sort(lat)
	res := result{name: name, rps: float64(len(lat)) / el.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
	fmt.Printf("%-34s %12.0f %10.2f %10.2f\n", name, res.rps, ms(res.p50), ms(res.p99))
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pipe is a child process's stdin and stdout as one connection.
type pipe struct {
	io.Writer
	io.Reader
	cmd *exec.Cmd
	in  io.Closer
}

func (p *pipe) Close() error { p.in.Close(); return p.cmd.Wait() }

func startPipe(cmd *exec.Cmd) (io.ReadWriteCloser, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &pipe{Writer: in, Reader: out, cmd: cmd, in: in}, nil
}
