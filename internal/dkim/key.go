package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Key is a parsed key record (RFC 6376 §3.6.1).
type Key struct {
	Type      string // "rsa" or "ed25519"
	Public    crypto.PublicKey
	Bits      int      // RSA modulus size; 256 for ed25519
	Hashes    []string // h=: acceptable hashes; empty means all
	Testing   bool     // t=y: the domain is testing DKIM
	Strict    bool     // t=s: i= must be exactly d=, not a subdomain
	Revoked   bool     // empty p=
	Services  []string // s=
	Notes     string   // n=
	RawRecord string

	rsa *rsaPublic // Public's modulus precomputed, if an RSA key a verifier takes
}

// ErrKeyRevoked is returned for a key record with an empty p=.
var ErrKeyRevoked = errors.New("key revoked")

// The RSA keys a verifier takes on. RFC 8301 §3.2: verifiers must handle
// 1024 to 4096 bits and should not take shorter keys as valid. Longer keys
// and other exponents are refused because the cost of a check is the
// key's to choose: one 262,144-bit key with e=2^31-1 cost 3 s of CPU per
// signature. Real keys use 65537, what every key generator writes.
const (
	MinRSABits  = 1024
	MaxRSABits  = 4096
	RSAExponent = 65537
)

// Refusal says why a verifier must not use the key for a check, before any
// arithmetic with it: an RSA modulus over MaxRSABits or an exponent other
// than RSAExponent. "" means the key may be used (a short key is refused
// later, as "policy", by MinRSABits).
func (k *Key) Refusal() string {
	pub, ok := k.Public.(*rsa.PublicKey)
	if !ok {
		return ""
	}
	if k.Bits > MaxRSABits {
		return fmt.Sprintf("RSA key of %d bits; at most %d accepted (RFC 8301)", k.Bits, MaxRSABits)
	}
	if pub.E != RSAExponent {
		return fmt.Sprintf("RSA key exponent %d; only %d accepted", pub.E, RSAExponent)
	}
	return ""
}

// ParseKey parses a key record. A revoked key (empty p=) comes back with
// Revoked set and ErrKeyRevoked.
func ParseKey(record string) (*Key, error) {
	tags, err := parseTags(record)
	if err != nil {
		return nil, err
	}
	k := &Key{Type: "rsa", RawRecord: record}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return nil, fmt.Errorf("key record version v=%s is not DKIM1", v)
	}
	if t, ok := tags["k"]; ok {
		k.Type = strings.ToLower(t)
	}
	if h, ok := tags["h"]; ok {
		for x := range strings.SplitSeq(stripWSP(h), ":") {
			k.Hashes = append(k.Hashes, strings.ToLower(x))
		}
	}
	if s, ok := tags["s"]; ok {
		for x := range strings.SplitSeq(stripWSP(s), ":") {
			k.Services = append(k.Services, strings.ToLower(x))
		}
	}
	if t, ok := tags["t"]; ok {
		for x := range strings.SplitSeq(stripWSP(t), ":") {
			switch x {
			case "y":
				k.Testing = true
			case "s":
				k.Strict = true
			}
		}
	}
	k.Notes = tags["n"]
	p, ok := tags["p"]
	if !ok {
		return nil, errors.New("key record has no p=")
	}
	p = stripWSP(p)
	if p == "" {
		k.Revoked = true
		return k, ErrKeyRevoked
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("p= is not valid base64: %w", err)
	}
	switch k.Type {
	case "rsa":
		pub, err := parseRSAPublic(der)
		if err != nil {
			return nil, err
		}
		k.Public, k.Bits = pub, pub.N.BitLen()
		if k.Refusal() == "" {
			k.rsa = newRSAPublic(pub)
		}
	case "ed25519":
		// RFC 8463 §4: p= is the raw 32-byte key, not SubjectPublicKeyInfo.
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 key is %d bytes, want %d", len(der), ed25519.PublicKeySize)
		}
		k.Public, k.Bits = ed25519.PublicKey(der), 256
	default:
		return nil, fmt.Errorf("unsupported key type k=%s", k.Type)
	}
	return k, nil
}

// parseRSAPublic reads SubjectPublicKeyInfo (what RFC 6376 specifies) or a
// bare PKCS#1 RSAPublicKey, which some publishers use.
func parseRSAPublic(der []byte) (*rsa.PublicKey, error) {
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		if rk, ok := pub.(*rsa.PublicKey); ok {
			return rk, nil
		}
		return nil, errors.New("p= is not an RSA key")
	}
	rk, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, errors.New("p= is not an RSA public key")
	}
	return rk, nil
}

// allowsHash reports whether the key's h= admits the hash ("sha256").
func (k *Key) allowsHash(h string) bool {
	if len(k.Hashes) == 0 {
		return true
	}
	for _, x := range k.Hashes {
		if x == h {
			return true
		}
	}
	return false
}

// allowsEmail reports whether the key's s= admits email.
func (k *Key) allowsEmail() bool {
	if len(k.Services) == 0 {
		return true
	}
	for _, s := range k.Services {
		if s == "*" || s == "email" {
			return true
		}
	}
	return false
}
