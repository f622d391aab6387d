package main

import (
	"context"
	"log/slog"
	"time"

	"mailwall/internal/config"
)

// checkTrustAnchors asks the DNS servers, once at start, for each trust
// anchor's DNSKEY set signed by the anchored key, when dns.dnssec is
// validate. A forwarder that strips DNSSEC (many home routers do) fails
// it; then every signed answer would be bogus and its mail deferred, so
// the error is logged loudly, before any mail is. The daemon still
// starts: the servers may only be unreachable for now.
func checkTrustAnchors(ctx context.Context, cfg *config.Config, log *slog.Logger) {
	client, err := newClient(cfg)
	if err != nil || client.Validator == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := client.Validator.CheckAnchors(ctx, client); err != nil {
		log.Error("DNSSEC: the DNS servers do not give the trust anchors' keys, signed: answers may all be bogus and mail deferred; use a validating or DNSSEC-aware resolver, dns.dnssec: trust_ad, or off", "servers", cfg.DNS.Servers, "err", err)
		return
	}
	log.Info("DNSSEC: trust anchors checked against the DNS servers", "servers", cfg.DNS.Servers)
}
