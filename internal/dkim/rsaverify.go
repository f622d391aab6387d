package dkim

import (
	"bytes"
	"crypto"
	"crypto/rsa"

	"filippo.io/bigmod"
)

// rsaPublic is an RSA public key with the modulus's Montgomery constants
// computed once, when its record is parsed: crypto/rsa computes them
// again for every verification, a third of the CPU of a 2048-bit one
// (29 against 20 µs, BenchmarkVerifyRSA). filippo.io/bigmod is the
// standard library's own modular arithmetic (crypto/internal/fips140/
// bigmod), exported.
type rsaPublic struct {
	pub  *rsa.PublicKey // the key it was made for: used only with it
	n    *bigmod.Modulus
	size int // octets of the modulus
}

// newRSAPublic precomputes the modulus of pub, a key Key.Refusal let
// through (at most MaxRSABits, exponent RSAExponent); nil for one left to
// crypto/rsa, which refuses it: shorter than MinRSABits, or an even
// modulus (Montgomery arithmetic needs an odd one; bigmod takes both).
func newRSAPublic(pub *rsa.PublicKey) *rsaPublic {
	bits := pub.N.BitLen()
	if bits < MinRSABits || pub.N.Bit(0) == 0 {
		return nil
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil
	}
	return &rsaPublic{pub: pub, n: n, size: (bits + 7) / 8}
}

// The DER of DigestInfo before the hash (RFC 8017 §9.2, note 1).
var (
	digestInfoSHA1   = []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
	digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
)

// verifyPKCS1v15 is rsa.VerifyPKCS1v15 for SHA-1 and SHA-256 with the
// precomputed modulus: RSASSA-PKCS1-v1_5-VERIFY (RFC 8017 §8.2.2), the
// encoded message compared whole with the one expected (§9.2), as
// crypto/rsa does. The key and signature are public: nothing here needs
// constant time but the arithmetic, which bigmod does anyway.
func (k *rsaPublic) verifyPKCS1v15(hash crypto.Hash, hashed, sig []byte) error {
	var prefix []byte
	switch hash {
	case crypto.SHA256:
		prefix = digestInfoSHA256
	case crypto.SHA1:
		prefix = digestInfoSHA1
	default:
		return rsa.ErrVerification
	}
	// §8.2.2 step 1: the signature is k octets.
	if len(hashed) != hash.Size() || len(sig) != k.size {
		return rsa.ErrVerification
	}
	// Step 2: s < n (SetBytes refuses a larger one), m = s^e mod n.
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		return rsa.ErrVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, RSAExponent, k.n).Bytes(k.n)
	// Step 3, §9.2: EM = 0x00 || 0x01 || PS || 0x00 || T, PS at least
	// eight 0xff octets, T the DigestInfo.
	tLen := len(prefix) + len(hashed)
	if len(em) != k.size || k.size < tLen+11 {
		return rsa.ErrVerification
	}
	ps := k.size - tLen - 1 // index of the 0x00 before T
	ok := em[0] == 0 && em[1] == 1 && em[ps] == 0 &&
		bytes.Equal(em[ps+1:ps+1+len(prefix)], prefix) && bytes.Equal(em[ps+1+len(prefix):], hashed)
	for _, c := range em[2:ps] {
		ok = ok && c == 0xff
	}
	if !ok {
		return rsa.ErrVerification
	}
	return nil
}
