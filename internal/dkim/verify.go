package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"

	"mailwall/internal/dnsx"
)

// Status is a DKIM result as RFC 8601 §2.7.1 names it.
type Status string

// The results.
const (
	None      Status = "none"
	Pass      Status = "pass"
	Fail      Status = "fail"
	Neutral   Status = "neutral"
	Policy    Status = "policy"
	TempError Status = "temperror"
	PermError Status = "permerror"
)

// Result is the outcome of one signature.
type Result struct {
	Status     Status `json:"result"`
	Reason     string `json:"reason,omitempty"`
	Domain     string `json:"domain"`
	Selector   string `json:"selector"`
	Identifier string `json:"identifier,omitempty"`
	Algorithm  string `json:"algorithm"`
	HeaderB    string `json:"header_b,omitempty"`
	KeyBits    int    `json:"key_bits,omitempty"`
	// Weak is set for rsa-sha1 (RFC 8301): verified, but not to be trusted
	// as much as sha256.
	Weak bool `json:"weak,omitempty"`
	// BodyLength is l= (-1 without); BodyBytes the canonical body length
	// seen. With l= less than BodyBytes, content was added after signing.
	BodyLength int64      `json:"body_length"`
	BodyBytes  int64      `json:"body_bytes"`
	Testing    bool       `json:"testing,omitempty"` // key t=y
	Signature  *Signature `json:"-"`
}

// Verifier checks signatures. Resolver is required.
type Verifier struct {
	Resolver dnsx.Resolver
	// MinRSABits: shorter RSA keys give "policy" (RFC 8301 §3.2 sets 1024).
	MinRSABits int
	// MaxSignatures bounds the signatures checked per message (default 10);
	// more are reported as "policy" without work.
	MaxSignatures int
	// Now is the clock for x=; nil means time.Now.
	Now func() time.Time

	keys keyCache
}

// keyCache keeps parsed key records by their text. The resolver caches the
// record; parsing it again (base64, ASN.1, an RSA modulus) cost more per
// message than finding it. Keyed by the text, a changed record is a new
// entry, so nothing outlives the DNS TTL that matters.
type keyCache struct {
	mu   sync.Mutex
	keys map[string]*Key
}

// maxCachedKeys bounds keyCache; when full it starts over.
const maxCachedKeys = 4096

func (c *keyCache) parse(record string) (*Key, error) {
	c.mu.Lock()
	k := c.keys[record]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	k, err := ParseKey(record)
	if err != nil {
		return k, err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= maxCachedKeys {
		c.keys = make(map[string]*Key)
	}
	c.keys[record] = k
	c.mu.Unlock()
	return k, nil
}

// Verify reads a whole message and checks its signatures. The error is
// only for a message that cannot be read; bad signatures are results.
func (v *Verifier) Verify(ctx context.Context, r io.Reader) ([]Result, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	fields, err := ReadHeader(br)
	if err != nil {
		return nil, err
	}
	vn := v.Start(fields)
	if _, err := io.Copy(vn, br); err != nil {
		return nil, fmt.Errorf("dkim: reading body: %w", err)
	}
	return vn.Finish(ctx), nil
}

// Verification is one message being checked: the header is given up
// front, the body is written in pieces, Finish checks the signatures.
type Verification struct {
	v       *Verifier
	fields  []Field
	sigs    []*pending
	results []Result // for signatures that failed before the body
}

type pending struct {
	field Field
	sig   *Signature
	body  *bodyHasher
}

// Start begins verifying a message with these header fields.
func (v *Verifier) Start(fields []Field) *Verification {
	vn := &Verification{v: v, fields: fields}
	max := v.MaxSignatures
	if max <= 0 {
		max = 10
	}
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "DKIM-Signature") {
			continue
		}
		if len(vn.sigs)+len(vn.results) >= max {
			vn.results = append(vn.results, Result{Status: Policy, Reason: fmt.Sprintf("more than %d signatures; not checked", max), BodyLength: -1})
			continue
		}
		sig, err := ParseSignature(f.Value())
		if err != nil {
			res := Result{Status: Neutral, Reason: "signature syntax error: " + err.Error(), BodyLength: -1}
			res.Domain, res.Selector = roughTags(f.Value())
			vn.results = append(vn.results, res)
			continue
		}
		var h hash.Hash = sha256.New()
		if sig.Algorithm == RSASHA1 {
			h = sha1.New()
		}
		vn.sigs = append(vn.sigs, &pending{field: f, sig: sig, body: newBodyHasher(h, sig.BodyCanon, sig.Length)})
	}
	return vn
}

// roughTags pulls d= and s= out of a signature that did not parse, so the
// result still names who signed.
func roughTags(value string) (domain, selector string) {
	for part := range strings.SplitSeq(trimFWS(value), ";") {
		name, val, _ := strings.Cut(part, "=")
		switch strings.TrimSpace(name) {
		case "d":
			domain = strings.ToLower(strings.TrimSpace(val))
		case "s":
			selector = strings.TrimSpace(val)
		}
	}
	return domain, selector
}

// Write feeds body octets to every signature's hash.
func (vn *Verification) Write(p []byte) (int, error) {
	for _, s := range vn.sigs {
		s.body.Write(p)
	}
	return len(p), nil
}

// Finish ends the body and checks each signature; results keep the order
// of the signatures in the header, parse failures first.
func (vn *Verification) Finish(ctx context.Context) []Result {
	out := vn.results
	for _, s := range vn.sigs {
		out = append(out, vn.v.check(ctx, vn.fields, s))
	}
	return out
}

func (v *Verifier) check(ctx context.Context, fields []Field, p *pending) Result {
	sig := p.sig
	res := Result{Domain: sig.Domain, Selector: sig.Selector, Identifier: sig.Identifier, Algorithm: sig.Algorithm,
		HeaderB: sig.HeaderB, BodyLength: sig.Length, Signature: sig, Weak: sig.Algorithm == RSASHA1}
	bodyHash := p.body.Sum()
	res.BodyBytes = p.body.written
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if !sig.Expiration.IsZero() && now.After(sig.Expiration) {
		return res.with(PermError, "signature expired")
	}
	key, status, why := lookupKey(ctx, v.Resolver, sig.Selector, sig.Domain, v.keys.parse)
	if key == nil {
		return res.with(status, why)
	}
	res.KeyBits, res.Testing = key.Bits, key.Testing
	keyAlg := strings.SplitN(sig.Algorithm, "-", 2)
	if key.Type != keyAlg[0] {
		return res.with(PermError, fmt.Sprintf("key type %s does not match a=%s", key.Type, sig.Algorithm))
	}
	if !key.allowsHash(keyAlg[1]) {
		return res.with(PermError, fmt.Sprintf("key does not allow %s", keyAlg[1]))
	}
	if !key.allowsEmail() {
		return res.with(PermError, "key is not for email (s=)")
	}
	if key.Type == "rsa" && key.Bits < max(v.MinRSABits, 1024) {
		return res.with(Policy, fmt.Sprintf("%d-bit RSA key is too short (RFC 8301)", key.Bits))
	}
	if key.Strict {
		_, idom, _ := strings.Cut(sig.Identifier, "@")
		if !strings.EqualFold(strings.TrimSuffix(idom, "."), sig.Domain) {
			return res.with(PermError, "key has t=s but i= is a subdomain of d=")
		}
	}
	if sig.Length >= 0 && res.BodyBytes < sig.Length {
		return res.with(Fail, fmt.Sprintf("body shorter than l=%d", sig.Length))
	}
	if !bytes.Equal(bodyHash, sig.BodyHash) {
		return res.with(Fail, "body hash did not verify")
	}
	hashed := HeaderHash(fields, p.field, sig.Algorithm, sig.HeaderCanon, sig.Headers)
	if err := verifySig(key, sig.Algorithm, hashed, sig.Signature); err != nil {
		return res.with(Fail, "signature did not verify")
	}
	res.Status = Pass
	var notes []string
	if res.Weak {
		notes = append(notes, "rsa-sha1 is weak (RFC 8301)")
	}
	if sig.Length >= 0 {
		notes = append(notes, fmt.Sprintf("l=%d covers %d of %d body bytes", sig.Length, min(sig.Length, res.BodyBytes), res.BodyBytes))
	}
	if key.Testing {
		notes = append(notes, "key in testing mode (t=y)")
	}
	res.Reason = strings.Join(notes, "; ")
	return res
}

func (r Result) with(s Status, why string) Result {
	r.Status, r.Reason = s, why
	return r
}

// LookupKey fetches and parses the key record selector._domainkey.domain
// (ARC's seals and message signatures use it too). No key is a permerror
// (§6.1.2: "no key for signature"); a DNS failure a temperror.
func LookupKey(ctx context.Context, r dnsx.Resolver, selector, domain string) (*Key, Status, string) {
	return lookupKey(ctx, r, selector, domain, ParseKey)
}

func lookupKey(ctx context.Context, r dnsx.Resolver, selector, domain string, parse func(string) (*Key, error)) (*Key, Status, string) {
	name := selector + "._domainkey." + domain
	txts, err := dnsx.TXT(ctx, r, name)
	if err != nil {
		if dnsx.IsTemporary(err) {
			return nil, TempError, "key lookup failed: " + err.Error()
		}
		return nil, PermError, "no key for signature: " + err.Error()
	}
	if len(txts) == 0 {
		return nil, PermError, "no key for signature"
	}
	var firstErr error
	for _, t := range txts {
		k, err := parse(t)
		if err == nil {
			return k, "", ""
		}
		if errors.Is(err, ErrKeyRevoked) {
			return nil, PermError, "key revoked"
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, PermError, "key syntax error: " + firstErr.Error()
}

// HeaderHash computes the hash of the signed header fields and of the
// signature field itself (RFC 6376 §3.7; an ARC-Message-Signature the
// same, RFC 8617 §5.1.2): for each name in headers, the last instance not
// yet used, bottom up; names with no instance left add nothing. The
// signature field is hashed with its b= emptied and without its CRLF.
func HeaderHash(fields []Field, sigField Field, alg, canon string, headers []string) []byte {
	h := newHash(alg)
	used := make(map[int]bool, len(headers))
	for _, name := range headers {
		for i := len(fields) - 1; i >= 0; i-- {
			if used[i] || !strings.EqualFold(fields[i].Name, name) {
				continue
			}
			used[i] = true
			io.WriteString(h, canonHeader(fields[i], canon))
			break
		}
	}
	s := canonHeader(Field{Name: sigField.Name, Raw: withoutB(sigField.Raw)}, canon)
	io.WriteString(h, strings.TrimSuffix(s, "\r\n"))
	return h.Sum(nil)
}

func verifySig(key *Key, alg string, hashed, sigBytes []byte) error {
	switch pub := key.Public.(type) {
	case *rsa.PublicKey:
		hf := crypto.SHA256
		if alg == RSASHA1 {
			hf = crypto.SHA1
		}
		return rsa.VerifyPKCS1v15(pub, hf, hashed, sigBytes)
	case ed25519.PublicKey:
		// RFC 8463 §3: Ed25519 signs the SHA-256 hash of the header data.
		if !ed25519.Verify(pub, hashed, sigBytes) {
			return errors.New("ed25519 verification failed")
		}
		return nil
	}
	return errors.New("unsupported key")
}
