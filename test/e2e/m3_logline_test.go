package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mailwall/internal/labtest"
)

// TestM3MessageLines: serve (log format text, level info) writes the
// milter's "message" line, formatted without slog's Record, whole and
// in slog's text form for each of 24 signed messages sent from four
// connections at once: the keys in order, the values quoted as slog
// quotes them, each line apart from the others.
func TestM3MessageLines(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-m3-line-")
	zone, signer := d3SignedZone(t, "m3.test", "v=spf1 ip4:127.0.0.61 -all")
	dns := labtest.Serve(t, append(labtest.LabZones(t), zone)...)
	d := mhStartDaemon(t, bin, root, daemonSetup{dns: dns.Addr(), dnsTimeout: "2s"}, func(cfg string) string { return cfg })
	const conns, each = 4, 6
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			for i := range each {
				subject := "m" + strconv.Itoa(c*each+i)
				fields, body := d3Fields(t, signer, "m3.test", subject)
				milterSend(t, d.milter, 30*time.Second, milterMsg{host: "mail.m3.test", ip: "127.0.0.61", queueID: "M3" + subject,
					from: "<alice@m3.test>", rcpt: "<bob@rcpt.test>", fields: fields, body: body})
			}
		})
	}
	wg.Wait()
	line := regexp.MustCompile(`^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) level=INFO msg=message queue_id=M3m(\d+) ` +
		`client=127\.0\.0\.61 helo=mail\.m3\.test from=alice@m3\.test action=\w+ stage=\S* verdict=\w+ spf=pass dmarc=pass ` +
		`dkim=pass:m3\.test iprev=\w+ arc=\w* score=-?\d+ rules=("[^"]*"|\S+) reasons=("[^"]*"|\S+) header_from=m3\.test ` +
		`message_id=<m\d+@m3\.test> size=\d+ duration=[0-9.]+(ns|µs|ms|s) signed_with=("[^"]*"|\S+)$`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := map[string]bool{}
		var bad []string
		for _, l := range strings.Split(d.log(), "\n") {
			if !strings.Contains(l, "msg=message ") {
				continue
			}
			m := line.FindStringSubmatch(l)
			if m == nil {
				bad = append(bad, l)
				continue
			}
			if seen[m[2]] {
				t.Errorf("message %s logged twice", m[2])
			}
			seen[m[2]] = true
		}
		if len(bad) > 0 {
			t.Fatalf("lines not in slog's form:\n%s", strings.Join(bad, "\n"))
		}
		if len(seen) == conns*each {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d message lines, want %d:\n%s", len(seen), conns*each, d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
