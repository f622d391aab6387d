package dkim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"testing"
)

// rawSign is s = em^d mod n: an encoded message of the test's choice,
// well formed or not, signed as it is.
func rawSign(k *rsa.PrivateKey, em []byte) []byte {
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.D, k.N)
	return s.FillBytes(make([]byte, (k.N.BitLen()+7)/8))
}

// goodEM is the encoded message RFC 8017 §9.2 gives for hashed.
func goodEM(size int, prefix, hashed []byte) []byte {
	em := make([]byte, size)
	em[1] = 1
	ps := size - len(prefix) - len(hashed) - 1
	for i := 2; i < ps; i++ {
		em[i] = 0xff
	}
	copy(em[ps+1:], prefix)
	copy(em[ps+1+len(prefix):], hashed)
	return em
}

// TestRSAVerifyAsStdlib holds the precomputed verification to
// rsa.VerifyPKCS1v15's answer on good signatures and on every way one
// can be wrong: length, s >= n, a bit changed, the padding, the
// DigestInfo, the hash.
func TestRSAVerifyAsStdlib(t *testing.T) {
	for _, bits := range []int{1024, 2048} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		fast := newRSAPublic(&k.PublicKey)
		if fast == nil {
			t.Fatalf("%d bits: no precomputed key", bits)
		}
		size := (bits + 7) / 8
		h256 := sha256.Sum256([]byte("message"))
		h1 := sha1.Sum([]byte("message"))
		type tc struct {
			name   string
			hash   crypto.Hash
			hashed []byte
			sig    []byte
		}
		var cases []tc
		add := func(name string, h crypto.Hash, hashed, sig []byte) {
			cases = append(cases, tc{name, h, hashed, sig})
		}
		good, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h256[:])
		good1, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA1, h1[:])
		add("good sha256", crypto.SHA256, h256[:], good)
		add("good sha1", crypto.SHA1, h1[:], good1)
		add("sha1 signature, sha256 asked", crypto.SHA256, h256[:], good1)
		add("other hash", crypto.SHA256, h1[:], good)
		add("short hash", crypto.SHA256, h256[:31], good)
		add("one octet short", crypto.SHA256, h256[:], good[1:])
		add("one octet long", crypto.SHA256, h256[:], append([]byte{0}, good...))
		add("empty", crypto.SHA256, h256[:], nil)
		add("zero", crypto.SHA256, h256[:], make([]byte, size))
		ff := make([]byte, size)
		for i := range ff {
			ff[i] = 0xff
		}
		add("s >= n", crypto.SHA256, h256[:], ff)
		add("n itself", crypto.SHA256, h256[:], k.N.FillBytes(make([]byte, size)))
		for i := 0; i < size; i += size / 16 {
			b := append([]byte(nil), good...)
			b[i] ^= 0x10
			add("bit changed", crypto.SHA256, h256[:], b)
		}
		em := goodEM(size, digestInfoSHA256, h256[:])
		add("raw good", crypto.SHA256, h256[:], rawSign(k, em))
		bad := func(name string, f func(em []byte) []byte) {
			e := f(append([]byte(nil), em...))
			add(name, crypto.SHA256, h256[:], rawSign(k, e))
		}
		ps := size - len(digestInfoSHA256) - len(h256) - 1
		bad("first octet 1", func(e []byte) []byte { e[0] = 1; return e })
		bad("block type 2", func(e []byte) []byte { e[1] = 2; return e })
		bad("PS octet fe", func(e []byte) []byte { e[5] = 0xfe; return e })
		bad("last PS octet 0", func(e []byte) []byte { e[ps-1] = 0; return e })
		bad("no separator", func(e []byte) []byte { e[ps] = 0xff; return e })
		bad("DigestInfo changed", func(e []byte) []byte { e[ps+3] ^= 1; return e })
		bad("hash changed", func(e []byte) []byte { e[size-1] ^= 1; return e })
		bad("separator early", func(e []byte) []byte {
			// A shorter PS and T moved left: the octets after T are junk.
			copy(e[ps-1:], e[ps:])
			e[size-1] = 0
			return e
		})
		for _, c := range cases {
			want := rsa.VerifyPKCS1v15(&k.PublicKey, c.hash, c.hashed, c.sig) == nil
			got := fast.verifyPKCS1v15(c.hash, c.hashed, c.sig) == nil
			if got != want {
				t.Errorf("%d bits, %s: valid %v, crypto/rsa says %v", bits, c.name, got, want)
			}
			if c.name == "good sha256" || c.name == "good sha1" || c.name == "raw good" {
				if !got {
					t.Errorf("%d bits, %s: refused", bits, c.name)
				}
			}
		}
	}
}

// TestRSAPublicRefused: keys a verifier refuses or that crypto/rsa is
// left with get no precomputed modulus when their record is parsed.
func TestRSAPublicRefused(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]*rsa.PublicKey{
		"exponent 3":     {N: k.N, E: 3},
		"even modulus":   {N: new(big.Int).Add(k.N, big.NewInt(1)), E: 65537},
		"512 bits":       {N: new(big.Int).Rsh(k.N, 512), E: 65537},
		"over 4096 bits": {N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 4200), big.NewInt(1)), E: 65537},
	} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		key, err := ParseKey("v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if key.rsa != nil {
			t.Errorf("%s: precomputed", name)
		}
	}
}

// FuzzRSAVerify: any signature and hash get the answer crypto/rsa gives.
func FuzzRSAVerify(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	fast := newRSAPublic(&k.PublicKey)
	h := sha256.Sum256([]byte("x"))
	good, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
	f.Add(good, h[:], true)
	f.Add(good[1:], h[:], false)
	f.Fuzz(func(t *testing.T, sig, hashed []byte, sha256Hash bool) {
		hf := crypto.SHA1
		if sha256Hash {
			hf = crypto.SHA256
		}
		want := rsa.VerifyPKCS1v15(&k.PublicKey, hf, hashed, sig) == nil
		if got := fast.verifyPKCS1v15(hf, hashed, sig) == nil; got != want {
			t.Fatalf("valid %v, crypto/rsa says %v", got, want)
		}
	})
}

// BenchmarkVerifyRSA: one 2048-bit RSA-SHA256 verification, crypto/rsa's
// and with the modulus precomputed, side by side.
func BenchmarkVerifyRSA(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256([]byte("x"))
	sig, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, h[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	fast := newRSAPublic(&k.PublicKey)
	b.Run("precomputed", func(b *testing.B) {
		for b.Loop() {
			if err := fast.verifyPKCS1v15(crypto.SHA256, h[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRSAPublicParsed: a key record a verifier takes gets its modulus
// precomputed, and the verification uses it.
func TestRSAPublicParsed(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey("v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatal(err)
	}
	if key.rsa == nil || key.rsa.pub != key.Public {
		t.Fatal("no precomputed modulus for a 1024-bit key with e=65537")
	}
	h := sha256.Sum256([]byte("x"))
	sig, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
	if err := verifySig(key, RSASHA256, h[:], sig); err != nil {
		t.Fatal(err)
	}
}
