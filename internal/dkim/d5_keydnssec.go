package dkim

import (
	"context"

	"mailwall/internal/dnsx"
)

// LookupKeyDNSSEC is LookupKey that also returns the key record's DNSSEC
// status as Result.KeyDNSSEC holds it ("" with dns.dnssec off, else
// "secure", "insecure" or "unvalidated"), for ARC's seals and message
// signatures (issue 27).
func LookupKeyDNSSEC(ctx context.Context, r dnsx.Resolver, selector, domain string) (*Key, Status, string, string) {
	return lookupKey(ctx, r, selector, domain, ParseKey)
}
