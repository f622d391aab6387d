package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Test points of RFC 5782 §5: IPv4 lists must list 127.0.0.2 and must not
// list 127.0.0.1; IPv6 lists the same as ::FFFF:7F00:2 and ::FFFF:7F00:1
// (asked in their IPv6 nibble form); domain lists must list TEST and must
// not list INVALID.
var (
	TestPoint4    = netip.AddrFrom4([4]byte{127, 0, 0, 2})
	NotListed4    = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	TestPoint6    = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 2})
	NotListed6    = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1})
	TestDomain    = "test"
	NotListedName = "invalid"
)

// ZoneHealth is one zone's self-test.
type ZoneHealth struct {
	Zone   string
	Domain bool  // a domain list
	Err    error // nil: the zone answers its test points as RFC 5782 §5 says
	// IPv6Err is the IPv6 test points' outcome for IP lists; many lists
	// serve IPv4 only, so it is informational.
	IPv6Err error
}

// SelfTest asks every configured zone about its RFC 5782 §5 test points.
// A zone that does not list its positive test point, lists its negative
// one, or answers with an error code is not answering us truly: queries
// are refused (a public resolver, a quota) or the list is gone. Filters are
// not applied: the test points need only be listed.
func (c *Checker) SelfTest(ctx context.Context) []ZoneHealth {
	var out []ZoneHealth
	for i := range c.ipZones {
		z := &c.ipZones[i]
		h := ZoneHealth{Zone: z.name}
		h.Err = c.testPair(ctx, z, ipQueryName(TestPoint4, z.name), TestPoint4.String(), ipQueryName(NotListed4, z.name), NotListed4.String())
		h.IPv6Err = c.testPair(ctx, z, ipQueryName(TestPoint6, z.name), "::FFFF:7F00:2", ipQueryName(NotListed6, z.name), "::FFFF:7F00:1")
		out = append(out, h)
	}
	for i := range c.domZones {
		z := &c.domZones[i]
		h := ZoneHealth{Zone: z.name, Domain: true}
		h.Err = c.testPair(ctx, z, TestDomain+"."+z.name, "TEST", NotListedName+"."+z.name, "INVALID")
		out = append(out, h)
	}
	return out
}

func (c *Checker) testPair(ctx context.Context, z *zone, yes, yesName, no, noName string) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Budget)
	defer cancel()
	// A bare site with no filter: any non-error answer lists.
	bare := &zone{name: z.name, sites: []Site{{Zone: z.name, Weight: 1}}}
	hits, lerr := c.ask(ctx, job{subject: yesName, qname: yes, zone: bare}, true)
	if lerr != nil {
		return fmt.Errorf("dnsbl: %s: test point %s: %w", z.name, yesName, lerr)
	}
	if len(hits) == 0 {
		return fmt.Errorf("dnsbl: %s: test point %s is not listed (RFC 5782 §5 says it must be)", z.name, yesName)
	}
	hits, lerr = c.ask(ctx, job{subject: noName, qname: no, zone: bare}, true)
	if lerr != nil {
		return fmt.Errorf("dnsbl: %s: test point %s: %w", z.name, noName, lerr)
	}
	if len(hits) > 0 {
		return fmt.Errorf("dnsbl: %s: %w", z.name, errors.New(noName+" is listed (RFC 5782 §5 says it must not be): the list answers everything"))
	}
	return nil
}
