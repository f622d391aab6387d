package labdns

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzUpdate: whatever the prerequisite and update sections of a signed
// update hold, applying them never panics, leaves the apex's SOA and at
// least one NS, and moves the serial exactly when something changed.
func FuzzUpdate(f *testing.F) {
	for _, m := range []*dns.Msg{mailUpdate(updZone), func() *dns.Msg {
		m := new(dns.Msg)
		m.SetUpdate(updZone)
		m.RemoveName([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: updZone}}})
		ns, _ := dns.NewRR("upd.test. IN NS ns1.upd.test.")
		m.Remove([]dns.RR{ns})
		cn, _ := dns.NewRR("mail.upd.test. 60 IN CNAME ns1.upd.test.")
		m.Insert([]dns.RR{cn})
		return m
	}(), malformed(dns.ClassNONE, false), malformed(dns.ClassINET, true)} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	zp := dns.NewZoneParser(strings.NewReader(updZoneTx), "", "")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil || len(m.Answer)+len(m.Ns) > MaxUpdateRRs {
			return
		}
		z, err := NewZone(rrs)
		if err != nil {
			t.Fatal(err)
		}
		if rc, _ := checkPrereqs(z, m.Answer); rc != dns.RcodeSuccess {
			return
		}
		if rc, _ := prescan(z.Origin, m.Ns); rc != dns.RcodeSuccess {
			return
		}
		nz, changes, err := applyChanges(z, m.Ns)
		if err != nil {
			return // e.g. a record NewZone refuses; nothing served
		}
		if nz.SOA == nil || len(nz.rrset(nz.Origin, dns.TypeNS)) == 0 {
			t.Fatalf("apex lost its SOA or NS: %v", nz.Records())
		}
		if (changes > 0) != (nz.SOA.Serial != z.SOA.Serial) {
			t.Fatalf("%d changes, serial %d -> %d", changes, z.SOA.Serial, nz.SOA.Serial)
		}
	})
}
