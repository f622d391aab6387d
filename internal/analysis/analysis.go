// Package analysis is what the receive pipeline's analyzers share: the
// message as they read it (header, body, the text and links decoded
// once, and what the earlier stages concluded: authentication outcomes,
// aligned identities, the hits of the analyzers before), and the kind of
// result each produces, named hits with a weight and an explanation a
// person can read. The phishing rules, the learning classifier and, next,
// reputation and DNS blocklists are analyzers; the pipeline runs those
// the config lists, in its order, and adds their weights into one score.
package analysis

import (
	"context"
	"net/netip"
	"strconv"

	"mailwall/internal/dkim"
)

// Hit is something an analyzer found: a named rule, its points towards
// the message's score, and why it fired. Stored verdicts and
// check-message --json carry hits in this form.
type Hit struct {
	Rule   string `json:"rule"`
	Weight int    `json:"weight"`
	Detail string `json:"detail"`
}

// Analyzer examines a message after authentication. Implementations must
// be safe for concurrent use: one Analyzer serves every message, and it
// must treat the Message as read-only.
type Analyzer interface {
	// Name is the analyzer's config key ("phish", "classifier") and the
	// key of its report in check-message --json.
	Name() string
	Analyze(ctx context.Context, m *Message) Result
}

// Result is one analyzer's finding on a message.
type Result struct {
	Hits []Hit
	// Problems are what could not be examined (a store that did not
	// answer, a part that did not decode); the hits are what could.
	Problems []string
	// Report is the analyzer's own account for check-message --json and
	// the logs (a *phish.Report, a classifier's probability); nil for
	// none. It is marshalled under the analyzer's Name.
	Report any
}

// Message is a message as analyzers see it, with what the pipeline's
// earlier stages found. The pipeline fills it; analyzers only read.
type Message struct {
	Fields []dkim.Field
	Body   []byte // as received, possibly cut at the pipeline's limit
	Rcpts  []string

	ClientIP netip.Addr
	PTRName  string // verified PTR name (iprev pass), "" if none
	IPRev    string // iprev result
	S25R     bool   // the client's name looks dynamic
	SPF      string // SPF result for MAIL FROM (or HELO)
	// SPFDomain is the domain SPF checked: MAIL FROM's, or HELO's for a
	// bounce.
	SPFDomain string
	DKIMPass  []string // d= of the signatures that verified
	DKIMFail  bool     // a signature failed
	DMARC     string   // DMARC result
	// HeaderFrom is the RFC5322.From domain DMARC evaluated; with DMARC
	// pass it is an authenticated (aligned) identity.
	HeaderFrom string
	// DMARCPolicy is p= (or sp=/np=) of the record that applied; "" when
	// the domain has no DMARC record.
	DMARCPolicy string
	// DMARCOverridden: a trusted ARC sealer vouched for a DMARC fail.
	DMARCOverridden bool
	ARC             string

	// Hits are those of the analyzers that ran before, in order: a later
	// analyzer may weigh them (the classifier learns the rules' hits as
	// features).
	Hits []Hit

	// Decode turns Fields and Body into Content; the pipeline sets it,
	// so that analyzers that read the text share one decoding.
	Decode  func(fields []dkim.Field, body []byte) Content
	content Content
	decoded bool
}

// Content returns the decoded text and links, decoding on the first
// call: MIME is decoded once per message, and not at all when no
// analyzer reads the text. Nil when the Message has no Decode.
func (m *Message) Content() *Content {
	if !m.decoded {
		if m.Decode == nil {
			return nil
		}
		m.content, m.decoded = m.Decode(m.Fields, m.Body), true
	}
	return &m.content
}

// Link is a hyperlink: where it goes and what it shows.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"` // the anchor text of an HTML link
}

// Content is the readable text of a message and its links, as
// internal/phish's Extract decodes them.
type Content struct {
	Subject string `json:"subject,omitempty"`
	// Text is the start of the readable text (64 KB at most). The links
	// are those of the start of each part: written out in its first
	// 50,000 octets of text, or in the first 500,000 of an HTML part's
	// markup (SpamAssassin's body_part_scan_size and
	// rawbody_part_scan_size); 500 at most.
	Text  string `json:"-"`
	Links []Link `json:"links,omitempty"`
	// Hidden counts the octets of HTML text a client does not show
	// (display:none, font-size:0, ...): left out of Text and of link
	// text, but filler hidden in a message is a sign of its own.
	Hidden int `json:"hidden,omitempty"`
	// Problems are parts that could not be decoded; the rest is read.
	// A Report carries them in its own Problems.
	Problems []string `json:"-"`
}

// Score is the sum of the hits' weights.
func Score(hits []Hit) int {
	n := 0
	for _, h := range hits {
		n += h.Weight
	}
	return n
}

// Rules lists hits as "rule=weight", in order, as X-Mailwall-Score and
// the store show them.
func Rules(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Rule + "=" + strconv.Itoa(h.Weight)
	}
	return out
}
