package e2e

// Issue 23's follow-ups on the listeners, against the real binary: what
// serve logs, and exports in /metrics, while a flood of connections keeps
// it out of file descriptors.

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"mailwall/internal/labtest"
)

// TestHardenFDFloodLogAndMetrics: under a 128-descriptor limit, 400 idle
// policy connections: past about a hundred, each one accepted has to
// evict an idle one (EMFILE, evict, accept), and each eviction ended the
// EMFILE episode, so serve logged two lines per connection (about 600 for
// the flood). Now an episode is logged at most once per 10 s, so the
// flood logs one start and one end. The listener metrics count what
// happened, under listener="policy".
func TestHardenFDFloodLogAndMetrics(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-lm-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t), wrap: []string{"prlimit", "--nofile=128:128", "--"}})
	if got, _ := hlAsk(t, d.policy, 5*time.Second); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Fatalf("before: %s", got)
	}
	idle := hlIdle(t, d.policy, 400)
	// Accepted in order: once this one is answered, the 400 before it
	// have been accepted, each evicting an idle one if it had to.
	got, took := hlAsk(t, d.policy, 5*time.Second)
	t.Logf("policy request after 400 idle connections: %v", took)
	if !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Errorf("during the flood: %q", got)
	}
	// The dashboard needs a descriptor to answer /metrics: free them.
	hlClose(idle)
	time.Sleep(200 * time.Millisecond)
	d.alive(t)
	evicted := d.metric(t, `mailwall_listener_connections_evicted_total{listener="policy"}`)
	acceptErrors := d.metric(t, `mailwall_listener_accept_errors_total{listener="policy"}`)
	log := d.log()
	lines := len(regexp.MustCompile(`(?m)^.*(accept failed, retrying|accepting again).*listener="?policyd`).FindAllString(log, -1))
	t.Logf("%v evictions, %v accept errors; %d log lines about them", evicted, acceptErrors, lines)
	if evicted < 100 || acceptErrors < evicted {
		t.Fatalf("%v evictions, %v accept errors: the flood did not exhaust descriptors, the test proves nothing\n%s", evicted, acceptErrors, log)
	}
	// One episode logged (start and end); a slow machine taking over
	// 10 s for the flood would log one more.
	if lines > 4 {
		t.Errorf("%d log lines for %v EMFILE episodes, want at most 4:\n%s", lines, evicted, log[:min(len(log), 4000)])
	}
	if !strings.Contains(log, "accept failed, retrying") {
		t.Errorf("the first episode was not logged:\n%s", log)
	}
	if v := d.metric(t, "mailwall_policy_connections_evicted_total"); v != evicted {
		t.Errorf("mailwall_policy_connections_evicted_total %v, listener=policy %v: the same count", v, evicted)
	}
}
