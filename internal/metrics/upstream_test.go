package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"mailwall/internal/dnsx"
)

type fakeUpstream struct{ err error }

func (f fakeUpstream) Query(context.Context, string, uint16) (*dnsx.Answer, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &dnsx.Answer{}, nil
}

// TestUpstreamAndHeloCounters: the upstream client's failures are counted
// by kind, its answers not at all, and HELO checks by action.
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
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`mailwall_dns_upstream_errors_total{kind="timeout"} 1`,
		`mailwall_dns_upstream_errors_total{kind="servfail"} 2`,
		`mailwall_dns_upstream_errors_total{kind="network"} 1`,
		`mailwall_dns_upstream_errors_total{kind="invalid"} 1`,
		`mailwall_helo_total{action="accept"} 2`,
		`mailwall_helo_total{action="reject"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
