package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// TestD1LabDNSSigned: "mailwall lab-dns" with lab_dns.dnssec signs the
// lab zones and prints the lab root's trust anchor, the same after a
// restart with dnssec_keys; "mailwall spf" with dns.dnssec: validate and
// that anchor passes; with the real root's anchors given the lab is bogus
// and SPF a temperror; with none given (the root's, and negative anchors
// for the special-use names, RFC 7646) the lab's .test is insecure.
func TestD1LabDNSSigned(t *testing.T) {
	dir := t.TempDir()
	listen := freeTCPAddr(t)
	cfg := filepath.Join(dir, "lab.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("lab_dns:\n  listen: %s\n  zones: [%s]\n  dnssec: true\n  dnssec_keys: %s\n  nsec3_zones: [example.org]\n",
		listen, strings.Join(labtest.LabZoneFiles(t), ", "), filepath.Join(dir, "keys"))), 0o644)
	start := func() (string, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		pr, pw := io.Pipe()
		go func() {
			done <- run(ctx, []string{"lab-dns", "--config", cfg}, nil, syncPipe{pw}, io.Discard)
			pw.Close()
		}()
		r := bufio.NewReader(pr)
		if line, _ := r.ReadString('\n'); !strings.Contains(line, "lab DNS listening on "+listen) {
			t.Fatalf("lab-dns said %q", line)
		}
		line, _ := r.ReadString('\n')
		_, anchor, ok := strings.Cut(strings.TrimSpace(line), "(dns.trust_anchors): ")
		if !ok || !strings.HasPrefix(anchor, ".\t") {
			t.Fatalf("no trust anchor in %q", line)
		}
		go io.Copy(io.Discard, pr)
		return anchor, func() { cancel(); <-done }
	}
	anchor, stop := start()
	stop()
	again, stop := start()
	t.Cleanup(stop)
	if again != anchor {
		t.Errorf("anchor changed across a restart with dnssec_keys:\n%s\n%s", anchor, again)
	}
	var quoted []string
	for _, a := range strings.Split(strings.TrimSpace(dnsx.RootAnchors), "\n") {
		quoted = append(quoted, fmt.Sprintf("%q", a))
	}
	rootAnchors := "[" + strings.Join(quoted, ", ") + "]"
	for _, tc := range []struct {
		anchors, want string
	}{
		{fmt.Sprintf("[%q]", anchor), "Received-SPF: Pass"},
		{rootAnchors, "Received-SPF: Temperror (mailfrom: dns: example.test TXT: DNSSEC bogus: . DNSKEY: no key matching trust anchor 20326, 38696)"}, // the real root's keys: the lab root matches none
		{"[]", "Received-SPF: Pass"}, // .test: a negative trust anchor
	} {
		c := filepath.Join(dir, "validate.yaml")
		os.WriteFile(c, []byte(fmt.Sprintf("dns:\n  servers: [%s]\n  dnssec: validate\n  trust_anchors: %s\n", listen, tc.anchors)), 0o644)
		code, out, errs := runCLI("spf", "--config", c, "--ip", "127.0.0.2", "--helo", "mail.example.test", "--sender", "a@example.test")
		if !strings.HasPrefix(out, tc.want) {
			t.Errorf("trust_anchors %s: exit %d %q %q, want %s", tc.anchors, code, out, errs, tc.want)
		}
	}
}
