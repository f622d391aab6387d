package dkim

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

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
	// Weak is set for rsa-sha1 (RFC 8301), verified only with
	// AcceptRSASHA1 and not to be trusted as much as sha256.
	Weak bool `json:"weak,omitempty"`
	// BodyLength is l= (-1 without); BodyBytes the canonical body length
	// seen. With l= less than BodyBytes, content was added after signing.
	BodyLength int64 `json:"body_length"`
	BodyBytes  int64 `json:"body_bytes"`
	Testing    bool  `json:"testing,omitempty"` // key t=y
	// KeyDNSSEC is the DNSSEC status of the key record's answer
	// ("secure", "insecure", or "unvalidated" when a validator was
	// asked and could not vouch for it); "" with dns.dnssec off. It
	// makes the "(2048-bit key; secure)" comment OpenDKIM writes.
	KeyDNSSEC string     `json:"key_dnssec,omitempty"`
	Signature *Signature `json:"-"`
	// BodyHash and HeaderHash are the hashes computed here, beside the
	// signature's bh= (a debug peer's log shows both); nil when the
	// check stopped before computing them.
	BodyHash, HeaderHash []byte `json:"-"`
}

// Verifier checks signatures. Resolver is required.
type Verifier struct {
	Resolver dnsx.Resolver
	// MinRSABits: shorter RSA keys give "policy" (RFC 8301 §3.2 sets 1024).
	MinRSABits int
	// MaxSignatures bounds the signatures checked per message (default
	// DefaultMaxSignatures, as OpenDKIM's MaximumSignaturesToVerify): the
	// first ones in the header are checked, the rest are reported together
	// as one "policy" result, so results stay bounded too.
	MaxSignatures int
	// AcceptRSASHA1 verifies rsa-sha1 signatures, reported as weak.
	// Without it they are "policy" results: RFC 8301 §3.1 says verifiers
	// must not take them as valid.
	AcceptRSASHA1 bool
	// Budget bounds the verification work on one message (see Budget)
	// when the context given to Finish carries none (WithBudget); 0 means
	// DefaultBudget.
	Budget time.Duration
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

// DefaultMaxSignatures is Verifier.MaxSignatures when unset.
const DefaultMaxSignatures = 10

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
	v         *Verifier
	fields    []Field
	sigs      []*pending
	bodies    BodyHashes
	results   []Result // for signatures that failed before the body
	unchecked int      // signatures past MaxSignatures
}

type pending struct {
	field Field
	sig   *Signature
	body  BodyHashID
}

// Start begins verifying a message with these header fields.
func (v *Verifier) Start(fields []Field) *Verification {
	vn := &Verification{v: v, fields: fields}
	seen := 0
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "DKIM-Signature") {
			continue
		}
		if seen >= v.maxSignatures() {
			vn.unchecked++
			continue
		}
		seen++
		sig, err := ParseSignature(f.Value())
		if err != nil {
			res := Result{Status: Neutral, Reason: "signature syntax error: " + err.Error(), BodyLength: -1}
			res.Domain, res.Selector = roughTags(f.Value())
			vn.results = append(vn.results, res)
			continue
		}
		// Refused before any work: no body hash, no key lookup.
		switch {
		case len(sig.Headers) > MaxSignedHeaders:
			vn.results = append(vn.results, resultFor(sig).with(PermError,
				fmt.Sprintf("h= lists %d fields; at most %d accepted", len(sig.Headers), MaxSignedHeaders)))
			continue
		case sig.Algorithm == RSASHA1 && !v.AcceptRSASHA1:
			vn.results = append(vn.results, resultFor(sig).with(Policy, "rsa-sha1 is not accepted (RFC 8301)"))
			continue
		}
		vn.sigs = append(vn.sigs, &pending{field: f, sig: sig, body: vn.bodies.Add(sig.Algorithm, sig.BodyCanon, sig.Length)})
	}
	return vn
}

func (v *Verifier) maxSignatures() int {
	if v.MaxSignatures <= 0 {
		return DefaultMaxSignatures
	}
	return v.MaxSignatures
}

// resultFor is a signature's result before it is checked.
func resultFor(sig *Signature) Result {
	return Result{Domain: sig.Domain, Selector: sig.Selector, Identifier: sig.Identifier, Algorithm: sig.Algorithm,
		HeaderB: sig.HeaderB, BodyLength: sig.Length, Signature: sig, Weak: sig.Algorithm == RSASHA1}
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

// Write feeds body octets to the signatures' hashes.
func (vn *Verification) Write(p []byte) (int, error) { return vn.bodies.Write(p) }

// Finish ends the body and checks each signature; results keep the order
// of the signatures in the header, those refused before the body first,
// and one result for the signatures past MaxSignatures last. The checks
// draw on the context's Budget (WithBudget), or on one of v.Budget; those
// not begun when ctx ends are temperrors, not evaluated.
func (vn *Verification) Finish(ctx context.Context) []Result {
	b := BudgetFrom(ctx, vn.v.Budget)
	out := vn.results
	if len(vn.sigs) > 0 {
		start := time.Now()
		ix := NewHeaderIndex(vn.fields)
		for _, s := range vn.sigs {
			ix.Want(s.sig.Headers)
		}
		b.Charge(start)
		for _, s := range vn.sigs {
			if b.Spent() {
				out = append(out, resultFor(s.sig).with(Policy, b.Reason()))
				continue
			}
			// Checked between signatures: once the caller has gone (the
			// milter client hung up, its deadline passed), the rest are
			// not worth a key lookup or the arithmetic (a cached key would
			// need no DNS to notice).
			if err := ctx.Err(); err != nil {
				out = append(out, resultFor(s.sig).with(TempError, "not evaluated: "+err.Error()))
				continue
			}
			out = append(out, vn.v.check(ctx, ix, &vn.bodies, s, b))
		}
	}
	if vn.unchecked > 0 {
		out = append(out, Result{Status: Policy, BodyLength: -1,
			Reason: fmt.Sprintf("%d more signatures not checked: at most %d per message", vn.unchecked, vn.v.maxSignatures())})
	}
	return out
}

// check verifies one signature; the work is charged to b, the wait for
// the key's DNS answer is not.
func (v *Verifier) check(ctx context.Context, ix *HeaderIndex, bodies *BodyHashes, p *pending, b *Budget) Result {
	start := time.Now()
	sig := p.sig
	res := resultFor(sig)
	bodyHash, bodyBytes := bodies.Sum(p.body)
	res.BodyBytes, res.BodyHash = bodyBytes, bodyHash
	b.Charge(start)
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if !sig.Expiration.IsZero() && now.After(sig.Expiration) {
		return res.with(PermError, "signature expired")
	}
	key, status, why, keySec := lookupKey(ctx, v.Resolver, sig.Selector, sig.Domain, v.keys.parse)
	res.KeyDNSSEC = keySec
	if key == nil {
		return res.with(status, why)
	}
	defer b.Charge(time.Now())
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
	if key.Type == "rsa" && key.Bits < max(v.MinRSABits, MinRSABits) {
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
	hashed := ix.Hash(p.field, sig.Algorithm, sig.HeaderCanon, sig.Headers)
	res.HeaderHash = hashed
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
	k, st, why, _ := lookupKey(ctx, r, selector, domain, ParseKey)
	return k, st, why
}

// lookupKey also returns the key record's DNSSEC status (KeyDNSSEC). A
// bogus answer is a lookup error, so a temperror (RFC 6376 §6.1.2 "key
// unavailable"), never a key to verify with.
func lookupKey(ctx context.Context, r dnsx.Resolver, selector, domain string, parse func(string) (*Key, error)) (*Key, Status, string, string) {
	a, err := r.Query(ctx, selector+"._domainkey."+domain, dns.TypeTXT)
	if err != nil {
		if dnsx.IsTemporary(err) {
			return nil, TempError, "key lookup failed: " + err.Error(), ""
		}
		return nil, PermError, "no key for signature: " + err.Error(), ""
	}
	sec := dnssecStatus(a)
	var txts []string
	for _, rr := range a.Records {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, dnsx.JoinTXT(t.Txt))
		}
	}
	k, st, why := parseKeyRecords(txts, parse)
	return k, st, why, sec
}

// dnssecStatus is what an answer says of its DNSSEC status for a
// result: "" when no validator was asked (dns.dnssec off), else
// "secure", "insecure" or "unvalidated" (a trust_ad server not trusted).
func dnssecStatus(a *dnsx.Answer) string {
	if a == nil || a.Security == dnsx.Unvalidated && a.SecurityReason == "" {
		return ""
	}
	return a.Security.String()
}

func parseKeyRecords(txts []string, parse func(string) (*Key, error)) (*Key, Status, string) {
	if len(txts) == 0 {
		return nil, PermError, "no key for signature"
	}
	var firstErr error
	for _, t := range txts {
		k, err := parse(t)
		if err == nil {
			if why := k.Refusal(); why != "" {
				return nil, PermError, why
			}
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

func verifySig(key *Key, alg string, hashed, sigBytes []byte) error {
	// The key's cost is checked before any arithmetic with it, whoever
	// the caller (lookupKey refuses such keys already).
	if why := key.Refusal(); why != "" {
		return errors.New(why)
	}
	switch pub := key.Public.(type) {
	case *rsa.PublicKey:
		hf := crypto.SHA256
		if alg == RSASHA1 {
			hf = crypto.SHA1
		}
		if key.rsa != nil && key.rsa.pub == pub {
			return key.rsa.verifyPKCS1v15(hf, hashed, sigBytes)
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
