// The detail log for debug peers (log.debug_peers, package debuglog):
// what each stage read and decided, for a message whose context carries a
// detail logger. Nothing here runs for other messages: each hook is
// behind m.dbg != nil.

package verdict

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strings"

	"mailwall/internal/analysis"
	"mailwall/internal/debuglog"
	"mailwall/internal/dkim"
	"mailwall/internal/phish"
)

// maxDebugItems bounds the lists a detail line quotes (links, hits,
// features, fields): a hostile message has thousands.
const maxDebugItems = 20

// debugStart logs the envelope and the connection stage's outcomes.
func (m *Message) debugStart() {
	r, env := &m.res, m.env
	clip := func(s string) string { return debuglog.Clip(s, debuglog.MaxValue) }
	m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: envelope",
		slog.String("queue_id", env.QueueID), slog.String("helo", clip(env.Helo)), slog.String("client_name", clip(env.ClientName)),
		slog.String("mail_from", clip(env.MailFrom)), slog.Any("rcpts", clipList(env.Rcpts)), slog.Bool("internal", m.internal),
		slog.Bool("not_checked", m.notChecked))
	if m.internal {
		return
	}
	m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: connection",
		slog.String("helo_result", r.Helo), slog.String("iprev", r.IPRev.Result), slog.String("iprev_name", r.IPRev.Name),
		slog.Any("ptr_names", clipList(r.IPRev.Names)), slog.String("iprev_reason", clip(r.IPRev.Reason)), slog.String("s25r", r.S25R))
	o := r.SPF
	m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: spf",
		slog.String("identity", string(o.Identity)), slog.String("domain", o.Domain), slog.String("sender", clip(o.Sender)),
		slog.String("result", string(o.Result)), slog.String("mechanism", clip(o.Mechanism)), slog.String("problem", clip(o.Problem)),
		slog.Int("lookups", o.Lookups), slog.Int("void_lookups", o.VoidLookups))
}

// debugAuth logs DKIM (the hashes computed beside the signed ones), ARC
// and DMARC with its inputs.
func (m *Message) debugAuth(in []string) {
	r := &m.res
	b64 := base64.StdEncoding.EncodeToString
	for _, d := range r.DKIM {
		attrs := []slog.Attr{slog.String("domain", d.Domain), slog.String("selector", d.Selector), slog.String("algorithm", d.Algorithm),
			slog.String("result", string(d.Status)), slog.String("reason", debuglog.Clip(d.Reason, debuglog.MaxValue)), slog.Int("key_bits", d.KeyBits),
			slog.Int64("body_length", d.BodyLength), slog.Int64("body_bytes", d.BodyBytes)}
		if s := d.Signature; s != nil {
			// RFC 6376 §3.7: bh= is the hash of the canonicalized body;
			// the header hash is what b= signs (recoverable only with
			// the key, so it is shown as computed).
			attrs = append(attrs, slog.String("canonicalization", s.HeaderCanon+"/"+s.BodyCanon),
				slog.String("signed_headers", debuglog.Clip(strings.Join(s.Headers, ":"), debuglog.MaxValue)),
				slog.String("bh_signed", b64(s.BodyHash)))
		}
		if d.BodyHash != nil {
			attrs = append(attrs, slog.String("bh_computed", b64(d.BodyHash)))
		}
		if d.HeaderHash != nil {
			attrs = append(attrs, slog.String("header_hash_computed", b64(d.HeaderHash)))
		}
		if signed := m.signedHeaderHash(d); signed != "" {
			attrs = append(attrs, slog.String("header_hash_signed", signed))
		}
		m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: dkim", attrs...)
	}
	if m.arc != nil {
		m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: arc", slog.String("result", string(r.ARC.Result)),
			slog.String("reason", debuglog.Clip(r.ARC.Reason, debuglog.MaxValue)), slog.Int("instances", r.ARC.Instances), slog.Any("sealers", clipList(r.ARC.Sealers)))
	}
	d := r.DMARC
	attrs := []slog.Attr{slog.Any("from_domains", clipList(in)), slog.String("header_from", d.HeaderFrom), slog.String("policy_domain", d.PolicyDomain),
		slog.String("org_domain", d.OrgDomain), slog.String("result", d.Result), slog.String("reason", debuglog.Clip(d.Reason, debuglog.MaxValue)),
		slog.String("policy", string(d.Policy)), slog.String("disposition", string(d.Disposition)),
		slog.Bool("spf_aligned", d.SPFAligned), slog.Bool("dkim_aligned", d.DKIMAligned), slog.String("aligned_dkim_domain", d.AlignedDKIM),
		slog.String("spf_domain", d.Row.SPFDomain), slog.String("spf_scope", d.Row.SPFScope)}
	if r.Override != "" {
		attrs = append(attrs, slog.String("override", r.Override))
	}
	m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: dmarc", attrs...)
}

// debugAnalyses logs each analyzer's inputs and findings: the phishing
// rules' From as parsed and its display name normalized, the links seen;
// the classifier's strongest features; every hit.
func (m *Message) debugAnalyses() {
	for _, a := range m.res.Analyses {
		attrs := []slog.Attr{slog.String("analyzer", a.Name), slog.Any("hits", debugHits(a.Hits)), slog.Any("problems", clipList(a.Problems))}
		switch rep := a.Report.(type) {
		case *phish.Report:
			attrs = append(attrs, debugPhish(rep)...)
		case nil:
		case fmt.Stringer:
			attrs = append(attrs, slog.String("report", debuglog.Clip(rep.String(), 2*debuglog.MaxValue)))
		default:
			if b, err := json.Marshal(rep); err == nil {
				attrs = append(attrs, slog.String("report", debuglog.Clip(string(b), 2*debuglog.MaxValue)))
			}
		}
		m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: analysis", attrs...)
	}
}

func debugPhish(rep *phish.Report) []slog.Attr {
	clip := func(s string) string { return debuglog.Clip(s, debuglog.MaxValue) }
	var out []slog.Attr
	if f := rep.From; f != nil {
		out = append(out, slog.String("from_name", clip(f.Name)), slog.String("from_name_normalized", clip(phish.Normalize(f.Name))),
			slog.String("from_address", clip(f.Address())), slog.Any("from_malformed", clipList(f.Malformed)), slog.Any("from_others", clipList(f.Others)))
	} else {
		out = append(out, slog.String("from", "none"))
	}
	links := make([]string, 0, min(len(rep.Content.Links), maxDebugItems))
	for i, l := range rep.Content.Links {
		if i == maxDebugItems {
			links = append(links, fmt.Sprintf("...(%d more links)", len(rep.Content.Links)-maxDebugItems))
			break
		}
		s := l.Href
		if l.Text != "" {
			s += " text=" + l.Text
		}
		links = append(links, clip(s))
	}
	out = append(out, slog.String("subject", clip(rep.Content.Subject)), slog.Any("links", links), slog.Int("hidden_octets", rep.Content.Hidden),
		slog.Any("brands", clipList(rep.Brands)))
	return out
}

func debugHits(hits []analysis.Hit) []string {
	out := make([]string, 0, min(len(hits), maxDebugItems))
	for i, h := range hits {
		if i == maxDebugItems {
			out = append(out, fmt.Sprintf("...(%d more hits)", len(hits)-maxDebugItems))
			break
		}
		out = append(out, debuglog.Clip(fmt.Sprintf("%s=%d %s", h.Rule, h.Weight, h.Detail), debuglog.MaxValue))
	}
	return out
}

// debugResult logs the decision.
func (m *Message) debugResult() {
	r := &m.res
	m.dbg.LogAttrs(m.ctx, slog.LevelInfo, "debug: verdict", slog.String("action", string(r.Action)), slog.String("stage", r.Stage),
		slog.String("verdict", r.Verdict), slog.Int("score", r.Score()), slog.Any("reasons", clipList(r.Reasons)), slog.Bool("signed", r.Signed))
}

// clipList bounds a list of strings for a detail line.
func clipList(in []string) []string {
	out := make([]string, 0, min(len(in), maxDebugItems))
	for i, s := range in {
		if i == maxDebugItems {
			out = append(out, fmt.Sprintf("...(%d more)", len(in)-maxDebugItems))
			break
		}
		out = append(out, debuglog.Clip(s, debuglog.MaxValue))
	}
	return out
}

// signedHeaderHash recovers the header hash an RSA signature signed: b=
// raised to the key's exponent is the PKCS#1 v1.5 block (RFC 8017
// §9.2) that ends with the hash. Beside the hash computed here it tells a
// changed header (they differ) from a wrong key (no valid block). Only
// for keys the verifier took (KeyBits set: at most 4096 bits, e 65537);
// ed25519 signs the hash itself, which cannot be recovered ("").
func (m *Message) signedHeaderHash(d dkim.Result) string {
	sig := d.Signature
	if sig == nil || d.KeyBits == 0 || !strings.HasPrefix(d.Algorithm, "rsa-") {
		return ""
	}
	key, _, _ := dkim.LookupKey(m.ctx, m.c.DKIM.Resolver, d.Selector, d.Domain) // cached: the check just read it
	if key == nil {
		return ""
	}
	pub, ok := key.Public.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() > 4096 {
		return ""
	}
	c := new(big.Int).SetBytes(sig.Signature)
	if c.Cmp(pub.N) >= 0 {
		return "(b= is not below the modulus)"
	}
	em := new(big.Int).Exp(c, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, (pub.N.BitLen()+7)/8))
	n := sha256.Size
	if d.Algorithm == dkim.RSASHA1 {
		n = sha1.Size
	}
	if len(em) < n+11 || em[0] != 0 || em[1] != 1 {
		return "(b= is not a signature by this key)"
	}
	return base64.StdEncoding.EncodeToString(em[len(em)-n:])
}
