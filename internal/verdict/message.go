// A message streaming in: header fields, then body octets, hashed as
// they come, a bounded copy kept for the analyzers.

package verdict

import (
	"context"
	"io"
	"log/slog"

	"mailwall/internal/analysis"
	"mailwall/internal/arc"
	"mailwall/internal/dkim"
)

// Message is one message going through the pipeline: the envelope checks
// run at Start, header fields and body stream in, Finish decides.
type Message struct {
	c        *Checker
	ctx      context.Context
	env      Envelope
	res      Result
	fields   []dkim.Field
	verify   *dkim.Verification
	arc      *arc.Validation
	sealing  *arc.Sealing
	body     []byte  // kept for content checks, up to maxContent
	pooled   *[]byte // body's buffer when it came from c.bodies
	signing  *dkim.Signing
	internal bool
	am       analysis.Message // what the analyzers read, filled at Finish
	dbg      *slog.Logger     // a debug peer's detail log (debuglog); nil: none
	// fromParsed is the From fields read once (from); nil until asked.
	fromParsed *from

	// notChecked: internal's path (nothing checked) without signing.
	notChecked bool
}

// Header adds one header field as received.
func (m *Message) Header(f dkim.Field) {
	if m.fields == nil {
		m.fields = make([]dkim.Field, 0, typicalFields) // not grown 1, 2, 4, 8, 16
	}
	m.fields = append(m.fields, f)
}

// typicalFields is room for the header fields of most messages (a
// dozen or two) from the first.
const typicalFields = 24

// EndOfHeaders starts hashing: verification for received mail, signing for
// our own.
func (m *Message) EndOfHeaders() {
	if m.internal {
		if s := m.signer(); s != nil && !m.notChecked {
			m.signing, _ = s.Start(m.fields)
		}
		return
	}
	m.verify = m.c.DKIM.Start(m.fields)
	if m.c.ARC != nil {
		m.arc = m.c.ARC.Start(m.fields)
	}
	if m.c.Sealer != nil {
		m.sealing, _ = m.c.Sealer.Start(m.fields)
	}
}

// signer picks the key for the From domain.
func (m *Message) signer() *dkim.Signer {
	doms := m.from().domains
	if len(doms) != 1 {
		return nil
	}
	return m.c.Signers[doms[0]]
}

// Result is the verdict Finish returned, as the Message holds it: a
// caller that keeps the verdict past Finish (the milter's work after the
// reply) shares it rather than copying its kilobyte to the heap.
func (m *Message) Result() *Result { return &m.res }

// Write feeds body octets.
func (m *Message) Write(p []byte) (int, error) {
	switch {
	case m.signing != nil:
		m.signing.Write(p)
	case m.verify != nil:
		m.verify.Write(p)
		if m.arc != nil {
			m.arc.Write(p)
		}
		if m.sealing != nil {
			m.sealing.Write(p)
		}
		if len(m.c.Analyzers) > 0 && len(m.body) < maxContent {
			m.keepBody(p[:min(len(p), maxContent-len(m.body))])
		}
	}
	return len(p), nil
}

// keepBody appends to the copy the content checks read. A body that
// outgrows smallBody moves to a pooled buffer of maxContent: small
// messages, most mail, never hold one.
func (m *Message) keepBody(p []byte) {
	const smallBody = 64 << 10
	if len(m.body)+len(p) > smallBody && cap(m.body) < maxContent {
		buf, _ := m.c.bodies.Get().(*[]byte)
		if buf == nil {
			b := make([]byte, 0, maxContent)
			buf = &b
		}
		m.pooled = buf
		m.body = append((*buf)[:0], m.body...)
	}
	m.body = append(m.body, p...)
}

// releaseBody gives a pooled body buffer back; the analyzers have
// copied what they keep (phish.Extract).
func (m *Message) releaseBody() {
	if m.pooled != nil {
		m.c.bodies.Put(m.pooled)
	}
	m.body, m.pooled = nil, nil
}

// maxContent is how much of a body the content checks read: phishing
// text and links come first; what follows is attachments. At 2 MB the
// copies and decoding of a 1 MB message cost more than its DKIM hash.
const maxContent = 512 << 10

// CheckMessage runs the whole pipeline on a message read from r, as the
// milter would during SMTP.
func (c *Checker) CheckMessage(ctx context.Context, env Envelope, r io.Reader) (Result, []dkim.Field, error) {
	m := c.Start(ctx, env)
	br := newReader(r)
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		return Result{}, nil, err
	}
	for _, f := range fields {
		m.Header(f)
	}
	m.EndOfHeaders()
	if _, err := io.Copy(m, br); err != nil {
		return Result{}, nil, err
	}
	return m.Finish(), fields, nil
}
