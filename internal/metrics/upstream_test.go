package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/policyd"
	"mailwall/internal/spf"
)

type fakeUpstream struct{ err error }

func (f fakeUpstream) Query(context.Context, string, uint16) (*dnsx.Answer, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &dnsx.Answer{}, nil
}

// TestUpstreamAndHeloCounters: a wrapped resolver's failures are counted
// by kind, its answers not at all, and HELO checks by source and action.
func TestUpstreamAndHeloCounters(t *testing.T) {
	m := New()
	for _, err := range []error{
		nil,
		&dnsx.Error{Temporary: true, Err: fmt.Errorf("127.0.0.1:53: %w: i/o timeout", dnsx.ErrTimeout)},
		&dnsx.Error{Temporary: true, Err: fmt.Errorf("127.0.0.1:53: %w (SERVFAIL)", dnsx.ErrServFail)},
		&dnsx.Error{Temporary: true, Err: fmt.Errorf("%w (REFUSED)", dnsx.ErrServFail)},
		&dnsx.Error{Temporary: true, Err: errors.New("127.0.0.1:53: connection refused")},
		&dnsx.Error{Err: errors.New("invalid domain name")},
	} {
		m.CountUpstream(fakeUpstream{err}).Query(context.Background(), "example.test", 1)
	}
	m.Helo("accept")
	m.Helo("accept")
	m.Helo("reject")
	for _, r := range []policyd.Response{{Action: policyd.Reject}, {Action: policyd.Prepend}, {Action: policyd.Reject}} {
		m.ObservePolicy(r, time.Millisecond)
	}
	m.PolicyHelo(spf.Fail, policyd.Reject)
	m.PolicyHelo(spf.Pass, policyd.Prepend)
	m.PolicyHelo(spf.TempError, policyd.Defer)
	body := scrape(t, m)
	for _, want := range []string{
		`mailwall_dns_upstream_errors_total{kind="timeout",server=""} 1`,
		`mailwall_dns_upstream_errors_total{kind="servfail",server=""} 2`,
		`mailwall_dns_upstream_errors_total{kind="network",server=""} 1`,
		`mailwall_dns_upstream_errors_total{kind="invalid",server=""} 1`,
		`mailwall_helo_total{action="accept",source="milter"} 2`,
		`mailwall_helo_total{action="reject",source="milter"} 1`,
		`mailwall_helo_total{action="reject",source="policy"} 1`,
		`mailwall_helo_total{action="accept",source="policy"} 1`,
		`mailwall_helo_total{action="tempfail",source="policy"} 1`,
		`mailwall_policyd_requests_total{action="REJECT"} 2`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestUpstreamPerServer: through a real client on loopback, each failing
// server is counted under its own address and kind, even when a later
// server answered; the answering server's series stay at 0, present from
// the start.
func TestUpstreamPerServer(t *testing.T) {
	good := labtest.Serve(t, labtest.Zone(t, "example.test", "www IN A 127.0.0.1"))
	refusing, silent := labtest.Serve(t), labtest.Silent(t)
	m := New()
	c := &dnsx.Client{Servers: []string{silent, refusing.Addr(), good.Addr()}, Timeout: 100 * time.Millisecond, Attempts: 1}
	res := m.CountUpstream(c)
	if !strings.Contains(scrape(t, m), `mailwall_dns_upstream_errors_total{kind="timeout",server="`+good.Addr()+`"} 0`) {
		t.Error("no series at 0 for a configured server before any query")
	}
	for range 2 {
		if _, err := res.Query(context.Background(), "www.example.test", dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	body := scrape(t, m)
	for _, want := range []string{
		`mailwall_dns_upstream_errors_total{kind="timeout",server="` + silent + `"} 2`,
		`mailwall_dns_upstream_errors_total{kind="servfail",server="` + refusing.Addr() + `"} 2`,
		`mailwall_dns_upstream_errors_total{kind="timeout",server="` + good.Addr() + `"} 0`,
		`mailwall_dns_upstream_errors_total{kind="servfail",server="` + good.Addr() + `"} 0`,
		`mailwall_dns_upstream_errors_total{kind="network",server="` + good.Addr() + `"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
