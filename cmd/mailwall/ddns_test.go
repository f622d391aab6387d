package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/labdns"
)

const d2Zone = `$ORIGIN home.test.
$TTL 300
@     IN SOA ns1 hostmaster 7 3600 600 86400 60
@     IN NS  ns1
ns1   IN A   127.0.0.1
mail  IN A   127.0.0.10
@     IN MX  10 mail
@     IN TXT "v=spf1 mx a:relay.provider.test ip4:127.0.0.10 -all"
`

// d2Lab starts lab DNS the way "mailwall lab-dns" does, from a config
// with lab_dns.update_keys, and returns its address and a ddns config
// using keyFile.
func d2Lab(t *testing.T) (server string, configFor func(keyFile, extra string) string) {
	t.Helper()
	dir := t.TempDir()
	zone := filepath.Join(dir, "home.test.zone")
	if err := os.WriteFile(zone, []byte(d2Zone), 0o644); err != nil {
		t.Fatal(err)
	}
	// tsig-keygen's output format.
	key := filepath.Join(dir, "home.key")
	os.WriteFile(key, []byte("key \"home-ddns\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItb2N0ZXRzISE=\";\n};\n"), 0o600)
	srv, err := labdns.New(labdns.Config{
		Listen:     "127.0.0.1:0",
		Zones:      []labdns.ZoneFile{{Path: zone}},
		UpdateKeys: []labdns.UpdateKey{{Name: "home-ddns", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItb2N0ZXRzISE=", Zones: []string{"home.test"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	_, port, _ := net.SplitHostPort(srv.Addr())
	return srv.Addr(), func(keyFile, extra string) string {
		if keyFile == "" {
			keyFile = key
		}
		p := filepath.Join(t.TempDir(), "mailwall.yaml")
		text := fmt.Sprintf(`ddns:
  names: [mail.home.test]
  spf_names: [home.test]
  server: %s
  key_name: home-ddns
  key_file: %s
  ns_port: %s
  verify_backoff: 10ms
  lab_allow_loopback: true
%s`, srv.Addr(), keyFile, port, extra)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func d2Ask(t *testing.T, server, name string, qtype uint16) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, err := dns.Exchange(m, server)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.TXT:
			out = append(out, strings.Join(v.Txt, ""))
		}
	}
	return strings.Join(out, " | ")
}

func TestDDNSCommand(t *testing.T) {
	server, configFor := d2Lab(t)
	cfg := configFor("", "")

	code, out, errs := runCLI("ddns", "--config", cfg, "--address", "127.0.0.20")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"change: mail.home.test. A 127.0.0.10 -> 127.0.0.20",
		`change: home.test. TXT "v=spf1 mx a:relay.provider.test ip4:127.0.0.10 -all" -> "v=spf1 mx a:relay.provider.test ip4:127.0.0.20 -all"`,
		"update accepted by " + server,
		"visible at ns1.home.test.@127.0.0.1:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := d2Ask(t, server, "mail.home.test.", dns.TypeA); got != "127.0.0.20" {
		t.Errorf("A %s", got)
	}
	if got := d2Ask(t, server, "home.test.", dns.TypeTXT); got != "v=spf1 mx a:relay.provider.test ip4:127.0.0.20 -all" {
		t.Errorf("SPF %s", got)
	}

	// Again: nothing to do, nothing sent.
	code, out, _ = runCLI("ddns", "--config", cfg, "--address", "127.0.0.20")
	if code != 0 || !strings.Contains(out, "up to date: no update sent") || strings.Contains(out, "accepted") {
		t.Errorf("second run: exit %d\n%s", code, out)
	}

	// The address from an HTTP endpoint; --dry-run sends nothing.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "127.0.0.30") }))
	defer web.Close()
	code, out, errs = runCLI("ddns", "--config", configFor("", "  url: "+web.URL+"\n"), "--dry-run")
	if code != 0 || !strings.Contains(out, "would change: mail.home.test. A 127.0.0.20 -> 127.0.0.30") || strings.Contains(out, "accepted") {
		t.Errorf("dry run: exit %d\n%s\n%s", code, out, errs)
	}
	if got := d2Ask(t, server, "mail.home.test.", dns.TypeA); got != "127.0.0.20" {
		t.Errorf("dry run changed A to %s", got)
	}
}

func TestDDNSCommandRefusals(t *testing.T) {
	server, configFor := d2Lab(t)
	wrong := filepath.Join(t.TempDir(), "wrong.key")
	os.WriteFile(wrong, []byte("b3RoZXItb3RoZXItb3RoZXItMzItb2N0ZXRzISEhISE=\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong key", []string{"--config", configFor(wrong, ""), "--address", "127.0.0.20"}, "update refused by " + server + ": NOTAUTH, TSIG BADSIG"},
		{"private address", []string{"--config", configFor("", ""), "--address", "10.1.2.3"}, "not a global unicast address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(append([]string{"ddns"}, tc.args...)...)
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr lacks %q:\n%s\n%s", code, tc.want, out, errs)
			}
			if got := d2Ask(t, server, "mail.home.test.", dns.TypeA); got != "127.0.0.10" {
				t.Errorf("A changed to %s", got)
			}
		})
	}
}

// TestDDNSInServe: with ddns.enabled, serve publishes the address the
// URL gives at its start, and stops cleanly.
func TestDDNSInServe(t *testing.T) {
	server, configFor := d2Lab(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "127.0.0.40") }))
	defer web.Close()
	dir := t.TempDir()
	cfg := configFor("", fmt.Sprintf("  enabled: true\n  url: %s\nlog:\n  level: error\npolicyd:\n  listen: [\"inet:%s\"]\nmilter:\n  listen: []\nadmin:\n  socket: \"\"\nstore:\n  dsn: %q\nweb:\n  listen: 127.0.0.1:0\n",
		web.URL, freeTCPAddr(t), filepath.Join(dir, "mailwall.db")))
	serveFirstLine(t, cfg, "listening on inet:")
	// The first round runs at start; wait for it (bounded), not for a
	// time.
	for i := 0; ; i++ {
		if got := d2Ask(t, server, "mail.home.test.", dns.TypeA); got == "127.0.0.40" {
			break
		}
		if i == 300 {
			t.Fatalf("serve did not publish 127.0.0.40 in 30s: A is %s", d2Ask(t, server, "mail.home.test.", dns.TypeA))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := d2Ask(t, server, "home.test.", dns.TypeTXT); got != "v=spf1 mx a:relay.provider.test ip4:127.0.0.40 -all" {
		t.Errorf("SPF %s", got)
	}
}

// TestDDNSAgainstLabDNSCommand: "mailwall lab-dns" with lab_dns.update_keys
// (the key file as tsig-keygen writes it) and write_zones takes the update
// of "mailwall ddns" and writes the zone file back.
func TestDDNSAgainstLabDNSCommand(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "home.test.zone")
	os.WriteFile(zone, []byte(d2Zone), 0o644)
	key := filepath.Join(dir, "home.key")
	os.WriteFile(key, []byte("key \"home-ddns\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItb2N0ZXRzISE=\";\n};\n"), 0o600)
	listen := freeTCPAddr(t)
	_, port, _ := net.SplitHostPort(listen)
	cfg := filepath.Join(dir, "mailwall.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`lab_dns:
  listen: %s
  zones: [%s]
  update_keys: [{name: home-ddns, key_file: %s, zones: [home.test]}]
  write_zones: true
ddns:
  names: [mail.home.test]
  spf_names: [home.test]
  server: %s
  key_name: home-ddns
  key_file: %s
  ns_port: %s
  lab_allow_loopback: true
`, listen, zone, key, listen, key, port)), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	pr, pw := io.Pipe()
	go func() {
		done <- run(ctx, []string{"lab-dns", "--config", cfg}, nil, syncPipe{pw}, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	if line, _ := bufio.NewReader(pr).ReadString('\n'); !strings.Contains(line, "lab DNS listening on "+listen) {
		t.Fatalf("lab-dns said %q", line)
	}
	go io.Copy(io.Discard, pr)

	code, out, errs := runCLI("ddns", "--config", cfg, "--address", "127.0.0.50")
	if code != 0 || !strings.Contains(out, "visible at ns1.home.test.@127.0.0.1:"+port) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	text, _ := os.ReadFile(zone)
	if !strings.Contains(string(text), "127.0.0.50") || !strings.Contains(string(text), `"v=spf1 mx a:relay.provider.test ip4:127.0.0.50 -all"`) {
		t.Errorf("zone file not written back:\n%s", text)
	}
}
