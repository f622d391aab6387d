package greylist

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNormalizeSender(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Alice@Example.TEST", "alice@example.test"},
		{"", ""},
		{"alice+lists@example.test", "alice@example.test"},
		{"bounce-123-456@lists.example.test", "bounce-#-#@lists.example.test"},
		{"user42@example.test", "user42@example.test"}, // digits inside a word stay
		{"42@example.test", "#@example.test"},
		{"prvs=1234abcdef=alice@example.test", "alice@example.test"}, // BATV: prvs=tag-val=local
		{"prvs=alice=1234abcdef@example.test", "alice@example.test"}, // the other order seen in the wild
		{"msprvs1=18123abcdeF=bounces-1@bf.example.test", "bounces-#@bf.example.test"},
		{"SRS0=HHH=TT=orig.test=alice@fwd.example.test", "srs0=hhh=tt=orig.test=alice@fwd.example.test"}, // kept whole
	} {
		if got := NormalizeSender(c.in); got != c.want {
			t.Errorf("NormalizeSender(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestClientKey(t *testing.T) {
	for _, c := range []struct{ ip, net, awl string }{
		{"192.0.2.77", "192.0.2.0/24", "192.0.2.77"},
		{"::ffff:192.0.2.77", "192.0.2.0/24", "192.0.2.77"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "2001:db8:1:2::/64"},
	} {
		ip := netip.MustParseAddr(c.ip)
		if got := ClientKey(ip); got != c.net {
			t.Errorf("ClientKey(%s) = %s, want %s", c.ip, got, c.net)
		}
		if got := autoAllowKey(ip); got != c.awl {
			t.Errorf("autoAllowKey(%s) = %s, want %s", c.ip, got, c.awl)
		}
	}
}

// clock is a fake time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

const dyn = "1-2-3-4.dyn.example.test"

// step is one request at an offset from the start, and what it must give.
type step struct {
	at      time.Duration
	ip      string
	name    string
	sender  string
	rcpt    string
	auth    bool
	want    Outcome
	wait    time.Duration // Deferred
	comment string
}

func runSteps(t *testing.T, cfg Config, st Store, steps []step) {
	t.Helper()
	g, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c := &clock{t: start}
	g.now = c.now
	for i, s := range steps {
		c.t = start.Add(s.at)
		r := Request{IP: netip.MustParseAddr(or(s.ip, "192.0.2.10")), ClientName: or(s.name, dyn), Sender: or(s.sender, "alice@example.org"),
			Recipient: or(s.rcpt, "bob@rcpt.test"), Authenticated: s.auth}
		d := g.Check(context.Background(), r)
		if d.Outcome != s.want || s.want == Deferred && d.Wait != s.wait {
			t.Errorf("step %d (%s, +%s): %s wait %s (%v), want %s wait %s", i, s.comment, s.at, d.Outcome, d.Wait, d.Err, s.want, s.wait)
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestCheck(t *testing.T) {
	const day = 24 * time.Hour
	for _, c := range []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"postgrey's delay", Config{}, []step{
			{at: 0, want: Deferred, wait: 300 * time.Second, comment: "first attempt"},
			{at: 100 * time.Second, want: Deferred, wait: 200 * time.Second, comment: "too early"},
			{at: 300 * time.Second, want: Passed, comment: "after the delay"},
			{at: time.Hour, want: Passed, comment: "passed stays passed"},
			{at: time.Hour, rcpt: "carol@rcpt.test", want: Deferred, wait: 300 * time.Second, comment: "another recipient"},
			{at: time.Hour, ip: "192.0.2.200", want: Passed, comment: "same /24, other host of the pool"},
			{at: time.Hour, ip: "198.51.100.10", want: Deferred, wait: 300 * time.Second, comment: "another network"},
			{at: time.Hour, sender: "Alice+news@EXAMPLE.org", want: Passed, comment: "sender normalized"},
		}},
		{"who is greylisted (rgrey)", Config{AllowNets: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"),
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}, []step{
			{name: "mail.example.org", want: NotSubject, comment: "verified static name"},
			{name: "unknown", want: Deferred, wait: 300 * time.Second, comment: "no FCrDNS"},
			{name: "dhcp0042.isp.test", sender: "x@y.test", want: Deferred, wait: 300 * time.Second, comment: "S25R rule6"},
			{ip: "127.0.0.5", want: Exempt, comment: "loopback, listed"},
			{ip: "::1", want: Exempt, comment: "loopback v6, listed"},
			{ip: "203.0.113.9", want: Exempt, comment: "allowed network"},
			{auth: true, want: Exempt, comment: "SASL"},
		}},
		{"mode all", Config{Mode: ModeAll}, []step{
			{name: "mail.example.org", want: Deferred, wait: 300 * time.Second, comment: "static name greylisted too"},
		}},
		{"retry window", Config{}, []step{
			{at: 0, want: Deferred, wait: 300 * time.Second},
			{at: 2*day + time.Second, want: Deferred, wait: 300 * time.Second, comment: "first retry past 2 days: starts over"},
			{at: 2*day + 301*time.Second, want: Passed},
		}},
		{"max age", Config{}, []step{
			{at: 0, want: Deferred, wait: 300 * time.Second},
			{at: 300 * time.Second, want: Passed},
			{at: 30 * day, want: Passed, comment: "30 days later: kept"},
			{at: 65*day + time.Second, want: Deferred, wait: 300 * time.Second, comment: "35 days without mail: forgotten"},
		}},
		{"auto allow after 5 passes, one an hour", Config{}, []step{
			{at: 0, rcpt: "r1@rcpt.test", want: Deferred, wait: 300 * time.Second},
			{at: 0, rcpt: "r2@rcpt.test", want: Deferred, wait: 300 * time.Second},
			{at: 300 * time.Second, rcpt: "r1@rcpt.test", want: Passed, comment: "pass 1"},
			{at: 300 * time.Second, rcpt: "r2@rcpt.test", want: Passed, comment: "same hour: not counted"},
			{at: 2 * time.Hour, rcpt: "r3@rcpt.test", want: Deferred, wait: 300 * time.Second},
			{at: 2*time.Hour + 300*time.Second, rcpt: "r3@rcpt.test", want: Passed, comment: "pass 2"},
			{at: 4 * time.Hour, rcpt: "r4@rcpt.test", want: Deferred, wait: 300 * time.Second},
			{at: 4*time.Hour + 300*time.Second, rcpt: "r4@rcpt.test", want: Passed, comment: "pass 3"},
			{at: 6 * time.Hour, rcpt: "r5@rcpt.test", want: Deferred, wait: 300 * time.Second},
			{at: 6*time.Hour + 300*time.Second, rcpt: "r5@rcpt.test", want: Passed, comment: "pass 4"},
			{at: 8 * time.Hour, rcpt: "r6@rcpt.test", want: Deferred, wait: 300 * time.Second},
			{at: 8*time.Hour + 300*time.Second, rcpt: "r6@rcpt.test", want: Passed, comment: "pass 5"},
			{at: 9 * time.Hour, rcpt: "r7@rcpt.test", want: AutoAllowed, comment: "a new triplet: not greylisted"},
			{at: 9 * time.Hour, ip: "192.0.2.11", rcpt: "r8@rcpt.test", want: Deferred, wait: 300 * time.Second, comment: "its neighbour is not allowed"},
			{at: 9*time.Hour + 36*day, rcpt: "r9@rcpt.test", want: Deferred, wait: 300 * time.Second, comment: "allowance expired"},
		}},
		{"short delay", Config{Delay: 2 * time.Second}, []step{
			{at: 0, want: Deferred, wait: 2 * time.Second},
			{at: 1500 * time.Millisecond, want: Deferred, wait: time.Second, comment: "never less than a second"},
			{at: 2 * time.Second, want: Passed},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if cfg.AutoAllow == 0 {
				cfg.AutoAllow = DefaultAutoAllow
			}
			runSteps(t, cfg, NewMemStore(), c.steps)
		})
	}
}

func TestDeferText(t *testing.T) {
	g, _ := New(Config{}, NewMemStore())
	d := g.Check(context.Background(), Request{IP: netip.MustParseAddr("192.0.2.10"), ClientName: dyn, Sender: "a@b.test", Recipient: "bob@Rcpt.Test"})
	want := "4.7.1 Greylisted, see RFC 6647 (host name " + dyn + " looks dynamic (S25R rule1)): try again in 300 seconds"
	if d.Text != want {
		t.Errorf("text %q\nwant %q", d.Text, want)
	}
	g, _ = New(Config{Text: "Greylisted by {recipient_domain} for {client}\r\nX: {seconds}s"}, NewMemStore())
	d = g.Check(context.Background(), Request{IP: netip.MustParseAddr("192.0.2.10"), ClientName: "unknown", Recipient: "bob@Rcpt.Test"})
	if want := "4.7.1 Greylisted by rcpt.test for 192.0.2.10  X: 300s"; d.Text != want {
		t.Errorf("custom text %q, want %q (one line)", d.Text, want)
	}
}

func TestNewBounds(t *testing.T) {
	for _, cfg := range []Config{
		{Mode: "some"},
		{Tarpit: 61 * time.Second},
		{Tarpit: -time.Second},
		{Delay: 3 * time.Hour, RetryWindow: time.Hour},
		{AutoAllow: -1},
	} {
		if _, err := New(cfg, NewMemStore()); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	g, err := New(Config{Tarpit: 30 * time.Second}, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	d := g.Check(context.Background(), Request{IP: netip.MustParseAddr("192.0.2.10"), ClientName: "unknown"})
	if d.Tarpit != 30*time.Second {
		t.Errorf("tarpit %s, want 30s", d.Tarpit)
	}
}

type failStore struct{ *MemStore }

func (failStore) SeenTriplet(context.Context, Triplet, time.Time, Timing) (Seen, error) {
	return Seen{}, errors.New("database down")
}

// TestStoreDown: a failing store lets mail through (Failed), never defers.
func TestStoreDown(t *testing.T) {
	g, _ := New(Config{}, failStore{NewMemStore()})
	d := g.Check(context.Background(), Request{IP: netip.MustParseAddr("192.0.2.10"), ClientName: "unknown"})
	if d.Outcome != Failed || d.Err == nil || !strings.Contains(d.Err.Error(), "down") {
		t.Errorf("got %+v, want Failed with the error", d)
	}
}
