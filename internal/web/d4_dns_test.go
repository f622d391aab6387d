package web

import (
	"context"
	"regexp"
	"testing"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
	"mailwall/internal/labtest"
)

// The DNS page shows each cached answer's DNSSEC status: secure for a
// signed zone, insecure for an unsigned one, unvalidated when validation
// is off.
func TestD4DNSPageShowsDNSSEC(t *testing.T) {
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{"plain.test": {Unsigned: true}}},
		labtest.Zone(t, "good.test", "mail IN A 192.0.2.1"), labtest.Zone(t, "plain.test", "mail IN A 192.0.2.2"))
	cache := dnsx.NewCache(client, dnsx.CacheOptions{})
	s := newSite(t, func(d *Dashboard) { d.Cache = cache })
	ctx := context.Background()
	for _, n := range []string{"mail.good.test", "mail.plain.test"} {
		if _, err := cache.Query(ctx, n, dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	c := s.client()
	s.login(t, c)
	_, body, _ := fetch(t, c, "GET", s.URL+"/dns", nil)
	for _, want := range []string{
		`<td>mail.good.test.</td><td>A</td>.*<td class="dnssec-secure">secure</td>`,
		`<td>mail.plain.test.</td><td>A</td>.*<td class="dnssec-insecure">insecure<div class="dnssec-reason">`, // the reason: TestD5DNSPageShowsInsecureReason
	} {
		if !regexp.MustCompile(want).MatchString(body) {
			t.Errorf("dns page lacks %s:\n%s", want, body)
		}
	}
	// The site's own cache does not validate.
	s = newSite(t)
	s.cache.Query(ctx, "mail.example.test", dns.TypeA)
	c = s.client()
	s.login(t, c)
	if _, body, _ := fetch(t, c, "GET", s.URL+"/dns", nil); !regexp.MustCompile(`<td>mail.example.test.</td>.*<td class="dnssec-unvalidated">unvalidated</td>`).MatchString(body) {
		t.Errorf("validation off:\n%s", body)
	}
}
