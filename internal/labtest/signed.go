package labtest

import (
	"log/slog"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labdns"
)

// ServeSigned serves zones signed under a lab root as cfg says (broken
// on purpose where it asks), and returns the server with a client that
// validates from the lab root's DS, as dns.dnssec: validate with the
// lab's trust anchor would.
func ServeSigned(tb testing.TB, cfg labdns.SignConfig, zones ...*labdns.Zone) (*labdns.Server, *dnsx.Client) {
	tb.Helper()
	signer, err := labdns.NewSigner(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := labdns.NewWithZones(labdns.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Signer: signer}, zones...)
	if err != nil {
		tb.Fatal(err)
	}
	start(tb, s)
	v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{signer.TrustAnchor().String()}})
	if err != nil {
		tb.Fatal(err)
	}
	return s, &dnsx.Client{Servers: []string{s.Addr()}, Timeout: 2 * time.Second, Validator: v}
}
