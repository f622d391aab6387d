package dnsx_test

import (
	"context"
	"testing"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// BenchmarkDNSSEC is the cost of validation in the resolver, real packets
// to the signed lab on loopback: one A lookup of www.example.test (three
// zones below the lab root, ECDSA P-256, NSEC), per mode:
//
//	off:        no validation (the default)
//	cold:       a fresh validator each lookup: DS and DNSKEY of every zone
//	            fetched and checked (5 extra queries, 6 signatures)
//	warm:       the zones' keys cached: the answer's own signature only
//	warm-insecure: www.unsigned.test, its zone's insecure delegation
//	            cached: no signature, no extra query
//	cache-off, cache-validate: answers from dnsx.Cache, as checks get
//	            them most of the time.
func BenchmarkDNSSEC(b *testing.B) {
	s, anchor := signedLab(b)
	ctx := context.Background()
	newValidator := func() *dnsx.Validator {
		v, err := dnsx.NewValidator(dnsx.ValidatorConfig{Mode: dnsx.DNSSECValidate, Anchors: []string{anchor}})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	lookup := func(b *testing.B, r dnsx.Resolver, want dnsx.Security) {
		b.Helper()
		a, err := r.Query(ctx, "www.example.test", dns.TypeA)
		if err != nil || a.Security != want {
			b.Fatalf("%v %v", a, err)
		}
	}
	b.Run("off", func(b *testing.B) {
		c := &dnsx.Client{Servers: []string{s.Addr()}}
		for b.Loop() {
			lookup(b, c, dnsx.Unvalidated)
		}
	})
	b.Run("cold", func(b *testing.B) {
		c := &dnsx.Client{Servers: []string{s.Addr()}}
		for b.Loop() {
			c.Validator = newValidator()
			lookup(b, c, dnsx.Secure)
		}
	})
	b.Run("warm", func(b *testing.B) {
		c := &dnsx.Client{Servers: []string{s.Addr()}, Validator: newValidator()}
		lookup(b, c, dnsx.Secure)
		for b.Loop() {
			lookup(b, c, dnsx.Secure)
		}
	})
	b.Run("warm-insecure", func(b *testing.B) {
		c := &dnsx.Client{Servers: []string{s.Addr()}, Validator: newValidator()}
		if _, err := c.Query(ctx, "www.unsigned.test", dns.TypeA); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			a, err := c.Query(ctx, "www.unsigned.test", dns.TypeA)
			if err != nil || a.Security != dnsx.Insecure {
				b.Fatal(a, err)
			}
		}
	})
	b.Run("cache-off", func(b *testing.B) {
		r := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}}, dnsx.CacheOptions{})
		for b.Loop() {
			lookup(b, r, dnsx.Unvalidated)
		}
	})
	b.Run("cache-validate", func(b *testing.B) {
		r := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Validator: newValidator()}, dnsx.CacheOptions{})
		for b.Loop() {
			lookup(b, r, dnsx.Secure)
		}
	})
}
