package dkim

import (
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
