package dkim

import (
	"bufio"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DefaultSignedHeaders are signed when present (RFC 6376 §5.4.1's
// recommendations, plus the MIME and list fields a receiver shows).
var DefaultSignedHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// DefaultOversigned are listed once more than they occur, so that a copy
// added after signing breaks the signature (RFC 6376 §8.15).
var DefaultOversigned = []string{"From", "Subject", "To"}

// Signer makes DKIM-Signature fields. Domain, Selector and Key are
// required; the rest have defaults.
type Signer struct {
	Domain   string
	Selector string
	Key      crypto.Signer // *rsa.PrivateKey or ed25519.PrivateKey
	// Identifier is i=; empty leaves it out (it then defaults to @Domain).
	Identifier string
	// Headers to sign when present; nil: DefaultSignedHeaders.
	Headers []string
	// Oversign lists headers signed once more than present; nil:
	// DefaultOversigned. An empty non-nil slice turns it off.
	Oversign []string
	// HeaderCanon and BodyCanon: Relaxed (default) or Simple.
	HeaderCanon, BodyCanon string
	// Expiration sets x= this long after t=; zero leaves x= out.
	Expiration time.Duration
	// Now is the clock for t=; nil means time.Now.
	Now func() time.Time
}

func (s *Signer) algorithm() (string, error) { return KeyAlgorithm(s.Key) }

// KeyAlgorithm returns the a= value that a private key signs with.
func KeyAlgorithm(k crypto.Signer) (string, error) {
	switch k.(type) {
	case *rsa.PrivateKey:
		return RSASHA256, nil
	case ed25519.PrivateKey:
		return Ed25519SHA256, nil
	}
	return "", fmt.Errorf("dkim: unsupported key type %T", k)
}

// Sign reads a message and returns the DKIM-Signature field to prepend,
// ending in CRLF.
func (s *Signer) Sign(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	fields, err := ReadHeader(br)
	if err != nil {
		return "", err
	}
	sg, err := s.Start(fields)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(sg, br); err != nil {
		return "", fmt.Errorf("dkim: reading body: %w", err)
	}
	return sg.Finish()
}

// Signing is one message being signed: header up front, body written in
// pieces, Finish makes the field.
type Signing struct {
	s      *Signer
	fields []Field
	body   *bodyHasher
	alg    string
	hc, bc string
}

// Start begins signing a message with these header fields.
func (s *Signer) Start(fields []Field) (*Signing, error) {
	if s.Domain == "" || s.Selector == "" || s.Key == nil {
		return nil, errors.New("dkim: signer needs a domain, a selector and a key")
	}
	alg, err := s.algorithm()
	if err != nil {
		return nil, err
	}
	hc, bc := orDefault(s.HeaderCanon, Relaxed), orDefault(s.BodyCanon, Relaxed)
	return &Signing{s: s, fields: fields, alg: alg, hc: hc, bc: bc, body: newBodyHasher(sha256.New(), bc, -1)}, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Write feeds body octets.
func (sg *Signing) Write(p []byte) (int, error) { return sg.body.Write(p) }

// Finish computes the signature and returns the field, folded at 78
// columns, ending in CRLF.
func (sg *Signing) Finish() (string, error) {
	s := sg.s
	bh := base64.StdEncoding.EncodeToString(sg.body.Sum())
	names := sg.signedNames()
	hasFrom := false
	for _, f := range sg.fields {
		hasFrom = hasFrom || strings.EqualFold(f.Name, "From")
	}
	if !hasFrom {
		return "", errors.New("dkim: message has no From field to sign")
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	tags := []string{"v=1", "a=" + sg.alg, "c=" + sg.hc + "/" + sg.bc, "d=" + s.Domain, "s=" + s.Selector}
	if s.Identifier != "" {
		tags = append(tags, "i="+s.Identifier)
	}
	tags = append(tags, "t="+strconv.FormatInt(now.Unix(), 10))
	if s.Expiration > 0 {
		tags = append(tags, "x="+strconv.FormatInt(now.Add(s.Expiration).Unix(), 10))
	}
	tags = append(tags, "h="+strings.Join(names, ":"), "bh="+bh, "b=")
	field := FoldTags("DKIM-Signature", tags)
	hashed := HeaderHash(sg.fields, Field{Name: "DKIM-Signature", Raw: field + "\r\n"}, sg.alg, sg.hc, names)
	b, err := SignHash(s.Key, hashed)
	if err != nil {
		return "", err
	}
	return FillSignature(field, b), nil
}

// SignHash signs hashed header data: RSA PKCS#1 v1.5 over SHA-256, or
// Ed25519 over the SHA-256 hash itself (RFC 8463 §3).
func SignHash(k crypto.Signer, hashed []byte) ([]byte, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		b, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, hashed)
		if err != nil {
			return nil, fmt.Errorf("dkim: signing: %w", err)
		}
		return b, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(k, hashed), nil
	}
	return nil, fmt.Errorf("dkim: unsupported key type %T", k)
}

// FillSignature completes a field made by FoldTags that holds an empty
// "b=" tag with the base64 signature, folded from where it starts; the
// result ends in CRLF.
func FillSignature(field string, sig []byte) string {
	at := emptyB(field)
	if at < 0 {
		return field + "\r\n"
	}
	at += len("b=")
	value := foldBase64(base64.StdEncoding.EncodeToString(sig), len(lastLine(field[:at])))
	rest := field[at:]
	// Tags after a b= in the middle move to a line of their own when the
	// value leaves no room. That changes white space only, which relaxed
	// header canonicalization ignores; our DKIM signer keeps b= last.
	line, _, _ := strings.Cut(rest, "\r\n")
	if strings.HasPrefix(rest, ";") && len(lastLine(field[:at]+value))+len(line) > 78 {
		rest = ";\r\n\t" + strings.TrimLeft(rest[1:], " ")
	}
	return field[:at] + value + rest + "\r\n"
}

// emptyB finds the tag "b=" with an empty value in a folded tag list.
func emptyB(field string) int {
	for i := 0; i+1 < len(field); i++ {
		if field[i] != 'b' || field[i+1] != '=' {
			continue
		}
		if i > 0 && !strings.ContainsRune("; \t\n", rune(field[i-1])) {
			continue
		}
		if rest := strings.TrimLeft(field[i+2:], " \t\r\n"); rest == "" || rest[0] == ';' {
			return i
		}
	}
	return -1
}

// signedNames lists the header names for h= from the signer's lists.
func (sg *Signing) signedNames() []string {
	want, over := sg.s.Headers, sg.s.Oversign
	if want == nil {
		want = DefaultSignedHeaders
	}
	if over == nil {
		over = DefaultOversigned
	}
	return SignedNames(sg.fields, want, over)
}

// SignedNames lists the header names for an h= tag: each name in want as
// often as it occurs in fields, plus once more for those in oversign.
func SignedNames(fields []Field, want, oversign []string) []string {
	var names []string
	for _, w := range want {
		n := 0
		for _, f := range fields {
			if strings.EqualFold(f.Name, w) {
				n++
			}
		}
		for _, o := range oversign {
			if strings.EqualFold(o, w) {
				n++
			}
		}
		for range n {
			names = append(names, strings.ToLower(w))
		}
	}
	return names
}

// FoldTags makes the field "name: tag; tag; ..." with lines folded
// before 78 columns, without a final CRLF.
func FoldTags(name string, tags []string) string {
	var b strings.Builder
	b.WriteString(name + ": ")
	col := len(name) + 2
	for i, t := range tags {
		sep := "; "
		if i == len(tags)-1 {
			sep = ""
		}
		piece := t + strings.TrimSuffix(sep, " ")
		if i > 0 {
			if col+1+len(piece) > 78 {
				b.WriteString("\r\n\t")
				col = 8
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		// Long h= lists fold at their colons.
		for len(piece) > 78-col && strings.Contains(piece[:78-col], ":") {
			cut := strings.LastIndexByte(piece[:78-col], ':') + 1
			b.WriteString(piece[:cut])
			b.WriteString("\r\n\t")
			piece = piece[cut:]
			col = 8
		}
		b.WriteString(piece)
		col += len(piece)
	}
	return b.String()
}

// foldBase64 splits a long base64 value into folded lines.
func foldBase64(s string, col int) string {
	var b strings.Builder
	for len(s) > 0 {
		n := max(78-col, 1)
		if n > len(s) {
			n = len(s)
		}
		b.WriteString(s[:n])
		s = s[n:]
		if len(s) > 0 {
			b.WriteString("\r\n\t")
			col = 8
		}
	}
	return b.String()
}

func lastLine(s string) string {
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
