// Package arc validates and adds Authenticated Received Chain sets (RFC
// 8617): the ARC-Authentication-Results, ARC-Message-Signature and
// ARC-Seal fields with which forwarders (mailing lists, forwarding
// services) record what they saw before they changed a message. It
// reuses DKIM's tag lists, canonicalization, keys and algorithms.
package arc

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
)

// Result is a chain validation status, the "cv" of RFC 8617 §4.4.
type Result string

// Chain validation statuses.
const (
	None Result = "none"
	Pass Result = "pass"
	Fail Result = "fail"
)

// Header field names (RFC 8617 §4.1).
const (
	AARName  = "ARC-Authentication-Results"
	AMSName  = "ARC-Message-Signature"
	SealName = "ARC-Seal"
)

// MaxInstances is the highest instance number allowed (§4.2.1).
const MaxInstances = 50

// Outcome is the result of validating a message's chain.
type Outcome struct {
	Result Result `json:"result"`
	Reason string `json:"reason,omitempty"`
	// Instances is the number of ARC sets.
	Instances int `json:"instances"`
	// OldestPass is the lowest instance from which every AMS up to the
	// newest verifies (§5.2 step 6 and RFC 8601's arc.oldest-pass); 0
	// when the chain did not pass.
	OldestPass int `json:"oldest_pass,omitempty"`
	// Sealers are the d= of each seal, oldest first.
	Sealers []string `json:"sealers,omitempty"`
	// Results is the authentication results each instance recorded (the
	// ARC-Authentication-Results payload after "i=N;"), oldest first.
	Results []string `json:"results,omitempty"`
	// KeyDNSSEC is the DNSSEC status of the keys the validation looked
	// up, as dkim.Result.KeyDNSSEC (issue 27): "secure" only when every
	// one was; else the first that was not ("insecure", "unvalidated");
	// "" when no validator was asked (dns.dnssec off) or no key looked up.
	KeyDNSSEC string `json:"key_dnssec,omitempty"`
}

// sig is a parsed AMS or AS.
type sig struct {
	field     dkim.Field
	instance  int
	algorithm string
	b, bh     []byte
	domain    string
	selector  string
	headers   []string // AMS h=
	hc, bc    string   // AMS canonicalization
	length    int64    // AMS l=, -1 when absent
	cv        Result   // AS
}

type set struct {
	aar      *dkim.Field
	aarValue string // the results after "i=N;"
	ams, as  *sig
}

// Verifier validates chains. Resolver is required.
type Verifier struct {
	Resolver dnsx.Resolver
	// Budget bounds the verification work on one message (dkim.Budget)
	// when the context given to Finish carries none; 0 means
	// dkim.DefaultBudget.
	Budget time.Duration
}

// Validation is a chain validation in progress: feed it the body, then
// Finish.
type Validation struct {
	v      *Verifier
	fields []dkim.Field
	sets   map[int]*set
	n      int
	err    error                   // a structural failure found in the header
	body   dkim.BodyHashes         // one pass per canonicalization, for all the AMS
	bodies map[int]dkim.BodyHashID // AMS instance -> its body hash
	index  *dkim.HeaderIndex       // the fields by name, for every AMS's h=
	keySec string                  // Outcome.KeyDNSSEC so far
}

// Validate reads a whole message and validates its chain.
func (v *Verifier) Validate(ctx context.Context, r io.Reader) (Outcome, error) {
	br := bufio.NewReader(r)
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		return Outcome{}, err
	}
	vn := v.Start(fields)
	if _, err := io.Copy(vn, br); err != nil {
		return Outcome{}, err
	}
	return vn.Finish(ctx), nil
}

// Start begins validating a message with these header fields.
func (v *Verifier) Start(fields []dkim.Field) *Validation {
	vn := &Validation{v: v, fields: fields, bodies: map[int]dkim.BodyHashID{}}
	vn.sets, vn.err = collect(fields)
	vn.n = len(vn.sets)
	if vn.err == nil {
		for i, s := range vn.sets {
			vn.bodies[i] = vn.body.Add(s.ams.algorithm, s.ams.bc, s.ams.length)
		}
	}
	return vn
}

func (vn *Validation) Write(p []byte) (int, error) { return vn.body.Write(p) }

// collect parses the ARC fields into sets by instance and checks the
// chain's structure (§5.2 steps 1-3 in part, §4.2.1).
func collect(fields []dkim.Field) (map[int]*set, error) {
	sets := map[int]*set{}
	get := func(i int) *set {
		if sets[i] == nil {
			sets[i] = &set{}
		}
		return sets[i]
	}
	for idx := range fields {
		f := fields[idx]
		switch {
		case strings.EqualFold(f.Name, AARName):
			i, rest, err := aarInstance(f.Value())
			if err != nil {
				return sets, err
			}
			s := get(i)
			if s.aar != nil {
				return sets, fmt.Errorf("two %s fields with i=%d", AARName, i)
			}
			s.aar, s.aarValue = &fields[idx], rest
		case strings.EqualFold(f.Name, AMSName), strings.EqualFold(f.Name, SealName):
			seal := strings.EqualFold(f.Name, SealName)
			name := AMSName
			if seal {
				name = SealName
			}
			m, err := parseSig(f, seal)
			if err != nil {
				return sets, fmt.Errorf("%s: %w", name, err)
			}
			s := get(m.instance)
			slot := &s.ams
			if seal {
				slot = &s.as
			}
			if *slot != nil {
				return sets, fmt.Errorf("two %s fields with i=%d", name, m.instance)
			}
			*slot = m
		}
	}
	n := len(sets)
	for i := 1; i <= n; i++ {
		s := sets[i]
		switch {
		case s == nil:
			return sets, fmt.Errorf("instances are not 1 to %d without gaps", n)
		case s.aar == nil:
			return sets, fmt.Errorf("instance %d has no %s", i, AARName)
		case s.ams == nil:
			return sets, fmt.Errorf("instance %d has no %s", i, AMSName)
		case s.as == nil:
			return sets, fmt.Errorf("instance %d has no %s", i, SealName)
		}
	}
	return sets, nil
}

// aarInstance reads the "i=N;" that must open an AAR (§4.1.1).
func aarInstance(value string) (int, string, error) {
	v := strings.TrimLeft(strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", ""), "\n", ""), " \t")
	head, rest, ok := strings.Cut(v, ";")
	if !ok {
		return 0, "", fmt.Errorf("%s: no \";\" after the instance", AARName)
	}
	name, num, ok := strings.Cut(head, "=")
	if !ok || strings.TrimSpace(name) != "i" {
		return 0, "", fmt.Errorf("%s: does not start with i=", AARName)
	}
	i, err := instance(strings.TrimSpace(num))
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", AARName, err)
	}
	return i, strings.TrimSpace(rest), nil
}

func instance(s string) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 1 || i > MaxInstances || s[0] == '+' {
		return 0, fmt.Errorf("instance %q is not a number from 1 to %d", s, MaxInstances)
	}
	return i, nil
}

// parseSig parses an AMS (seal false) or an AS (seal true).
func parseSig(f dkim.Field, seal bool) (*sig, error) {
	tags, err := dkim.ParseTagList(f.Value())
	if err != nil {
		return nil, err
	}
	s := &sig{field: f, length: -1}
	need := []string{"i", "a", "b", "d", "s"}
	if seal {
		need = append(need, "cv")
		if _, ok := tags["h"]; ok {
			return nil, errors.New("h= is not allowed in a seal (§4.1.3)")
		}
	} else {
		need = append(need, "bh", "h")
	}
	for _, t := range need {
		if tags[t] == "" {
			return nil, fmt.Errorf("%s= is missing or empty", t)
		}
	}
	if s.instance, err = instance(tags["i"]); err != nil {
		return nil, err
	}
	s.algorithm = tags["a"]
	if s.algorithm != dkim.RSASHA256 && s.algorithm != dkim.Ed25519SHA256 {
		return nil, fmt.Errorf("a=%s is not supported", s.algorithm)
	}
	if s.b, err = base64.StdEncoding.DecodeString(dkim.StripWhiteSpace(tags["b"])); err != nil {
		return nil, errors.New("b= is not base64")
	}
	s.domain = strings.ToLower(tags["d"])
	s.selector = tags["s"]
	if !validDomain(s.domain) || !validDomain(s.selector) {
		return nil, fmt.Errorf("d=%s s=%s: not a domain name and selector", tags["d"], tags["s"])
	}
	if t, ok := tags["t"]; ok {
		if _, err := strconv.ParseUint(t, 10, 64); err != nil {
			return nil, fmt.Errorf("t=%s is not a time", t)
		}
	}
	if seal {
		switch Result(tags["cv"]) {
		case None, Pass, Fail:
			s.cv = Result(tags["cv"])
		default:
			return nil, fmt.Errorf("cv=%s is not none, pass or fail", tags["cv"])
		}
		return s, nil
	}
	if s.bh, err = base64.StdEncoding.DecodeString(dkim.StripWhiteSpace(tags["bh"])); err != nil {
		return nil, errors.New("bh= is not base64")
	}
	names := strings.Split(dkim.StripWhiteSpace(tags["h"]), ":")
	if len(names) > dkim.MaxSignedHeaders {
		return nil, fmt.Errorf("h= lists %d fields; at most %d accepted", len(names), dkim.MaxSignedHeaders)
	}
	signsFrom := false
	for _, h := range names {
		switch {
		case h == "":
			continue // matches no field, as DKIM verifiers read it
		case strings.EqualFold(h, SealName):
			return nil, errors.New("h= lists ARC-Seal, which an AMS must not sign (RFC 8617 §4.1.2)")
		case strings.EqualFold(h, "From"):
			signsFrom = true
		}
		s.headers = append(s.headers, h)
	}
	if !signsFrom {
		return nil, errors.New("h= does not list From (RFC 6376 §5.4, which the AMS follows)")
	}
	// No c= means simple/simple: RFC 8617 §4.1.2 gives the AMS the
	// DKIM-Signature's semantics (RFC 6376 §3.5).
	s.hc, s.bc = dkim.Simple, dkim.Simple
	if c, ok := tags["c"]; ok {
		hc, bc, _ := strings.Cut(c, "/")
		if bc == "" {
			bc = dkim.Simple
		}
		if !isCanon(hc) || !isCanon(bc) {
			return nil, fmt.Errorf("c=%s is not a canonicalization", c)
		}
		s.hc, s.bc = hc, bc
	}
	if l, ok := tags["l"]; ok {
		if s.length, err = strconv.ParseInt(l, 10, 64); err != nil || s.length < 0 {
			return nil, fmt.Errorf("l=%s is not a length", l)
		}
	}
	return s, nil
}

func isCanon(c string) bool { return c == dkim.Simple || c == dkim.Relaxed }

func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Finish validates the chain (§5.2). The signature checks draw on the
// context's dkim.Budget, or on one of v.Budget: a chain that spends it
// fails, not evaluated further; so does one whose ctx ends (the caller
// has gone), checked between signatures.
func (vn *Validation) Finish(ctx context.Context) Outcome {
	if vn.err != nil {
		return Outcome{Result: Fail, Reason: vn.err.Error(), Instances: len(vn.sets)}
	}
	if vn.n == 0 {
		return Outcome{Result: None}
	}
	out := Outcome{Instances: vn.n}
	for i := 1; i <= vn.n; i++ {
		out.Sealers = append(out.Sealers, vn.sets[i].as.domain)
		out.Results = append(out.Results, vn.sets[i].aarValue)
	}
	fail := func(why string) Outcome { out.Result, out.Reason, out.KeyDNSSEC = Fail, why, vn.keySec; return out }
	// Step 2: a chain that a sealer already declared failed stays failed.
	if vn.sets[vn.n].as.cv == Fail {
		return fail(fmt.Sprintf("instance %d sealed the chain as failed", vn.n))
	}
	// Step 3: the first seal says none, every later one pass (§4.1.3).
	for i := 1; i <= vn.n; i++ {
		want := Pass
		if i == 1 {
			want = None
		}
		if cv := vn.sets[i].as.cv; cv != want {
			return fail(fmt.Sprintf("seal %d has cv=%s, want %s", i, cv, want))
		}
	}
	b := dkim.BudgetFrom(ctx, vn.v.Budget)
	// stop is why no further signature is checked: the budget is spent,
	// or the caller has gone (a cached key would need no DNS to notice).
	stop := func() string {
		if err := ctx.Err(); err != nil {
			return "not evaluated: " + err.Error()
		}
		if b.Spent() {
			return b.Reason()
		}
		return ""
	}
	// Step 4: the newest AMS must verify.
	if why := stop(); why != "" {
		return fail(fmt.Sprintf("message signature %d: %s", vn.n, why))
	}
	if err := vn.verifyAMS(ctx, b, vn.n); err != nil {
		return fail(fmt.Sprintf("message signature %d: %v", vn.n, err))
	}
	// Step 5: every seal, newest first.
	for i := vn.n; i >= 1; i-- {
		if why := stop(); why != "" {
			return fail(fmt.Sprintf("seal %d: %s", i, why))
		}
		if err := vn.verifySeal(ctx, b, i); err != nil {
			return fail(fmt.Sprintf("seal %d: %v", i, err))
		}
	}
	// Step 6: the oldest instance from which the AMS chain is unbroken; a
	// spent budget ends the search where it got to.
	out.Result, out.OldestPass = Pass, vn.n
	for i := vn.n - 1; i >= 1 && stop() == "" && vn.verifyAMS(ctx, b, i) == nil; i-- {
		out.OldestPass = i
	}
	out.KeyDNSSEC = vn.keySec
	return out
}

func (vn *Validation) key(ctx context.Context, s *sig) (*dkim.Key, error) {
	// Refused keys (over dkim.MaxRSABits, other exponents) come back as
	// permerrors from LookupKey, before any arithmetic.
	key, status, why, sec := dkim.LookupKeyDNSSEC(ctx, vn.v.Resolver, s.selector, s.domain)
	if sec != "" && (vn.keySec == "" || vn.keySec == "secure") {
		vn.keySec = sec // the weakest link: secure only while every key is
	}
	if key == nil {
		return nil, fmt.Errorf("%s: %s", status, why)
	}
	if key.Type != strings.SplitN(s.algorithm, "-", 2)[0] {
		return nil, fmt.Errorf("key type %s does not match a=%s", key.Type, s.algorithm)
	}
	if key.Type == "rsa" && key.Bits < dkim.MinRSABits {
		return nil, fmt.Errorf("%d-bit RSA key is too short (RFC 8301)", key.Bits)
	}
	return key, nil
}

// verifyAMS checks instance i's message signature as a DKIM signature
// (§5.1.2): body hash, then the h= fields bottom-up and the AMS itself.
// The work is charged to b, the key's DNS lookup is not.
func (vn *Validation) verifyAMS(ctx context.Context, b *dkim.Budget, i int) error {
	start := time.Now()
	m := vn.sets[i].ams
	if got, _ := vn.body.Sum(vn.bodies[i]); string(got) != string(m.bh) {
		b.Charge(start)
		return errors.New("body hash did not verify")
	}
	if vn.index == nil {
		// Every AMS's names at once: one pass over the fields.
		vn.index = dkim.NewHeaderIndex(vn.fields)
		for j := 1; j <= vn.n; j++ {
			vn.index.Want(vn.sets[j].ams.headers)
		}
	}
	hashed := vn.index.Hash(m.field, m.algorithm, m.hc, m.headers)
	b.Charge(start)
	key, err := vn.key(ctx, m)
	if err != nil {
		return err
	}
	defer b.Charge(time.Now())
	if err := dkim.VerifyHash(key, m.algorithm, hashed, m.b); err != nil {
		return errors.New("signature did not verify")
	}
	return nil
}

// verifySeal checks seal i over the sets 1..i, each AAR, AMS, AS in that
// order, relaxed, the seal itself without its b= and final CRLF (§5.1.1).
func (vn *Validation) verifySeal(ctx context.Context, b *dkim.Budget, i int) error {
	as := vn.sets[i].as
	key, err := vn.key(ctx, as)
	if err != nil {
		return err
	}
	defer b.Charge(time.Now())
	chain := make([]setFields, 0, i)
	for j := 1; j <= i; j++ {
		s := vn.sets[j]
		chain = append(chain, setFields{aar: *s.aar, ams: s.ams.field, as: s.as.field})
	}
	if err := dkim.VerifyHash(key, as.algorithm, sealHash(as.algorithm, chain), as.b); err != nil {
		return errors.New("signature did not verify")
	}
	return nil
}

// setFields are one ARC set's three fields.
type setFields struct{ aar, ams, as dkim.Field }

// sealHash is the hash an ARC-Seal signs (§5.1.1): the sets oldest first,
// each AAR, AMS and AS relaxed, the last AS (the seal itself) without
// its b= value and final CRLF.
func sealHash(alg string, chain []setFields) []byte {
	h := dkim.NewHeaderHash(alg)
	for j, s := range chain {
		io.WriteString(h, dkim.CanonicalizeHeader(s.aar, dkim.Relaxed))
		io.WriteString(h, dkim.CanonicalizeHeader(s.ams, dkim.Relaxed))
		if j < len(chain)-1 {
			io.WriteString(h, dkim.CanonicalizeHeader(s.as, dkim.Relaxed))
		}
	}
	self := chain[len(chain)-1].as
	c := dkim.CanonicalizeHeader(dkim.Field{Name: self.Name, Raw: dkim.WithoutSignatureValue(self.Raw)}, dkim.Relaxed)
	io.WriteString(h, strings.TrimSuffix(c, "\r\n"))
	return h.Sum(nil)
}
