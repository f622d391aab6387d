package domaincheck

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
)

// TestMXAgreement: the MX's address, its PTR and the SPF record, agreeing
// and drifted apart as after an address change.
func TestMXAgreement(t *testing.T) {
	rev := zone(t, "127.in-addr.arpa", `@ IN SOA ns1.home.test. hostmaster.home.test. 1 3600 900 1209600 300
@ IN NS ns1.home.test.
10.0.0 IN PTR mail.ok.test.
20.0.0 IN PTR old.stale.test.
21.0.0 IN PTR gw.other.test.
`)
	zones := []*labdns.Zone{rev,
		zone(t, "ok.test", `@ IN SOA ns1 hostmaster 1 3600 900 1209600 300
@ IN NS ns1
ns1 IN A 127.0.0.2
@ IN MX 10 mail
mail IN A 127.0.0.10
@ IN TXT "v=spf1 ip4:127.0.0.10 -all"
`),
		// The A record followed the new address (.20); the SPF term and
		// the PTR's name still point at the old one (.10).
		zone(t, "stale.test", `@ IN SOA ns1 hostmaster 1 3600 900 1209600 300
@ IN NS ns1
ns1 IN A 127.0.0.2
@ IN MX 10 mail
mail IN A 127.0.0.20
old IN A 127.0.0.10
@ IN TXT "v=spf1 ip4:127.0.0.10 -all"
`),
		// The PTR names a host that resolves back, but not the MX.
		zone(t, "other.test", `@ IN SOA ns1 hostmaster 1 3600 900 1209600 300
@ IN NS ns1
ns1 IN A 127.0.0.2
@ IN MX 10 mail
mail IN A 127.0.0.21
gw IN A 127.0.0.21
@ IN TXT "v=spf1 mx -all"
`),
	}
	port := serverPair(t, zones, zones, false)
	c := &Checker{Resolver: &dnsx.Client{Servers: []string{fmt.Sprintf("127.0.0.2:%d", port)}, Timeout: time.Second}, NSPort: port, Timeout: time.Second}
	for _, tc := range []struct {
		domain string
		want   []Finding // Section MX; matched by status and text
		not    []string
	}{
		{"ok.test", []Finding{{Status: Pass, Message: "mail.ok.test (127.0.0.10): address, PTR (mail.ok.test) and SPF agree"}}, []string{"stale", "gives"}},
		{"stale.test", []Finding{
			{Status: Warn, Message: "mail.stale.test (127.0.0.20): the PTR names old.stale.test, which resolves to 127.0.0.10, not 127.0.0.20"},
			{Status: Warn, Message: "mail.stale.test (127.0.0.20): the SPF record of stale.test gives fail for the MX's own address"},
		}, []string{"agree"}},
		{"other.test", []Finding{{Status: Warn, Message: "mail.other.test (127.0.0.21): the PTR names gw.other.test, not the MX host mail.other.test"}}, []string{"agree", "gives"}},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			rep := c.Check(context.Background(), tc.domain)
			for _, w := range tc.want {
				if !rep.Has(SectionMX, w.Status, w.Message) {
					t.Errorf("no %s finding %q in:\n%v", w.Status, w.Message, rep.Findings)
				}
			}
			for _, f := range rep.Findings {
				for _, n := range tc.not {
					if f.Section == SectionMX && strings.Contains(f.String(), n) {
						t.Errorf("unexpected finding %q", f)
					}
				}
			}
		})
	}
}
