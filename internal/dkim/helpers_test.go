package dkim

import (
	"net"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// zoneResolver serves records (zone-file syntax, relative to origin).
func zoneResolver(t testing.TB, origin string, records ...string) dnsx.Resolver {
	s := labtest.Serve(t, labtest.Zone(t, origin, records...))
	return &dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}
}

// silentUDP is a DNS server that never answers.
func silentUDP(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}
