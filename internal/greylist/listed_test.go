package greylist

import (
	"context"
	"net/netip"
	"testing"
)

// TestListedMakesSubject: a request with Listed (a blocklist score at
// dnsbl.greylist_threshold) is greylisted with that reason though its
// verified, static-looking name would not be; exempt clients stay exempt.
func TestListedMakesSubject(t *testing.T) {
	g, err := New(Config{AllowNets: []netip.Prefix{netip.MustParsePrefix("192.0.2.9/32")}}, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	req := Request{IP: netip.MustParseAddr("192.0.2.1"), ClientName: "mail.example.test", Sender: "a@example.test", Recipient: "b@rcpt.test"}
	if d := g.Check(context.Background(), req); d.Outcome != NotSubject {
		t.Fatalf("static name, not listed: %s", d.Outcome)
	}
	req.Listed = "192.0.2.1 has a blocklist score of 2 (bl.example.test)"
	d := g.Check(context.Background(), req)
	if d.Outcome != Deferred || d.Reason != req.Listed {
		t.Errorf("listed: %s %q, want deferred with the listing as reason", d.Outcome, d.Reason)
	}
	req.IP = netip.MustParseAddr("192.0.2.9")
	if d := g.Check(context.Background(), req); d.Outcome != Exempt {
		t.Errorf("allowed network, listed: %s, want exempt", d.Outcome)
	}
}
