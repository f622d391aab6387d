package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestG1LabRunGreylist: "mailwall lab run examples/lab-greylist.yaml"
// prints the dynamic-looking host deferred with serve's greylisting
// text, then its retry after the lab's delay accepted, and the relay
// with a proper name accepted at once, with no retry.
func TestG1LabRunGreylist(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-e2e-g1-lab-")
	out, err := exec.Command(bin, "lab", "run", "../../examples/lab-greylist.yaml", "--dir", filepath.Join(root, "lab"),
		"--dns", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--mx-port", "0").Output()
	if err != nil {
		t.Fatalf("lab run: %v\n%s", err, out)
	}
	t.Logf("lab run:\n%s", out)
	var first, retry, relay, relayRetry bool
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "p1-2-3-4.pool.isp.test" && f[1] == "(retry)":
			retry = strings.Contains(l, " 250 ") && !strings.Contains(l, "deferred")
		case len(f) > 0 && f[0] == "p1-2-3-4.pool.isp.test":
			first = strings.Contains(l, "deferred") && strings.Contains(l,
				"450 4.7.1 Greylisted, see RFC 6647 (host name p1-2-3-4.pool.isp.test looks dynamic (S25R rule1)): try again in 2 seconds")
		case len(f) > 1 && f[0] == "relay.isp.test" && f[1] == "(retry)":
			relayRetry = true
		case len(f) > 0 && f[0] == "relay.isp.test":
			relay = strings.Contains(l, "accept") && strings.Contains(l, " 250 ")
		}
	}
	if !first || !retry || !relay || relayRetry {
		t.Errorf("want p1-2-3-4.pool.isp.test deferred (greylisted) then accepted on its retry, relay.isp.test accepted at once:\n%s", out)
	}
}
