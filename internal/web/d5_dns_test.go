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

// The DNS page says why an answer is insecure beside its status (issue
// 27): the delegation without DS that made it so; a secure answer has no
// reason to show.
func TestD5DNSPageShowsInsecureReason(t *testing.T) {
	_, client := labtest.ServeSigned(t, labdns.SignConfig{Zones: map[string]labdns.ZoneSigning{"plain.test": {Unsigned: true}, "nods.test": {OmitDS: true}}},
		labtest.Zone(t, "good.test", "mail IN A 192.0.2.1"), labtest.Zone(t, "plain.test", "mail IN A 192.0.2.2"), labtest.Zone(t, "nods.test", "mail IN A 192.0.2.3"))
	cache := dnsx.NewCache(client, dnsx.CacheOptions{})
	s := newSite(t, func(d *Dashboard) { d.Cache = cache })
	for _, n := range []string{"mail.good.test", "mail.plain.test", "mail.nods.test"} {
		if _, err := cache.Query(context.Background(), n, dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	c := s.client()
	s.login(t, c)
	_, body, _ := fetch(t, c, "GET", s.URL+"/dns", nil)
	for _, want := range []string{
		`<td>mail.plain.test.</td><td>A</td>.*<td class="dnssec-insecure">insecure<div class="dnssec-reason"><small>plain.test: delegation from \. without DS \(insecure, RFC 4035 §5.2\)</small></div></td>`,
		`<td>mail.nods.test.</td><td>A</td>.*<td class="dnssec-insecure">insecure<div class="dnssec-reason"><small>nods.test: delegation from \. without DS \(insecure, RFC 4035 §5.2\)</small></div></td>`,
		`<td>mail.good.test.</td><td>A</td>.*<td class="dnssec-secure">secure</td>`,
	} {
		if !regexp.MustCompile(want).MatchString(body) {
			t.Errorf("dns page lacks %s:\n%s", want, body)
		}
	}
}
