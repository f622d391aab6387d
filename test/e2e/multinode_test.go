package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"mailwall/internal/labtest"
	"mailwall/internal/pgtest"
	"mailwall/internal/store"
)

// TestTwoNodesShareOnePostgres runs two "mailwall serve", as two MX hosts,
// on one PostgreSQL store. Mail through either shows in the other's
// dashboard, under the one password the first node made; yesterday's
// DMARC rows recorded by both are reported once per domain, not once per
// node, although both nodes' report loops run at the same time.
func TestTwoNodesShareOnePostgres(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-multinode-")
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	st, err := store.Open(ctx, "postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Yesterday's mail from four domains that ask for reports, half of it
	// through each node.
	const domains = 4
	vs := yesterdaysReportable(domains, 6, func(i int) string { return fmt.Sprintf("mx%d.rcpt.test", 1+i%2) })
	if err := st.InsertVerdicts(ctx, vs); err != nil {
		t.Fatal(err)
	}

	sink := labtest.NewSink(t)
	lab := labtest.Lab(t)
	setup := func(n int) daemonSetup {
		return daemonSetup{dns: lab, hostname: fmt.Sprintf("mx%d.rcpt.test", n), store: fmt.Sprintf("driver: postgres\n  dsn: %q", dsn),
			extra: fmt.Sprintf("reports:\n  send: true\n  receiver: rcpt.test\n  relay: %q\n  every: 1s\n", sink.Addr())}
	}
	// Started together: both report loops race for the same reports.
	type started struct {
		d *daemon
		n int
	}
	// With a PostgreSQL store the first-run password file goes to
	// systemd's StateDirectory, which the unit sets.
	t.Setenv("STATE_DIRECTORY", root)
	ch := make(chan started, 2)
	for n := 1; n <= 2; n++ {
		go func() { ch <- started{startDaemon(t, bin, fmt.Sprintf("%s/mx%d", root, n), setup(n)), n} }()
	}
	nodes := map[int]*daemon{}
	for range 2 {
		s := <-ch
		nodes[s.n] = s.d
	}
	var said []string
	for _, d := range nodes {
		for _, line := range d.said {
			if strings.HasPrefix(line, "mailwall: dashboard login admin: ") {
				if said != nil {
					t.Fatal("both nodes made a dashboard password")
				}
				said = []string{line}
			}
		}
	}
	password := hlInitialPassword(t, said)

	// Mail through each node.
	var ids []string
	for n, d := range nodes {
		for i := range 3 {
			id := fmt.Sprintf("MX%dQ%d", n, i)
			if _, r, err := deliver(d.milter, id); err != nil || !accepted(r) {
				t.Fatalf("%s: %v %v", id, r, err)
			}
			ids = append(ids, id)
		}
	}
	stored := waitForVerdicts(t, func() map[string]store.Verdict { return queueIDs(t, st) }, ids, 20*time.Second)
	for _, id := range ids {
		if want := "mx" + id[2:3] + ".rcpt.test"; stored[id].Node != want {
			t.Errorf("%s recorded by %q, want %s", id, stored[id].Node, want)
		}
	}

	// Either dashboard shows both nodes' mail, with the one password.
	for n, d := range nodes {
		page := dashboardPage(t, d.web, password, "/verdicts?hours=1")
		for _, id := range ids {
			if !strings.Contains(page, id) {
				t.Errorf("node %d's dashboard lacks %s", n, id)
			}
		}
	}

	// One report per domain at the sink, and in the store, after several
	// rounds of both loops.
	deadline := time.Now().Add(30 * time.Second)
	for len(sink.Messages()) < domains && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // three more rounds of each node's loop
	oneReportEach(t, sink, domains)
	reports, err := st.Reports(ctx, store.ReportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != domains {
		t.Errorf("%d reports in the store, want %d (one per domain and period)", len(reports), domains)
	}
	for _, d := range nodes {
		d.alive(t)
	}
}

// dashboardPage logs in to the dashboard at addr and returns a page.
func dashboardPage(t *testing.T, addr, password, path string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	base := "http://" + addr
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"user": {"admin"}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.Contains(string(b), `name="password"`) {
		t.Fatalf("%s after logging in: %d\n%s", path, resp.StatusCode, b)
	}
	return string(b)
}
