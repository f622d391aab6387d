package lists

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		kind      Kind
		in, want  string
		wantError bool
	}{
		{IP, "192.0.2.1", "192.0.2.1/32", false},
		{IP, "192.0.2.77/24", "192.0.2.0/24", false},
		{IP, "2001:db8::1", "2001:db8::1/128", false},
		{IP, "::ffff:192.0.2.1", "192.0.2.1/32", false},
		{IP, "::ffff:192.0.2.0/120", "192.0.2.0/24", false},
		{IP, "example.com", "", true},
		{Sender, "<User@Example.COM>", "user@example.com", false},
		{Sender, "example.com", "", true},
		{Sender, "@example.com", "", true},
		{Sender, "a b@example.com", "", true},
		{Rcpt, "postmaster@example.test", "postmaster@example.test", false},
		{Domain, "Example.COM.", "example.com", false},
		{Domain, "@example.com", "example.com", false},
		{Domain, ".example.com", "example.com", false},
		{Domain, "exa mple.com", "", true},
		{Domain, "", "", true},
		{"host", "x", "", true},
	} {
		got, err := Normalize(c.kind, c.in)
		if (err != nil) != c.wantError || got != c.want {
			t.Errorf("Normalize(%s, %q) = %q, %v; want %q (error %v)", c.kind, c.in, got, err, c.want, c.wantError)
		}
	}
}

// TestCheck is the matching table: networks, addresses, domains and
// their subdomains, recipients, expiry, and the rule that an allow entry
// on a sender or domain needs the identity authenticated while a block
// entry does not.
func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	set := Compile([]Entry{
		{List: Allow, Kind: IP, Value: "198.51.100.0/24", Note: "backup MX"},
		{List: Block, Kind: IP, Value: "203.0.113.9"},
		{List: Allow, Kind: IP, Value: "2001:db8::/32"},
		{List: Allow, Kind: Domain, Value: "partner.example"},
		{List: Allow, Kind: Sender, Value: "billing@vendor.example"},
		{List: Block, Kind: Domain, Value: "spam.example"},
		{List: Block, Kind: Sender, Value: "pest@free.example"},
		{List: Allow, Kind: Rcpt, Value: "abuse@here.example"},
		{List: Allow, Kind: Rcpt, Value: "postmaster@here.example"},
		{List: Block, Kind: Rcpt, Value: "gone@here.example"},
		{List: Allow, Kind: Domain, Value: "old.example", Expires: now.Add(-time.Second)},
		{List: Block, Kind: IP, Value: "not an ip"}, // skipped
	})
	if set.Len() != 11 {
		t.Errorf("Len %d, want 11 (the bad entry skipped)", set.Len())
	}
	ip := netip.MustParseAddr
	for _, c := range []struct {
		name   string
		q      Query
		want   string // "allow", "block" or ""
		entry  string // the deciding entry's value
		unauth int    // allow entries that matched unauthenticated
	}{
		{"allowed network", Query{IP: ip("198.51.100.200")}, "allow", "198.51.100.0/24", 0},
		{"allowed network, mapped address", Query{IP: ip("::ffff:198.51.100.7")}, "allow", "198.51.100.0/24", 0},
		{"allowed v6 network", Query{IP: ip("2001:db8:1::5")}, "allow", "2001:db8::/32", 0},
		{"outside the network", Query{IP: ip("198.51.101.1")}, "", "", 0},
		{"blocked address", Query{IP: ip("203.0.113.9")}, "block", "203.0.113.9/32", 0},
		{"From domain, DMARC pass", Query{From: []string{"ceo@partner.example"}, FromDomain: "partner.example", FromAuth: true}, "allow", "partner.example", 0},
		{"From subdomain, DMARC pass", Query{From: []string{"a@mail.partner.example"}, FromDomain: "mail.partner.example", FromAuth: true}, "allow", "partner.example", 0},
		{"From spoofed: DMARC fail", Query{From: []string{"ceo@partner.example"}, FromDomain: "partner.example", FromAuth: false}, "", "", 1},
		{"look-alike is no subdomain", Query{From: []string{"ceo@evilpartner.example"}, FromDomain: "evilpartner.example", FromAuth: true}, "", "", 0},
		{"second From not the authenticated one", Query{From: []string{"x@attacker.example", "ceo@partner.example"}, FromDomain: "attacker.example", FromAuth: true}, "", "", 1},
		{"MAIL FROM address, SPF pass", Query{MailFrom: "Billing@Vendor.example", MailFromAuth: true}, "allow", "billing@vendor.example", 0},
		{"MAIL FROM address, no SPF pass", Query{MailFrom: "billing@vendor.example"}, "", "", 1},
		{"other address of the domain", Query{MailFrom: "sales@vendor.example", MailFromAuth: true}, "", "", 0},
		{"blocked domain, unauthenticated", Query{MailFrom: "x@host.spam.example"}, "block", "spam.example", 0},
		{"blocked domain in From", Query{From: []string{"x@spam.example"}}, "block", "spam.example", 0},
		{"blocked From given as its domain", Query{From: []string{"@spam.example"}}, "block", "spam.example", 0},
		{"blocked sender", Query{MailFrom: "pest@free.example"}, "block", "pest@free.example", 0},
		{"block wins over allow", Query{IP: ip("198.51.100.1"), MailFrom: "pest@free.example"}, "block", "pest@free.example", 0},
		{"every recipient wants everything", Query{Rcpts: []string{"Abuse@here.example", "postmaster@here.example"}}, "allow", "abuse@here.example", 0},
		{"one recipient does not", Query{Rcpts: []string{"abuse@here.example", "bob@here.example"}}, "", "", 0},
		{"blocked recipient", Query{Rcpts: []string{"gone@here.example"}}, "block", "gone@here.example", 0},
		{"recipient who wants everything beats a block", Query{IP: ip("203.0.113.9"), Rcpts: []string{"postmaster@here.example"}}, "allow", "postmaster@here.example", 0},
		{"but not for other recipients", Query{IP: ip("203.0.113.9"), Rcpts: []string{"postmaster@here.example", "bob@here.example"}}, "block", "203.0.113.9/32", 0},
		{"recipient allow in place of a client allow", Query{IP: ip("198.51.100.1"), Rcpts: []string{"abuse@here.example"}}, "allow", "abuse@here.example", 0},
		{"expired entry", Query{From: []string{"a@old.example"}, FromDomain: "old.example", FromAuth: true}, "", "", 0},
		{"nothing", Query{IP: ip("192.0.2.1"), MailFrom: "a@b.example", From: []string{"a@b.example"}}, "", "", 0},
	} {
		c.q.Now = now
		d := set.Check(c.q)
		got, entry := "", ""
		switch {
		case d.Blocked():
			got, entry = "block", d.Block.Entry.Value
		case d.Allowed():
			got, entry = "allow", d.Allow.Entry.Value
		}
		if got != c.want || entry != c.entry || len(d.Unauthenticated) != c.unauth {
			t.Errorf("%s: got %q %q (%d unauthenticated), want %q %q (%d): %q", c.name, got, entry, len(d.Unauthenticated), c.want, c.entry, c.unauth, d.Reasons())
		}
	}
	var none *Set
	if d := none.Check(Query{IP: ip("203.0.113.9")}); d.Blocked() || d.Allowed() {
		t.Error("a nil set matched")
	}
}

func TestReasons(t *testing.T) {
	set := Compile([]Entry{{List: Allow, Kind: Domain, Value: "partner.example", Note: "contract 7"}})
	d := set.Check(Query{From: []string{"ceo@partner.example"}, FromDomain: "partner.example"})
	r := d.Reasons()
	if len(r) != 1 || !strings.Contains(r[0], "not authenticated") || !strings.Contains(r[0], "From ceo@partner.example") || !strings.Contains(r[0], "contract 7") {
		t.Errorf("reasons %q", r)
	}
}

func BenchmarkCheck(b *testing.B) {
	var entries []Entry
	for i := range 1000 {
		entries = append(entries, Entry{List: Block, Kind: Domain, Value: "d" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + ".example"})
	}
	entries = append(entries, Entry{List: Allow, Kind: IP, Value: "10.0.0.0/8"})
	set := Compile(entries)
	q := Query{IP: netip.MustParseAddr("192.0.2.1"), MailFrom: "a@mail.sender.example", From: []string{"a@sender.example"}, FromDomain: "sender.example", FromAuth: true, Rcpts: []string{"bob@here.example"}}
	b.ReportAllocs()
	for b.Loop() {
		set.Check(q)
	}
}

// TestCheckMostSpecific: of several networks holding the client, the
// longest prefix is the one reported.
func TestCheckMostSpecific(t *testing.T) {
	set := Compile([]Entry{{List: Allow, Kind: IP, Value: "10.0.0.0/8"}, {List: Allow, Kind: IP, Value: "10.1.2.0/24"},
		{List: Allow, Kind: IP, Value: "10.1.0.0/16"}, {List: Allow, Kind: IP, Value: "::/0"}})
	if d := set.Check(Query{IP: netip.MustParseAddr("10.1.2.3")}); d.Allow == nil || d.Allow.Entry.Value != "10.1.2.0/24" {
		t.Errorf("got %+v", d.Allow)
	}
	if d := set.Check(Query{IP: netip.MustParseAddr("10.9.9.9")}); d.Allow == nil || d.Allow.Entry.Value != "10.0.0.0/8" {
		t.Errorf("got %+v", d.Allow)
	}
	if d := set.Check(Query{IP: netip.MustParseAddr("2001:db8::1")}); d.Allow == nil || d.Allow.Entry.Value != "::/0" {
		t.Errorf("v6: got %+v", d.Allow)
	}
}
