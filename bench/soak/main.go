// Command soak runs "mailwall serve" under steady load for a while and
// prints, at every interval, its resident memory, goroutines and heap,
// then whether they stayed flat and whether every verdict was stored.
// Loopback only: the lab DNS is "mailwall lab-dns" on testdata/lab.
//
//	go run ./bench/soak [-duration 10m] [-rate 300] [-every 30s]
//
// The load is milter sessions (the lab's example.test sender, SPF and
// DMARC pass) at -rate per second over -c connections, with one policy
// request per session. "Flat" means the last third of the samples is
// within 20% (RSS) and 10 goroutines of the middle third: the first
// third is warm-up (caches, pools, the GC finding its pace).
package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log"
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
	"time"

	_ "modernc.org/sqlite"

	"mailwall/internal/milter"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to run")
	rate := flag.Int("rate", 300, "milter sessions per second")
	conc := flag.Int("c", 16, "concurrent clients")
	every := flag.Duration("every", 30*time.Second, "sampling interval")
	flag.Parse()

	dir, err := os.MkdirTemp("", "mailwall-soak-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "mailwall")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/mailwall").CombinedOutput(); err != nil {
		log.Fatalf("go build: %v\n%s", err, out)
	}
	dnsAddr, mPort, pPort, wPort := freeAddr(), freeAddr(), freeAddr(), freeAddr()
	zones, _ := filepath.Glob("testdata/lab/*.zone")
	dns := start(bin, "lab DNS listening", append([]string{"lab-dns", "--listen", dnsAddr}, zones...)...)
	defer stop(dns)
	db := filepath.Join(dir, "mailwall.db")
	cfg := filepath.Join(dir, "mailwall.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`hostname: mx.rcpt.test
log:
  level: warn
dns:
  servers: [%q]
policyd:
  listen: ["inet:%s"]
  skip_addresses: []
milter:
  listen: ["inet:%s"]
store:
  dsn: %q
web:
  listen: %s
admin:
  socket: ""
`, dnsAddr, pPort, mPort, db, wPort)), 0o600)
	mw := start(bin, "mailwall: web on http://", "serve", "--config", cfg)
	defer stop(mw)

	var sent, failed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	jobs := make(chan int64)
	go func() {
		defer close(jobs)
		for i := int64(0); ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				select {
				case jobs <- i:
				default: // the clients are behind: the rate is what they manage
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc, err := net.Dial("tcp", pPort)
			if err != nil {
				log.Fatal(err)
			}
			defer pc.Close()
			pr := bufio.NewReader(pc)
			for i := range jobs {
				if err := session(mPort, fmt.Sprintf("SOAK%09d", i)); err != nil {
					failed.Add(1)
					continue
				}
				fmt.Fprintf(pc, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.2\nhelo_name=mail.example.test\nsender=alice@example.test\ninstance=%d\n\n", i)
				if line, err := pr.ReadString('\n'); err != nil || !strings.HasPrefix(line, "action=") {
					failed.Add(1)
				}
				pr.ReadString('\n')
				sent.Add(1)
			}
		}()
	}

	type sample struct {
		at         time.Duration
		rss, heap  float64 // MB
		goroutines float64
	}
	var samples []sample
	began := time.Now()
	fmt.Printf("soak: %s at %d sessions/s over %d clients, samples every %s\n\n", *duration, *rate, *conc, *every)
	fmt.Printf("%8s %10s %9s %9s %11s %8s\n", "time", "messages", "RSS MB", "heap MB", "goroutines", "failed")
	take := func() {
		m := metrics("http://" + wPort + "/metrics")
		s := sample{at: time.Since(began).Round(time.Second), rss: rss(mw.Process.Pid), heap: m["go_memstats_heap_inuse_bytes"] / (1 << 20), goroutines: m["go_goroutines"]}
		samples = append(samples, s)
		fmt.Printf("%8s %10d %9.1f %9.1f %11.0f %8d\n", s.at, sent.Load(), s.rss, s.heap, s.goroutines, failed.Load())
	}
	t := time.NewTicker(*every)
	for done := false; !done; {
		select {
		case <-t.C:
			take()
		case <-ctx.Done():
			done = true
		}
	}
	wg.Wait()
	take()

	// Every session that got its verdict must be in the store.
	var stored int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		stored = countVerdicts(db)
		if stored >= sent.Load() || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Printf("\nsessions %d, failed %d, verdicts stored %d (%.0f sessions/s)\n", sent.Load(), failed.Load(), stored, float64(sent.Load())/duration.Seconds())
	if len(samples) >= 6 {
		third := len(samples) / 3
		mid, last := samples[third:2*third], samples[2*third:]
		maxOf := func(ss []sample, f func(sample) float64) float64 {
			m := 0.0
			for _, s := range ss {
				m = max(m, f(s))
			}
			return m
		}
		rssMid, rssLast := maxOf(mid, func(s sample) float64 { return s.rss }), maxOf(last, func(s sample) float64 { return s.rss })
		gMid, gLast := maxOf(mid, func(s sample) float64 { return s.goroutines }), maxOf(last, func(s sample) float64 { return s.goroutines })
		flat := rssLast <= rssMid*1.2 && gLast <= gMid+10
		fmt.Printf("RSS max %.1f MB in the middle third, %.1f MB in the last; goroutines max %.0f, then %.0f: flat %v\n", rssMid, rssLast, gMid, gLast, flat)
	}
	if failed.Load() > 0 || stored < sent.Load() {
		os.Exit(1)
	}
}

func session(addr, queueID string) error {
	c, err := milter.Dial("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.Conn().SetDeadline(time.Now().Add(30 * time.Second))
	if r, err := c.Connect("mail.example.test", netip.MustParseAddr("127.0.0.2"), 40000); err != nil || r.Code != 'c' {
		return fmt.Errorf("connect: %v %v", r, err)
	}
	c.Helo("mail.example.test")
	c.Macro('M', "i", queueID)
	c.Mail("<alice@example.test>")
	c.Rcpt("<bob@rcpt.test>")
	for _, h := range [][2]string{{"From", "alice@example.test"}, {"To", "bob@rcpt.test"}, {"Subject", "soak"}, {"Message-ID", "<" + queueID + "@example.test>"}} {
		c.Header(h[0], h[1])
	}
	c.EndOfHeaders()
	c.Body([]byte(strings.Repeat("Steady load, one ordinary line after another.\r\n", 50)))
	_, r, err := c.EndOfMessage()
	if err != nil {
		return err
	}
	if r.Code != 'c' && r.Code != 'a' {
		return fmt.Errorf("end of message: %v", r)
	}
	return nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs bin with args until stop, once it printed want.
func start(bin, want string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), want) {
	}
	go io.Copy(io.Discard, out)
	return cmd
}

func stop(cmd *exec.Cmd) { cmd.Process.Signal(os.Interrupt); cmd.Wait() }

// metrics reads the unlabelled samples of a Prometheus text page.
func metrics(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
			out[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	return out
}

var vmRSS = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

func rss(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	m := vmRSS.FindSubmatch(b)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseFloat(string(m[1]), 64)
	return kb / 1024
}

func countVerdicts(path string) int64 {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return 0
	}
	defer db.Close()
	var n int64
	db.QueryRow(`SELECT count(*) FROM verdicts WHERE queue_id LIKE 'SOAK%'`).Scan(&n)
	return n
}
