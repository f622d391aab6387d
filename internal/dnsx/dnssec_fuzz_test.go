package dnsx_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// FuzzDNSSECAnswer: whatever an attacker puts in the answer to
// www.example.test A (the chain of trust above it genuine, from the signed
// lab), validation neither panics nor calls forged data secure: a secure
// answer holds exactly the zone's record.
func FuzzDNSSECAnswer(f *testing.F) {
	s, anchor := signedLab(f)
	ask := func(name string, qtype uint16) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(1232, true)
		r, err := dns.Exchange(m, s.Addr())
		if err != nil {
			f.Fatal(err)
		}
		b, _ := r.Pack()
		return b
	}
	f.Add(ask("www.example.test.", dns.TypeA))
	f.Add(ask("nope.example.test.", dns.TypeA))
	f.Add(ask("x.wild.example.test.", dns.TypeA))
	f.Add(ask("alias.example.test.", dns.TypeA))
	f.Add(ask("www.nsec3.test.", dns.TypeA))
	f.Add(ask("nope.nsec3.test.", dns.TypeA))

	var mu sync.Mutex
	var forged []byte
	addr := forger(f, s.Addr(), func(q, r *dns.Msg) *dns.Msg {
		if q.Question[0].Name != "www.example.test." || q.Question[0].Qtype != dns.TypeA {
			return r
		}
		mu.Lock()
		defer mu.Unlock()
		m := new(dns.Msg)
		if m.Unpack(forged) != nil {
			return r
		}
		m.Id, m.Question, m.Response = q.Id, q.Question, true
		return m
	})
	f.Fuzz(func(t *testing.T, msg []byte) {
		mu.Lock()
		forged = msg
		mu.Unlock()
		c := validatingClient(t, addr, anchor)
		c.UDPSize = 65000
		c.Attempts, c.Timeout = 1, 300*time.Millisecond // a forged reply that does not pack is no reply
		a, err := c.Query(context.Background(), "www.example.test", dns.TypeA)
		if err != nil || a.Security != dnsx.Secure {
			return
		}
		if len(a.Records) != 1 || !a.Records[0].(*dns.A).A.Equal(net.IPv4(192, 0, 2, 10)) {
			t.Fatalf("forged answer called secure: %v", a.Records)
		}
	})
}
