package labdns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	updZone   = "upd.test."
	updKey    = "ddns-key."
	updSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtMzItb2N0ZXRzISE=" // 32 octets
	updZoneTx = `$ORIGIN upd.test.
$TTL 300
@    IN SOA ns1 hostmaster 10 3600 600 86400 60
@    IN NS  ns1
ns1  IN A   127.0.0.1
mail IN A   127.0.0.10
@    IN TXT "v=spf1 mx ip4:127.0.0.10 -all"
`
)

func startUpdServer(t *testing.T, write bool) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	path := writeZone(t, dir, "upd.test.zone", updZoneTx)
	other := writeZone(t, dir, "other.test.zone", "$ORIGIN other.test.\n@ 300 IN SOA ns1 h 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n")
	s := startServer(t, Config{
		Zones:      []ZoneFile{{Path: path}, {Path: other}},
		UpdateKeys: []UpdateKey{{Name: updKey, Secret: updSecret, Zones: []string{"upd.test"}}},
		WriteZones: write,
	})
	return s, path
}

// sendUpdate sends m to s over TCP, signed with name/secret/alg when name
// is set, and returns the answer (and the client's TSIG check error).
func sendUpdate(t *testing.T, s *Server, m *dns.Msg, name, alg, secret string) (*dns.Msg, error) {
	return sendUpdateAt(t, s, m, name, alg, secret, time.Now())
}

// sendUpdateAt signs as of the time at.
func sendUpdateAt(t *testing.T, s *Server, m *dns.Msg, name, alg, secret string, at time.Time) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	if name != "" {
		c.TsigSecret = map[string]string{name: secret}
		m.SetTsig(name, alg, 300, at.Unix())
	}
	r, _, err := c.Exchange(m, s.Addr())
	if r == nil {
		t.Fatalf("no answer: %v", err)
	}
	return r, err
}

func mailUpdate(zone string) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(zone)
	old, _ := dns.NewRR("mail.upd.test. 300 IN A 127.0.0.10")
	m.Used([]dns.RR{old})
	m.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: "mail.upd.test.", Rrtype: dns.TypeA}}})
	nw, _ := dns.NewRR("mail.upd.test. 300 IN A 127.0.0.20")
	m.Insert([]dns.RR{nw})
	return m
}

func mailA(t *testing.T, s *Server) string {
	t.Helper()
	r := query(t, s.Addr(), "udp", "mail.upd.test.", dns.TypeA, 0)
	var out []string
	for _, rr := range r.Answer {
		out = append(out, rr.(*dns.A).A.String())
	}
	return strings.Join(out, ",")
}

func serial(t *testing.T, s *Server) uint32 {
	t.Helper()
	r := query(t, s.Addr(), "udp", updZone, dns.TypeSOA, 0)
	return r.Answer[0].(*dns.SOA).Serial
}

func TestUpdateRefused(t *testing.T) {
	s, _ := startUpdServer(t, false)
	other := "b3RoZXItb3RoZXItb3RoZXItMzItb2N0ZXRzISEhISE="
	for _, tc := range []struct {
		name            string
		zone, key, alg  string
		secret          string
		skew            time.Duration
		rcode           int
		tsigErr         uint16
		wantClientError bool
	}{
		{"unsigned", updZone, "", "", "", 0, dns.RcodeRefused, 0, false},
		{"wrong secret", updZone, updKey, dns.HmacSHA256, other, 0, dns.RcodeNotAuth, dns.RcodeBadSig, true},
		{"unknown key", updZone, "stranger.", dns.HmacSHA256, updSecret, 0, dns.RcodeNotAuth, dns.RcodeBadKey, true},
		{"other algorithm", updZone, updKey, dns.HmacSHA1, updSecret, 0, dns.RcodeNotAuth, dns.RcodeBadKey, true},
		// RFC 8945 §5.2.3: signed an hour ago, past the 300 s fudge (the
		// dns package's client reports any NOTAUTH answer as an error).
		{"replayed an hour later", updZone, updKey, dns.HmacSHA256, updSecret, -time.Hour, dns.RcodeNotAuth, dns.RcodeBadTime, true},
		{"zone not the key's", "other.test.", updKey, dns.HmacSHA256, updSecret, 0, dns.RcodeRefused, 0, false},
		{"zone not served", "nowhere.test.", updKey, dns.HmacSHA256, updSecret, 0, dns.RcodeRefused, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := sendUpdateAt(t, s, mailUpdate(tc.zone), tc.key, tc.alg, tc.secret, time.Now().Add(tc.skew))
			if r.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.key != "" {
				ts := r.IsTsig()
				if ts == nil || ts.Error != tc.tsigErr {
					t.Errorf("answer TSIG %v, want error %s", ts, dns.RcodeToString[int(tc.tsigErr)])
				}
				if (tc.tsigErr == dns.RcodeBadSig || tc.tsigErr == dns.RcodeBadKey) && ts != nil && ts.MAC != "" {
					t.Errorf("an error answer is signed (RFC 8945 §5.3.2 wants no MAC)")
				}
			}
			if (err != nil) != tc.wantClientError {
				t.Errorf("client TSIG check: %v", err)
			}
			if got := mailA(t, s); got != "127.0.0.10" {
				t.Errorf("mail A is %s after a refused update", got)
			}
			if got := serial(t, s); got != 10 {
				t.Errorf("serial %d after a refused update", got)
			}
		})
	}
}

func TestUpdateApplied(t *testing.T) {
	s, path := startUpdServer(t, true)
	r, err := sendUpdate(t, s, mailUpdate(updZone), updKey, dns.HmacSHA256, updSecret)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update: %s, %v", dns.RcodeToString[r.Rcode], err)
	}
	if r.IsTsig() == nil {
		t.Error("answer to a signed update is not signed")
	}
	if got := mailA(t, s); got != "127.0.0.20" {
		t.Errorf("mail A %s, want 127.0.0.20", got)
	}
	if got := serial(t, s); got != 11 {
		t.Errorf("serial %d, want 11 (RFC 2136 §3.6)", got)
	}
	// Written back: the file loads and has the new address.
	z, err := ParseZoneFile(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if rrs := z.rrset("mail.upd.test.", dns.TypeA); len(rrs) != 1 || rrs[0].(*dns.A).A.String() != "127.0.0.20" {
		t.Errorf("zone file has %v", rrs)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}

	// The same update again: its prerequisite (A is 127.0.0.10) no
	// longer holds, so nothing changes (a concurrent change is not
	// clobbered).
	r, err = sendUpdate(t, s, mailUpdate(updZone), updKey, dns.HmacSHA256, updSecret)
	if err != nil || r.Rcode != dns.RcodeNXRrset {
		t.Errorf("stale prerequisite: %s, %v; want NXRRSET", dns.RcodeToString[r.Rcode], err)
	}
	if got := serial(t, s); got != 11 {
		t.Errorf("serial %d after a failed prerequisite", got)
	}
}

func TestUpdateKeepsApex(t *testing.T) {
	s, _ := startUpdServer(t, false)
	m := new(dns.Msg)
	m.SetUpdate(updZone)
	m.RemoveName([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: updZone}}})
	ns, _ := dns.NewRR("upd.test. IN NS ns1.upd.test.")
	m.Remove([]dns.RR{ns})
	r, err := sendUpdate(t, s, m, updKey, dns.HmacSHA256, updSecret)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update: %s, %v", dns.RcodeToString[r.Rcode], err)
	}
	a := query(t, s.Addr(), "udp", updZone, dns.TypeNS, 0)
	if len(a.Answer) != 1 {
		t.Errorf("apex NS removed: %v", a.Answer)
	}
	if txt := query(t, s.Addr(), "udp", updZone, dns.TypeTXT, 0); len(txt.Answer) != 0 {
		t.Errorf("apex TXT not deleted: %v", txt.Answer)
	}
}

func TestUpdateKeysChecked(t *testing.T) {
	for _, k := range []UpdateKey{
		{Name: "k.", Secret: "short", Zones: []string{"a.test"}},
		{Name: "k.", Secret: updSecret, Algorithm: "hmac-md5.sig-alg.reg.int.", Zones: []string{"a.test"}},
	} {
		if _, err := newTSIGKeys([]UpdateKey{k}); err == nil {
			t.Errorf("key %+v accepted", k)
		}
	}
	if _, err := newTSIGKeys(nil); err != nil {
		t.Error(err)
	}
}

// TestUpdateFromNsupdate: BIND's own client, nsupdate, signs updates the
// server takes (over UDP and over TCP), and its wrong-secret update is
// refused in a way nsupdate understands.
func TestUpdateFromNsupdate(t *testing.T) {
	bin, err := exec.LookPath("nsupdate")
	if err != nil {
		t.Skip("nsupdate (Debian bind9-dnsutils) not installed")
	}
	s, _ := startUpdServer(t, false)
	host, port, _ := net.SplitHostPort(s.Addr())
	script := func(addr string) string {
		return fmt.Sprintf("server %s %s\nzone upd.test\nprereq yxrrset mail.upd.test A\nupdate delete mail.upd.test A\nupdate add mail.upd.test 300 A %s\nsend\n", host, port, addr)
	}
	for _, tc := range []struct {
		name, secret, addr string
		tcp                bool
		ok                 bool
	}{
		{"udp", updSecret, "127.0.0.30", false, true},
		{"tcp", updSecret, "127.0.0.31", true, true},
		{"wrong secret", "b3RoZXItb3RoZXItb3RoZXItMzItb2N0ZXRzISEhISE=", "127.0.0.32", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-y", "hmac-sha256:" + strings.TrimSuffix(updKey, ".") + ":" + tc.secret, "-t", "5"}
			if tc.tcp {
				args = append(args, "-v")
			}
			before := mailA(t, s)
			cmd := exec.Command(bin, args...)
			cmd.Stdin = strings.NewReader(script(tc.addr))
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok {
				t.Fatalf("nsupdate: %v\n%s", err, out)
			}
			want := tc.addr
			if !tc.ok {
				want = before
				if !strings.Contains(string(out), "tsig") && !strings.Contains(string(out), "TSIG") && !strings.Contains(string(out), "NOTAUTH") {
					t.Errorf("nsupdate did not say why:\n%s", out)
				}
			}
			if got := mailA(t, s); got != want {
				t.Errorf("mail A %s, want %s\n%s", got, want, out)
			}
		})
	}
}

// malformed is an update whose one record (a delete of class NONE, or
// with prereq a value-dependent prerequisite of class IN) has no data.
func malformed(class uint16, prereq bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(updZone)
	bare := &dns.ANY{Hdr: dns.RR_Header{Name: "mail.upd.test.", Rrtype: dns.TypeA, Class: class}}
	if prereq {
		m.Answer = append(m.Answer, bare)
	} else {
		m.Ns = append(m.Ns, bare)
	}
	return m
}

// TestUpdateMalformed: records without data where data is needed are
// FORMERR (they once crashed the server: a bare header copies to nil).
func TestUpdateMalformed(t *testing.T) {
	s, _ := startUpdServer(t, false)
	for _, m := range []*dns.Msg{malformed(dns.ClassNONE, false), malformed(dns.ClassINET, true), malformed(dns.ClassINET, false)} {
		r, err := sendUpdate(t, s, m, updKey, dns.HmacSHA256, updSecret)
		if err != nil || r.Rcode != dns.RcodeFormatError {
			t.Errorf("%v: %s, %v; want FORMERR", m.Ns, dns.RcodeToString[r.Rcode], err)
		}
	}
	if got := mailA(t, s); got != "127.0.0.10" {
		t.Errorf("mail A %s", got)
	}
}
