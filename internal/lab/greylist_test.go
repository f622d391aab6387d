package lab

import (
	"context"
	"strings"
	"testing"
	"time"
)

// greylistLab: a dynamic-looking host (S25R) and a static one; the MX
// greylists with a one-second delay.
const greylistLab = `mx: {name: mx.rcpt.test, domain: rcpt.test}
domains:
  - name: a.test
    spf: "v=spf1 ip4:127.0.0.0/8 -all"
    hosts: [{name: dyn-1-2-3-4, ip: 127.0.0.31}, {name: mail, ip: 127.0.0.32}]
greylist: {delay: 1s}
`

// TestLabGreylist: lab run shows the dynamic-looking host deferred with
// serve's greylisting text, then, on the retry after the delay, accepted;
// the static host is accepted at once and not retried.
func TestLabGreylist(t *testing.T) {
	f, err := Parse([]byte(greylistLab))
	if err != nil {
		t.Fatal(err)
	}
	f.DNS = "127.0.0.1:0"
	l, err := Start(f, Options{Dir: t.TempDir(), Pipeline: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	rows, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	WriteTable(&table, rows)
	t.Logf("lab run:\n%s", table.String())
	var dyn, retry, static []Row
	for _, r := range rows {
		switch {
		case r.Host == "dyn-1-2-3-4.a.test" && !r.Retry:
			dyn = append(dyn, r)
		case r.Host == "dyn-1-2-3-4.a.test":
			retry = append(retry, r)
		case r.Host == "mail.a.test":
			static = append(static, r)
		}
	}
	// Every host sends as every domain: one case each here.
	if len(dyn) != 1 || len(retry) != 1 || len(static) != 1 {
		t.Fatalf("rows: %d first attempts, %d retries, %d static, want 1 each", len(dyn), len(retry), len(static))
	}
	want := "450 4.7.1 Greylisted, see RFC 6647 (host name dyn-1-2-3-4.a.test looks dynamic (S25R rule1)): try again in 1 seconds"
	if dyn[0].Action != "deferred" || dyn[0].Reply != want {
		t.Errorf("first attempt: %s %q, want deferred %q", dyn[0].Action, dyn[0].Reply, want)
	}
	if retry[0].Action == "deferred" || !strings.HasPrefix(retry[0].Reply, "250 ") {
		t.Errorf("retry: %s %q, want accepted", retry[0].Action, retry[0].Reply)
	}
	if static[0].Action == "deferred" || !strings.HasPrefix(static[0].Reply, "250 ") {
		t.Errorf("static host: %s %q, want accepted at once", static[0].Action, static[0].Reply)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("the run took %s: the retry did not wait out the 1s delay", took)
	}
	if !strings.Contains(table.String(), "dyn-1-2-3-4.a.test (retry)") {
		t.Errorf("the table does not mark the retry:\n%s", table.String())
	}
}

func TestLabGreylistInvalid(t *testing.T) {
	base := "mx: {name: mx.rcpt.test, domain: rcpt.test}\ndomains: [{name: a.test, hosts: [{name: m, ip: 127.0.0.9}]}]\n"
	for _, tc := range []struct{ greylist, want string }{
		{"greylist: {mode: some}", `mode "some"`},
		{"greylist: {delay: 2m}", "not between 1s and 1m0s"},
		{"greylist: {delay: 10ms}", "not between 1s"},
		{"greylist: {delay: soon}", "lab file"},
	} {
		if _, err := Parse([]byte(base + tc.greylist)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.greylist, err, tc.want)
		}
	}
	f, err := Parse([]byte(base + "greylist: {}"))
	if err != nil || f.Greylist.Mode != "rgrey" || f.Greylist.Delay != DefaultGreylistDelay {
		t.Errorf("defaults: %+v %v", f.Greylist, err)
	}
}
