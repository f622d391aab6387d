package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GenerateKey makes a signing key: "rsa" with bits (at least 1024, 2048
// recommended by RFC 8301) or "ed25519".
func GenerateKey(alg string, bits int) (crypto.Signer, error) {
	switch alg {
	case "rsa":
		if bits < 1024 {
			return nil, fmt.Errorf("dkim: RSA keys under 1024 bits are not valid (RFC 8301); got %d", bits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("dkim: unknown algorithm %q (rsa or ed25519)", alg)
}

// PublicKeyRecord is the key record to publish for a private key.
func PublicKeyRecord(k crypto.Signer) (string, error) {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", fmt.Errorf("dkim: unsupported key type %T", k)
}

// ZoneRecord writes the record as a BIND zone-file line for
// selector._domainkey, split into character-strings of at most 255 octets
// (RFC 1035 §3.3), the way opendkim-genkey writes S.txt.
func ZoneRecord(selector, domain, record string) string {
	var parts []string
	for len(record) > 0 {
		n := min(len(record), 250)
		parts = append(parts, `"`+record[:n]+`"`)
		record = record[n:]
	}
	return fmt.Sprintf("%s._domainkey\tIN\tTXT\t( %s )  ; ----- DKIM key %s for %s\n",
		selector, strings.Join(parts, "\n\t"), selector, domain)
}

// MarshalPrivateKey encodes a key as PKCS#8 PEM, which OpenDKIM, dkimpy
// and Go all read.
func MarshalPrivateKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey reads a PEM key (PKCS#8, or PKCS#1 as opendkim-genkey
// writes RSA keys) or a bare base64 Ed25519 seed as dkimpy's dknewkey
// writes.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	if block, _ := pem.Decode(data); block != nil {
		if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			if s, ok := k.(crypto.Signer); ok {
				switch s.(type) {
				case *rsa.PrivateKey, ed25519.PrivateKey:
					return s, nil
				}
			}
			return nil, errors.New("dkim: private key is neither RSA nor Ed25519")
		}
		if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
			return k, nil
		}
		return nil, errors.New("dkim: PEM block is not a PKCS#8 or PKCS#1 private key")
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err == nil && len(seed) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(seed), nil
	}
	return nil, errors.New("dkim: no PEM key and no base64 Ed25519 seed")
}

// LoadPrivateKey reads a key file.
func LoadPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// WriteKeyFiles writes dir/selector.private (mode 0600, never wider) and
// dir/selector.txt (the DNS record), as opendkim-genkey does. Existing
// files are not overwritten.
func WriteKeyFiles(dir, selector, domain string, k crypto.Signer) (privPath, txtPath string, err error) {
	pemBytes, err := MarshalPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	rec, err := PublicKeyRecord(k)
	if err != nil {
		return "", "", err
	}
	privPath = filepath.Join(dir, selector+".private")
	txtPath = filepath.Join(dir, selector+".txt")
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", fmt.Errorf("dkim: %w", err)
	}
	// The umask can only narrow 0600; Chmod states the mode outright.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", "", err
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return "", "", err
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(txtPath, []byte(ZoneRecord(selector, domain, rec)), 0o644); err != nil {
		return "", "", err
	}
	return privPath, txtPath, nil
}
