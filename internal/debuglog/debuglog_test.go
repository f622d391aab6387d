package debuglog

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

func TestPeersMatch(t *testing.T) {
	p := NewPeers(slog.New(slog.DiscardHandler), []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.7/32")})
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"192.0.2.1", true},
		{"192.0.3.1", false},
		{"::ffff:192.0.2.9", true}, // a v4 client seen through a v6 socket
		{"2001:db8::25", true},
		{"2001:db9::25", false},
		{"198.51.100.7", true},
		{"198.51.100.8", false},
		{"", false}, // unknown client (local submission)
	} {
		ip, _ := netip.ParseAddr(tc.ip)
		if got := p.Match(ip); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.ip, got, tc.want)
		}
		if got := p.Logger(ip) != nil; got != tc.want {
			t.Errorf("Logger(%q) != nil: %v, want %v", tc.ip, got, tc.want)
		}
	}
	var none *Peers
	if none.Match(netip.MustParseAddr("192.0.2.1")) || none.Logger(netip.MustParseAddr("192.0.2.1")) != nil {
		t.Error("a nil set matched")
	}
	// A reload: the set is replaced, not added to.
	p.Set([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")})
	if p.Match(netip.MustParseAddr("192.0.2.1")) || !p.Match(netip.MustParseAddr("203.0.113.5")) {
		t.Errorf("after Set: %v", p.Prefixes())
	}
	p.Set(nil)
	if p.Match(netip.MustParseAddr("203.0.113.5")) {
		t.Error("an empty set matched")
	}
}

func TestLoggerAttributes(t *testing.T) {
	var buf bytes.Buffer
	p := NewPeers(slog.New(slog.NewTextHandler(&buf, nil)), []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	p.Logger(netip.MustParseAddr("::ffff:192.0.2.1")).Info("debug: x")
	if got := buf.String(); !strings.Contains(got, "debug_peer=true client=192.0.2.1\n") {
		t.Errorf("line: %s", got)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456789...(3 more bytes)"},
		{"ééééé", 3, "é...(8 more bytes)"}, // not inside a rune
	} {
		if got := Clip(tc.in, tc.n); got != tc.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// fixed answers every query with the same TXT records.
type fixed struct{ txt []string }

func (f *fixed) Query(_ context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	a := &dnsx.Answer{Name: name, Type: qtype, TTL: 300}
	for _, s := range f.txt {
		a.Records = append(a.Records, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: []string{s}})
	}
	return a, nil
}

// TestResolverLogsOnlyForDebugContext: the wrapped resolver logs a query's
// answer when the context carries a detail logger, bounded in records and
// length, and nothing otherwise.
func TestResolverLogsOnlyForDebugContext(t *testing.T) {
	long := strings.Repeat("x", 5000)
	txt := []string{"v=spf1 ip4:192.0.2.1 -all", long}
	for range 30 {
		txt = append(txt, "filler")
	}
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	r := Wrap(&fixed{txt})
	if Wrap(r) != r {
		t.Error("Wrap wrapped twice")
	}
	if _, err := r.Query(context.Background(), "example.test.", dns.TypeTXT); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("logged without a detail logger: %s", buf.String())
	}
	if _, err := r.Query(With(context.Background(), l), "example.test.", dns.TypeTXT); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{`msg="debug: dns"`, "name=example.test.", "type=TXT", "rcode=NOERROR", "v=spf1 ip4:192.0.2.1 -all", "(16 more records)"} {
		if !strings.Contains(got, want) {
			t.Errorf("line lacks %q: %s", want, got)
		}
	}
	if strings.Contains(got, long[:MaxValue+1]) || len(got) > 4*MaxValue+1000 {
		t.Errorf("a long record was not clipped (%d bytes)", len(got))
	}
	if strings.Contains(got, "dnssec=") {
		t.Errorf("an unvalidated answer has a DNSSEC status: %s", got)
	}
	// With validation on, the answer's status is shown.
	buf.Reset()
	sec := Wrap(prebuilt{&dnsx.Answer{Name: "example.test.", Type: dns.TypeTXT, Security: dnsx.Insecure, SecurityReason: "no DS for example.test"}})
	sec.Query(With(context.Background(), l), "example.test.", dns.TypeTXT)
	if got := buf.String(); !strings.Contains(got, `dnssec=insecure dnssec_reason="no DS for example.test"`) {
		t.Errorf("DNSSEC status not shown: %s", got)
	}
}

type benchKey struct{}

// prebuilt answers every query with one answer, allocating nothing.
type prebuilt struct{ a *dnsx.Answer }

func (p prebuilt) Query(context.Context, string, uint16) (*dnsx.Answer, error) { return p.a, nil }

// BenchmarkResolverNoDebug is what the wrapper costs a query of a client
// not being debugged: one context lookup.
func BenchmarkResolverNoDebug(b *testing.B) {
	inner := prebuilt{&dnsx.Answer{Name: "example.test.", Type: dns.TypeTXT}}
	ctx := context.WithValue(context.Background(), benchKey{}, 1) // a context that carries other values
	for _, bc := range []struct {
		name string
		r    dnsx.Resolver
	}{{"direct", inner}, {"wrapped", Wrap(inner)}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				bc.r.Query(ctx, "example.test.", dns.TypeTXT)
			}
		})
	}
}

// BenchmarkPeersNoMatch is the per-message cost for a client not in the
// set: the match of its address against the prefixes.
func BenchmarkPeersNoMatch(b *testing.B) {
	var set []netip.Prefix
	for i := range 8 {
		set = append(set, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	p := NewPeers(nil, set)
	ip := netip.MustParseAddr("192.0.2.1")
	for b.Loop() {
		if p.Logger(ip) != nil {
			b.Fatal("matched")
		}
	}
}
