package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/labtest"
)

// The monitoring files the package ships (dist/mkdeb.sh installs them
// under /usr/share/mailwall/monitoring).
const (
	opAlerts    = "../../dist/monitoring/mailwall-alerts.yml"
	opDashboard = "../../dist/monitoring/mailwall-dashboard.json"
)

// TestOpAlertRulesPromtool checks the shipped alert rules with
// Prometheus's own checker (Debian's package prometheus).
func TestOpAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatal("MAILWALL_E2E=1 but promtool is not installed (apt-get install prometheus)")
		}
		t.Skip("promtool not installed")
	}
	out, err := exec.Command(promtool, "check", "rules", opAlerts).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

var opMetricName = regexp.MustCompile(`\bmailwall_[a-z_]+`)

// opReferencedMetrics returns the mailwall_* names the alert rules'
// expressions and the dashboard's queries use, each with where it is used.
func opReferencedMetrics(t *testing.T) map[string]string {
	t.Helper()
	refs := map[string]string{}
	rules, err := os.ReadFile(opAlerts)
	if err != nil {
		t.Fatal(err)
	}
	// Only the expressions: the annotations' prose names metrics too, and
	// those must exist as well, so the whole file is scanned.
	for _, n := range opMetricName.FindAllString(string(rules), -1) {
		refs[n] = "alert rules"
	}
	b, err := os.ReadFile(opDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Query any }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range opMetricName.FindAllString(tg.Expr, -1) {
				refs[n] = "dashboard panel " + p.Title
			}
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			for _, n := range opMetricName.FindAllString(q, -1) {
				refs[n] = "dashboard variable"
			}
		}
	}
	return refs
}

// TestOpMonitoringMetricsExist starts serve, gives it a milter message and
// a policy request, and checks that every mailwall_* metric the shipped
// alert rules and dashboard use is in its /metrics. The few series that
// appear only when their feature is configured and used (DNS blocklists,
// greylisting, the site's lists) must at least be declared by
// internal/metrics.
func TestOpMonitoringMetricsExist(t *testing.T) {
	if os.Getenv("MAILWALL_E2E") != "1" {
		t.Skip("MAILWALL_E2E=1 runs serve")
	}
	refs := opReferencedMetrics(t)
	root, bin := e2eRoot(t, "mailwall-operate-")
	d := startDaemon(t, bin, root, daemonSetup{dns: labtest.Lab(t)})
	if _, _, err := deliver(d.milter, "OPMETRICS1"); err != nil {
		t.Fatal(err)
	}
	policyAsk(t, d.policy, "127.0.0.2", "mail.example.test", "a@example.test")
	// The milter answers before it counts the message: wait for it.
	for deadline := time.Now().Add(10 * time.Second); opMetricSum(t, d, "mailwall_messages_total{") == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := http.Get("http://" + d.web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	exported := map[string]bool{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		exported[name] = true
	}
	declared, err := os.ReadFile("../../internal/metrics/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	onlyWhenUsed := []string{"mailwall_dnsbl_lookups_total", "mailwall_dnsbl_actions_total", "mailwall_greylist_total", "mailwall_lists_total"}
	if len(refs) < 10 {
		t.Errorf("only %d metrics referenced: %v", len(refs), refs)
	}
	for name, where := range refs {
		if exported[name] {
			continue
		}
		if slices.Contains(onlyWhenUsed, name) && strings.Contains(string(declared), `"`+name+`"`) {
			continue
		}
		t.Errorf("%s (used by the %s) is not in serve's /metrics", name, where)
	}
}

// TestOpDebShipsMonitoring builds the .deb and checks what item 6 puts in
// it: the dashboard and alert rules under /usr/share/mailwall/monitoring,
// a unit that logs to the mail facility, and a binary whose "version"
// names the package's version (stamped in by mkdeb.sh).
func TestOpDebShipsMonitoring(t *testing.T) {
	if os.Getenv("MAILWALL_E2E") != "1" {
		t.Skip("MAILWALL_E2E=1 builds the package")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatal("MAILWALL_E2E=1 but dpkg-deb is not installed")
	}
	dir := t.TempDir()
	out, err := exec.Command("bash", "../../dist/mkdeb.sh", dir).Output()
	if err != nil {
		t.Fatalf("mkdeb.sh: %v", err)
	}
	deb := strings.TrimSpace(string(out))
	root := dir + "/root"
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/share/mailwall/monitoring/mailwall-dashboard.json", "usr/share/mailwall/monitoring/mailwall-alerts.yml"} {
		if _, err := os.Stat(root + "/" + f); err != nil {
			t.Errorf("not in the package: %v", err)
		}
	}
	unit, err := os.ReadFile(root + "/lib/systemd/system/mailwall.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nSyslogFacility=mail\n", "\nSyslogIdentifier=mailwall\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	pkgVersion, err := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(root+"/usr/bin/mailwall", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "mailwall " + strings.TrimSpace(string(pkgVersion)) + " "; !strings.HasPrefix(string(got), want) {
		t.Errorf("mailwall --version: %q, want the package's %q", got, want)
	}
}

// TestOpHeloAndUpstreamMetrics runs serve against a DNS server that is not
// there (a closed loopback port): the policy request's lookups count as
// upstream errors, and the milter session's HELO as a HELO check.
func TestOpHeloAndUpstreamMetrics(t *testing.T) {
	if os.Getenv("MAILWALL_E2E") != "1" {
		t.Skip("MAILWALL_E2E=1 runs serve")
	}
	root, bin := e2eRoot(t, "mailwall-operate-")
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, bin, root, daemonSetup{dns: dead, dnsTimeout: "200ms"})
	if got := d.metric(t, `mailwall_helo_total{action="accept",source="milter"}`); got != 0 {
		t.Fatalf("HELO checks before any session: %v", got)
	}
	policyAsk(t, d.policy, "127.0.0.2", "mail.example.test", "a@example.test")
	deliver(d.milter, "OPHELO1") // its verdict is a tempfail: DNS is down
	if got := d.metric(t, `mailwall_helo_total{action="accept",source="milter"}`); got != 1 {
		t.Errorf("mailwall_helo_total{action=\"accept\",source=\"milter\"} = %v, want 1", got)
	}
	// The policy server checks the HELO identity at each request (its
	// helo_reject is Fail): the one above and a bounce's.
	policyAsk(t, d.policy, "127.0.0.2", "mail.example.test", "")
	if got := opMetricSum(t, d, `mailwall_helo_total{`, `source="policy"`); got != 2 {
		t.Errorf("mailwall_helo_total{source=\"policy\"} sums to %v, want 2", got)
	}
	// Counted under the dead server's own address.
	if got := opMetricSum(t, d, `mailwall_dns_upstream_errors_total{`, `server="`+dead+`"`); got == 0 {
		t.Errorf("no mailwall_dns_upstream_errors_total{server=%q} with that DNS server down", dead)
	}
}

// opMetricSum adds up the samples of /metrics that start with prefix and
// hold every one of labels.
func opMetricSum(t *testing.T, d *daemon, prefix string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		sample, value, _ := strings.Cut(line, "} ")
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(sample, l)
		}
		if v, err := strconv.ParseFloat(value, 64); ok && err == nil {
			sum += v
		}
	}
	return sum
}
