package dkim

import (
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
)

// The building blocks below are DKIM's, exported for ARC (RFC 8617), whose
// ARC-Message-Signature and ARC-Seal reuse DKIM's tag lists,
// canonicalization, key records and signature algorithms (§4.1).

// ParseTagList parses a tag-list (RFC 6376 §3.2); a tag given twice is an
// error.
func ParseTagList(s string) (map[string]string, error) { return parseTags(s) }

// CanonicalizeHeader returns a field canonicalized for hashing (RFC 6376
// §3.4.1, §3.4.2), CRLF included.
func CanonicalizeHeader(f Field, canon string) string { return canonHeader(f, canon) }

// WithoutSignatureValue returns a raw signature field with its b= value
// emptied, as it is hashed (RFC 6376 §3.5, RFC 8617 §5.1.1).
func WithoutSignatureValue(raw string) string { return withoutB(raw) }

// StripWhiteSpace removes all white space, for base64 values and h= lists.
func StripWhiteSpace(s string) string { return stripWSP(s) }

// BodyHash canonicalizes a body as it streams by and hashes it.
type BodyHash struct{ b *bodyHasher }

// NewBodyHash returns a body hash for algorithm alg (rsa-sha256,
// ed25519-sha256, rsa-sha1) and body canonicalization canon; limit is l=,
// or -1.
func NewBodyHash(alg, canon string, limit int64) *BodyHash {
	return &BodyHash{newBodyHasher(newHash(alg), canon, limit)}
}

func (h *BodyHash) Write(p []byte) (int, error) { return h.b.Write(p) }

// Sum ends the body and returns its hash.
func (h *BodyHash) Sum() []byte { return h.b.Sum() }

// newHash returns the hash of algorithm alg.
func newHash(alg string) hash.Hash {
	if alg == RSASHA1 {
		return sha1.New()
	}
	return sha256.New()
}

// NewHeaderHash returns the hash that header data is fed to for alg.
func NewHeaderHash(alg string) hash.Hash { return newHash(alg) }

// VerifyHash checks a signature over hashed header data with key.
func VerifyHash(key *Key, alg string, hashed, sig []byte) error {
	if key.Type == "rsa" && key.Bits < 1024 {
		return errors.New("RSA key shorter than 1024 bits (RFC 8301)")
	}
	return verifySig(key, alg, hashed, sig)
}
