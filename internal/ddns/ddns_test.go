package ddns

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/labdns"
)

const (
	labKey    = "home-ddns."
	labSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItb2N0ZXRzISE="
	labZone   = `$ORIGIN home.test.
$TTL 300
@     IN SOA ns1 hostmaster 100 3600 600 86400 60
@     IN NS  ns1
@     IN NS  ns2
ns1   IN A   127.0.0.1
ns2   IN A   127.0.0.2
mail  IN A   127.0.0.10
@     IN MX  10 mail
@     IN TXT "v=spf1 mx include:_spf.provider.test " "ip4:127.0.0.10 ~all"
@     IN TXT "site-verification=kept"
`
)

// lab is a primary on 127.0.0.1 that takes updates signed with labKey and
// a secondary on 127.0.0.2, same port, that only changes when transfer is
// called (a zone transfer from the primary, as after a NOTIFY).
type lab struct {
	primary, secondary *labdns.Server
	port               int
}

func parseZone(t testing.TB, text string) *labdns.Zone {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(text), "", "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	z, err := labdns.NewZone(rrs)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func startLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{}
	p, err := labdns.NewWithZones(labdns.Config{
		Listen:     "127.0.0.1:0",
		AXFRAllow:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		UpdateKeys: []labdns.UpdateKey{{Name: labKey, Secret: labSecret, Zones: []string{"home.test"}}},
	}, parseZone(t, labZone))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	_, port, _ := net.SplitHostPort(p.Addr())
	s, err := labdns.NewWithZones(labdns.Config{Listen: "127.0.0.2:" + port}, parseZone(t, labZone))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Skipf("no second loopback address for the secondary: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	l.primary, l.secondary = p, s
	l.port, _ = net.LookupPort("tcp", port)
	return l
}

// transfer copies the primary's zone to the secondary by AXFR.
func (l *lab) transfer(t *testing.T) {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr("home.test.")
	env, err := new(dns.Transfer).In(m, l.primary.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		rrs = append(rrs, e.RR...)
	}
	z, err := labdns.NewZone(rrs[:len(rrs)-1]) // the SOA comes last again
	if err != nil {
		t.Fatal(err)
	}
	if err := l.secondary.SetZones(z); err != nil {
		t.Fatal(err)
	}
}

func ask(t *testing.T, server, name string, qtype uint16) []dns.RR {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, err := dns.Exchange(m, server)
	if err != nil {
		t.Fatal(err)
	}
	return r.Answer
}

func txts(t *testing.T, server string) [][]string {
	var out [][]string
	for _, rr := range ask(t, server, "home.test.", dns.TypeTXT) {
		out = append(out, rr.(*dns.TXT).Txt)
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return out
}

func soaSerial(t *testing.T, server string) uint32 {
	return ask(t, server, "home.test.", dns.TypeSOA)[0].(*dns.SOA).Serial
}

func (l *lab) updater(t testing.TB, secret string, onWait func()) (*Updater, *int) {
	t.Helper()
	u, err := New(Config{
		Names:          []string{"mail.home.test"},
		SPFNames:       []string{"home.test"},
		Server:         l.primary.Addr(),
		Key:            Key{Name: "home-ddns", Secret: secret},
		NSPort:         l.port,
		VerifyAttempts: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	waits := new(int)
	u.sleep = func(ctx context.Context, d time.Duration) error {
		*waits++
		if onWait != nil {
			onWait()
		}
		return nil
	}
	return u, waits
}

func TestAddressChangeUpdatesAAndSPF(t *testing.T) {
	l := startLab(t)
	u, waits := l.updater(t, labSecret, func() { l.transfer(t) })
	before := txts(t, l.primary.Addr())
	res, err := u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.20")})
	if err != nil {
		t.Fatalf("run: %v (%+v)", err, res)
	}
	if !res.Sent || len(res.Changes) != 2 {
		t.Errorf("result %+v: want an update with two changes", res)
	}
	// Verified at both servers; the secondary only after one wait (the
	// transfer), so it was asked again.
	if len(res.Verified) != 2 || *waits != 1 || len(res.Stale) != 0 {
		t.Errorf("verified %v, stale %v, waits %d", res.Verified, res.Stale, *waits)
	}
	for _, srv := range []string{l.primary.Addr(), l.secondary.Addr()} {
		a := ask(t, srv, "mail.home.test.", dns.TypeA)
		if len(a) != 1 || a[0].(*dns.A).A.String() != "127.0.0.20" {
			t.Errorf("%s: mail A %v", srv, a)
		}
		got := txts(t, srv)
		// The SPF record: only the ip4: term differs, the string split
		// and every other term are kept; the other TXT record too.
		want := [][]string{{"site-verification=kept"}, {"v=spf1 mx include:_spf.provider.test ", "ip4:127.0.0.20 ~all"}}
		slices.SortFunc(want, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%s: TXT %q, want %q (was %q)", srv, got, want, before)
		}
	}
	serial := soaSerial(t, l.primary.Addr())
	if serial != 101 {
		t.Errorf("serial %d, want 101 (one update)", serial)
	}

	// Idempotent: the same address again sends nothing.
	res, err = u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.20")})
	if err != nil || res.Sent || len(res.Changes) != 0 {
		t.Errorf("second run: %+v, %v; want nothing sent", res, err)
	}
	if got := soaSerial(t, l.primary.Addr()); got != serial {
		t.Errorf("serial %d after a run with nothing to change", got)
	}
}

func TestWrongKeyRefused(t *testing.T) {
	l := startLab(t)
	u, _ := l.updater(t, "b3RoZXItb3RoZXItb3RoZXItMzItb2N0ZXRzISEhISE=", nil)
	res, err := u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.20")})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "BADSIG") {
		t.Fatalf("err %v, want refused with BADSIG", err)
	}
	if res.Sent {
		t.Error("reported as sent")
	}
	if a := ask(t, l.primary.Addr(), "mail.home.test.", dns.TypeA); a[0].(*dns.A).A.String() != "127.0.0.10" {
		t.Errorf("mail A changed to %v", a)
	}
	if got := soaSerial(t, l.primary.Addr()); got != 100 {
		t.Errorf("serial %d", got)
	}
}

func TestStaleSecondaryReported(t *testing.T) {
	l := startLab(t)
	u, waits := l.updater(t, labSecret, nil) // the secondary never transfers
	res, err := u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.30")})
	if !errors.Is(err, ErrNotVisible) {
		t.Fatalf("err %v, want not visible", err)
	}
	if !res.Sent || len(res.Verified) != 1 || len(res.Stale) != 1 || !strings.Contains(res.Stale[0], "127.0.0.2") || !strings.Contains(res.Stale[0], "127.0.0.10") {
		t.Errorf("verified %v, stale %v", res.Verified, res.Stale)
	}
	if *waits != 2 {
		t.Errorf("%d waits, want 2 (3 attempts)", *waits)
	}
}

func TestHostileSPFRefused(t *testing.T) {
	l := startLab(t)
	// A second SPF record at the apex: the update must not guess.
	z := parseZone(t, labZone+`@ IN TXT "v=spf1 -all"`+"\n")
	if err := l.primary.SetZones(z); err != nil {
		t.Fatal(err)
	}
	u, _ := l.updater(t, labSecret, nil)
	res, err := u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.20")})
	if !errors.Is(err, ErrMultipleSPF) || res.Sent {
		t.Fatalf("err %v, sent %v; want ErrMultipleSPF and nothing sent", err, res.Sent)
	}
	if got := soaSerial(t, l.primary.Addr()); got != 100 {
		t.Errorf("serial %d", got)
	}
}

func TestUsable(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		lab  bool
		want bool
	}{
		{"8.8.8.8", false, true},
		{"2a00:1450::1", false, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"10.0.0.1", true, false},
		{"192.168.1.1", false, false},
		{"100.64.0.1", false, false},
		{"169.254.1.1", false, false},
		{"fe80::1", false, false},
		{"fd00::1", false, false},
		{"192.0.2.1", false, false},
		{"224.0.0.1", false, false},
	} {
		err := Usable(netip.MustParseAddr(tc.ip), tc.lab)
		if (err == nil) != tc.want {
			t.Errorf("Usable(%s, lab %v) = %v", tc.ip, tc.lab, err)
		}
	}
}

func TestDiscover(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, " 127.0.0.5\r\n") })
	mux.HandleFunc("/private", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "10.0.0.1") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("1", 1<<20)) })
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>127.0.0.5</html>") })
	mux.HandleFunc("/err", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	web := httptest.NewServer(mux)
	defer web.Close()
	for _, tc := range []struct {
		name, iface, url string
		lab              bool
		want             string // "" : an error containing errText
		errText          string
	}{
		{"url", "", web.URL + "/ok", true, "127.0.0.5", ""},
		{"url loopback without lab flag", "", web.URL + "/ok", false, "", "not a global unicast"},
		{"url private", "", web.URL + "/private", true, "", "not a global unicast"},
		{"url too big", "", web.URL + "/big", true, "", "more than 128 octets"},
		{"url not an address", "", web.URL + "/html", true, "", "not an address"},
		{"url error status", "", web.URL + "/err", true, "", "500"},
		{"url not http", "", "file:///etc/passwd", true, "", "not http(s)"},
		{"interface lo", "lo", "", true, "127.0.0.1", ""},
		{"interface lo without lab flag", "lo", "", false, "", "no global unicast address"},
		{"both", "lo", web.URL, true, "", "not both"},
		{"neither", "", "", true, "", "no address source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Discover(context.Background(), tc.iface, tc.url, tc.lab, web.Client())
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("got %v, %v; want an error with %q", got, err, tc.errText)
				}
				return
			}
			if err != nil || len(got) == 0 || got[0].String() != tc.want {
				t.Errorf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestConcurrentChangeNotClobbered: the admin edits the SPF record between
// the read and the update; the prerequisites make the server refuse the
// update, so the edit stays and the A record is not half-changed.
func TestConcurrentChangeNotClobbered(t *testing.T) {
	l := startLab(t)
	u, _ := l.updater(t, labSecret, nil)
	edited := strings.Replace(labZone, "include:_spf.provider.test", "include:_spf.provider.test include:_spf.newsletter.test", 1)
	u.beforeSend = func() {
		if err := l.primary.SetZones(parseZone(t, edited)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.20")})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "NXRRSET") || res.Sent {
		t.Fatalf("err %v, sent %v; want refused with NXRRSET", err, res.Sent)
	}
	if a := ask(t, l.primary.Addr(), "mail.home.test.", dns.TypeA); a[0].(*dns.A).A.String() != "127.0.0.10" {
		t.Errorf("A changed to %v", a)
	}
	got := txts(t, l.primary.Addr())
	if !strings.Contains(strings.Join(got[1], ""), "include:_spf.newsletter.test ip4:127.0.0.10") {
		t.Errorf("the admin's edit is gone: %q", got)
	}
	// The next run reads the edit and keeps it.
	u.beforeSend = nil
	if _, err := u.Run(context.Background(), []netip.Addr{netip.MustParseAddr("127.0.0.20")}); !errors.Is(err, ErrNotVisible) {
		t.Fatalf("second run: %v (want the update accepted; the secondary is stale)", err)
	}
	got = txts(t, l.primary.Addr())
	if want := "v=spf1 mx include:_spf.provider.test include:_spf.newsletter.test ip4:127.0.0.20 ~all"; strings.Join(got[1], "") != want {
		t.Errorf("SPF %q, want %q", got[1], want)
	}
}

// BenchmarkRunUpToDate is the cost of one round of the serve loop when
// nothing changed: with the zone configured, an A and a TXT query at the primary over TCP.
func BenchmarkRunUpToDate(b *testing.B) {
	l := startLab(b)
	u, _ := l.updater(b, labSecret, nil)
	u.cfg.Zone = "home.test."
	addr := []netip.Addr{netip.MustParseAddr("127.0.0.10")}
	b.ResetTimer()
	for b.Loop() {
		if res, err := u.Run(context.Background(), addr); err != nil || res.Sent {
			b.Fatal(err, res.Sent)
		}
	}
}

func BenchmarkRewriteSPF(b *testing.B) {
	txt := [][]string{{"google-site-verification=x"}, {"v=spf1 mx include:_spf.provider.test ", "ip4:203.0.113.7 ip6:2001:db8::7 ~all"}}
	old, cur := addrs("203.0.113.7"), netip.MustParseAddr("198.51.100.9")
	for b.Loop() {
		if ed, err := RewriteSPF(txt, old, cur); err != nil || !ed.Changed {
			b.Fatal(err)
		}
	}
}
