package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// lmFreeAddr is a loopback address free a moment ago.
func lmFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeExportsListenerMetrics: serve exports every listener's
// netguard counters under one set of families labelled by listener. A
// connection held open to the milter and one to the policy server show
// as open; the policy server's own names stay. Before, the milter's and
// the dashboard's listeners were not exported at all.
func TestServeExportsListenerMetrics(t *testing.T) {
	dns := labDNS(t)
	policyAddr, milterAddr := lmFreeAddr(t), lmFreeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailwall.yaml")
	sock := filepath.Join(dir, "run", "admin.sock")
	os.WriteFile(cfg, []byte(fmt.Sprintf("log:\n  level: error\ndns:\n  servers: [%q]\npolicyd:\n  listen: [\"inet:%s\"]\n  skip_addresses: []\n"+
		"milter:\n  listen: [\"inet:%s\"]\nadmin:\n  socket: %q\nstore:\n  dsn: %q\nweb:\n  listen: 127.0.0.1:0\n",
		dns, policyAddr, milterAddr, sock, filepath.Join(dir, "mailwall.db"))), 0o644)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg}, nil, syncPipe{pw}, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	br := bufio.NewReader(pr)
	var webAddr string
	for admin := false; webAddr == "" || !admin; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("serve ended: %v", err)
		}
		fmt.Sscanf(line, "mailwall: web on http://%s", &webAddr)
		admin = admin || strings.HasPrefix(line, "mailwall: admin socket ")
	}
	go io.Copy(io.Discard, br)
	for _, addr := range []string{policyAddr, milterAddr} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^mailwall_listener_connections_open\{listener="milter"\} 1$`),
		regexp.MustCompile(`(?m)^mailwall_listener_connections_open\{listener="policy"\} 1$`),
		regexp.MustCompile(`(?m)^mailwall_listener_connections_open\{listener="web"\} [1-9]$`), // this scrape
		regexp.MustCompile(`(?m)^mailwall_listener_connections_open\{listener="admin"\} 0$`),
		regexp.MustCompile(`(?m)^mailwall_listener_accept_errors_total\{listener="milter"\} 0$`),
		regexp.MustCompile(`(?m)^mailwall_listener_connections_evicted_total\{listener="web"\} 0$`),
		regexp.MustCompile(`(?m)^mailwall_listener_connections_refused_total\{listener="policy"\} 0$`),
		regexp.MustCompile(`(?m)^mailwall_policy_connections_open 1$`),
	}
	var body string
	// The held connections are counted once accepted: wait for that.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var code int
		body, code = httpGet(t, "http://"+webAddr+"/metrics")
		missing := 0
		for _, re := range want {
			if !re.MatchString(body) {
				missing++
			}
		}
		if code == 200 && missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	for _, re := range want {
		if !re.MatchString(body) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
}
