package arc

import (
	"bufio"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/authres"
	"mailwall/internal/dkim"
)

// DefaultHeaders are the fields an ARC-Message-Signature signs when
// present: DKIM's list plus the DKIM-Signature fields, so a receiver can
// tell which signatures the forwarder saw. ARC fields and
// Authentication-Results are left out (RFC 8617 §4.1.2).
var DefaultHeaders = append(append([]string(nil), dkim.DefaultSignedHeaders...), "DKIM-Signature")

// ErrNoSeal is returned when a message must not get another ARC set: its
// newest seal already says cv=fail (RFC 8617 §5.1 step 1), or the chain
// is at MaxInstances.
var ErrNoSeal = errors.New("arc: the chain must not be sealed again")

// Sealer adds ARC sets as a forwarder does (RFC 8617 §5.1). Domain,
// Selector, Key and AuthServID are required.
type Sealer struct {
	Domain   string
	Selector string
	Key      crypto.Signer // *rsa.PrivateKey or ed25519.PrivateKey
	// AuthServID names this host in the ARC-Authentication-Results.
	AuthServID string
	// Headers the AMS signs when present; nil: DefaultHeaders.
	Headers []string
	// Now is the clock for t=; nil means time.Now.
	Now func() time.Time
}

// Set is a new ARC set, each field complete and ending in CRLF.
type Set struct {
	Instance int
	CV       Result
	AAR      string
	AMS      string
	Seal     string
}

// Header returns the set's fields in the order they are prepended to the
// message: seal first, then the message signature and the results.
func (s Set) Header() string { return s.Seal + s.AMS + s.AAR }

// Sealing is one message being sealed: header up front, body written in
// pieces, Finish makes the set.
type Sealing struct {
	s      *Sealer
	fields []dkim.Field
	alg    string
	body   *dkim.BodyHash
}

// Start begins sealing a message with these header fields.
func (s *Sealer) Start(fields []dkim.Field) (*Sealing, error) {
	if s.Domain == "" || s.Selector == "" || s.Key == nil || s.AuthServID == "" {
		return nil, errors.New("arc: sealer needs a domain, a selector, a key and an authserv-id")
	}
	alg, err := dkim.KeyAlgorithm(s.Key)
	if err != nil {
		return nil, err
	}
	return &Sealing{s: s, fields: fields, alg: alg, body: dkim.NewBodyHash(alg, dkim.Relaxed, -1)}, nil
}

// SetFields replaces the header fields to sign, for a header changed
// after Start (a tagged Subject, say).
func (sg *Sealing) SetFields(fields []dkim.Field) { sg.fields = fields }

// Write feeds body octets.
func (sg *Sealing) Write(p []byte) (int, error) { return sg.body.Write(p) }

// Finish makes the next ARC set. cv is the validation result of the
// chain the message arrived with (a Verifier's Outcome.Result); results
// is this host's authentication results without the authserv-id, as in
// an Authentication-Results field after "id;" (see ResultsFor).
func (sg *Sealing) Finish(cv Result, results string) (Set, error) {
	s := sg.s
	sets, structErr := collect(sg.fields)
	newest := highestInstance(sg.fields)
	if structErr == nil && newest > 0 && sets[newest].as.cv == Fail {
		return Set{}, fmt.Errorf("%w: seal %d says cv=fail", ErrNoSeal, newest)
	}
	if newest >= MaxInstances {
		return Set{}, fmt.Errorf("%w: %d instances already", ErrNoSeal, newest)
	}
	switch {
	case newest == 0:
		cv = None
	case structErr != nil || cv != Pass:
		// A chain we could not even read, or one the caller did not see
		// pass (not validated, say), is not one we can vouch for.
		cv = Fail
	}
	i := newest + 1
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	t := strconv.FormatInt(now.Unix(), 10)
	inst := strconv.Itoa(i)

	results = collapse(results) // refolded below, at semicolons
	if results == "" {
		results = "none" // RFC 8601 §2.2: no results
	}
	aar := foldResults(AARName+": i="+inst+"; "+s.AuthServID+"; "+results) + "\r\n"
	aarField := dkim.Field{Name: AARName, Raw: aar}

	want := s.Headers
	if want == nil {
		want = DefaultHeaders
	}
	names := dkim.SignedNames(sg.fields, want, nil)
	if !slices.Contains(names, "from") {
		return Set{}, errors.New("arc: message has no From field to sign")
	}
	// Tags in alphabetical order, as other sealers write them.
	amsField := dkim.FoldTags(AMSName, []string{"a=" + sg.alg, "b=", "bh=" + base64.StdEncoding.EncodeToString(sg.body.Sum()),
		"c=relaxed/relaxed", "d=" + s.Domain, "h=" + strings.Join(names, ":"), "i=" + inst, "s=" + s.Selector, "t=" + t})
	hashed := dkim.HeaderHash(sg.fields, dkim.Field{Name: AMSName, Raw: amsField + "\r\n"}, sg.alg, dkim.Relaxed, names)
	sig, err := dkim.SignHash(s.Key, hashed)
	if err != nil {
		return Set{}, err
	}
	ams := dkim.FillSignature(amsField, sig)

	asField := dkim.FoldTags(SealName, []string{"a=" + sg.alg, "b=", "cv=" + string(cv), "d=" + s.Domain, "i=" + inst, "s=" + s.Selector, "t=" + t})
	// §5.1.1: the seal covers every set, oldest first; §5.1.2: a sealer
	// that found the chain failed covers only its own set, as if the chain
	// started here.
	var chain []setFields
	if cv != Fail {
		for j := 1; j < i; j++ {
			chain = append(chain, setFields{aar: *sets[j].aar, ams: sets[j].ams.field, as: sets[j].as.field})
		}
	}
	chain = append(chain, setFields{aar: aarField, ams: dkim.Field{Name: AMSName, Raw: ams}, as: dkim.Field{Name: SealName, Raw: asField + "\r\n"}})
	sig, err = dkim.SignHash(s.Key, sealHash(sg.alg, chain))
	if err != nil {
		return Set{}, err
	}
	return Set{Instance: i, CV: cv, AAR: aar, AMS: ams, Seal: dkim.FillSignature(asField, sig)}, nil
}

// highestInstance is the largest i= of any readable ARC field, so a
// broken chain still gets the next number.
func highestInstance(fields []dkim.Field) int {
	n := 0
	for _, f := range fields {
		var i int
		switch {
		case strings.EqualFold(f.Name, AARName):
			i, _, _ = aarInstance(f.Value())
		case strings.EqualFold(f.Name, AMSName), strings.EqualFold(f.Name, SealName):
			if tags, err := dkim.ParseTagList(f.Value()); err == nil {
				i, _ = instance(tags["i"])
			}
		}
		n = max(n, i)
	}
	return n
}

// ResultsFor joins the results of every Authentication-Results field
// written by authServID, in order, as one result list for an AAR: what
// this host found when the message arrived. Other hosts' fields are
// ignored.
func ResultsFor(fields []dkim.Field, authServID string) string {
	var parts []string
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Authentication-Results") || !authres.IsOurs(f.Value(), authServID) {
			continue
		}
		v := collapse(f.Value())
		if k := resultsStart(v); k >= 0 {
			if r := strings.TrimSpace(v[k:]); r != "" && !strings.EqualFold(r, "none") {
				parts = append(parts, r)
			}
		}
	}
	return strings.Join(parts, "; ")
}

// resultsStart returns the index just after the ";" that ends the
// authserv-id (and version), skipping comments; -1 if there is none.
func resultsStart(v string) int {
	depth := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth = max(depth-1, 0)
		case ';':
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// collapse unfolds a field value and turns each run of white space into
// one space, as relaxed canonicalization will.
func collapse(v string) string { return strings.Join(strings.Fields(v), " ") }

// foldResults folds an AAR after its semicolons, before 78 columns.
func foldResults(field string) string {
	var b strings.Builder
	col := 0
	for part := range strings.SplitAfterSeq(field, "; ") {
		if col > 0 && col+len(part) > 78 {
			b.WriteString("\r\n\t")
			part = strings.TrimLeft(part, " ")
			col = 8
		}
		b.WriteString(part)
		col += len(part)
	}
	// A fold leaves "; " at the end of the line: the space is trailing
	// white space, which relaxed canonicalization would drop anyway.
	return strings.ReplaceAll(b.String(), " \r\n", "\r\n")
}

// Seal reads a whole message and makes its next ARC set; see Finish.
func (s *Sealer) Seal(msg string, cv Result, results string) (Set, error) {
	br := bufio.NewReader(strings.NewReader(msg))
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		return Set{}, fmt.Errorf("arc: %w", err)
	}
	sg, err := s.Start(fields)
	if err != nil {
		return Set{}, err
	}
	if _, err := io.Copy(sg, br); err != nil {
		return Set{}, err
	}
	return sg.Finish(cv, results)
}
