package dnsbl

import (
	"context"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
	"mailwall/internal/phish"
)

// AnalyzerName is the analyzer's key in checks.analyzers.
const AnalyzerName = "dnsbl"

// DefaultMaxLinks bounds the distinct link hosts of one message asked
// about; the Checker's MaxNames bounds all names together.
const DefaultMaxLinks = 20

// Analyzer is the receive pipeline's "dnsbl" analyzer: it asks the IP
// lists about the client's address and the domain lists (URIBL, DBL,
// SURBL) about the From and Reply-To domains, the d= of the DKIM
// signatures that verified, the envelope domain and the hosts of the
// body's links, all in one Check within its budget. Each site that lists
// something is one hit, counted once a message however many names it
// lists (as postscreen applies a site's weight at most once, and as
// SpamAssassin's URIBL rules fire once), weighing the site's weight times
// Points. A lookup that fails is a problem, never a hit.
//
// Without sites it asks nothing and decodes nothing.
type Analyzer struct {
	C *Checker
	// Points is what one unit of a site's weight adds to the message's
	// score (dnsbl.score_weight): postscreen's weights are small
	// integers (1 to 3 against a threshold of 3), the score's thresholds
	// are 30, 60 and 100.
	Points int
	// Names shows zones by other names (dnsbl.reply_names): a zone with
	// an access key in it must not end up in a header.
	Names map[string]string
	// MaxLinks bounds the distinct link hosts asked about; default
	// DefaultMaxLinks.
	MaxLinks int
}

// Name is "dnsbl".
func (a *Analyzer) Name() string { return AnalyzerName }

// Report is the analyzer's account of a message, under "dnsbl" in
// check-message --json: the Check's result (weights unscaled) and each
// zone's outcome.
type Report struct {
	Result
	// Zones is each configured zone's outcome: listed, not_listed, error
	// (a timeout, SERVFAIL, the budget spent) or refused (a refusal
	// code, REFUSED, an answer outside 127/8); listed_cached and
	// not_listed_cached when the resolver's cache answered every
	// question to the zone (no lookup was made).
	Zones map[string]string `json:"zones"`
}

// ZoneOutcomes gives Zones, for the lookup counters in /metrics.
func (r *Report) ZoneOutcomes() map[string]string { return r.Zones }

// source is where a name asked about came from, for the explanation.
type source struct {
	label string // "From domain", "link host", ...
	host  string
}

// Analyze asks the lists about the message.
func (a *Analyzer) Analyze(ctx context.Context, m *analysis.Message) analysis.Result {
	c := a.C
	if c == nil || len(c.ipZones) == 0 && len(c.domZones) == 0 {
		return analysis.Result{}
	}
	var ips []netip.Addr
	if len(c.ipZones) > 0 && m.ClientIP.IsValid() && !m.ClientIP.IsUnspecified() {
		ips = append(ips, m.ClientIP.Unmap())
	}
	var srcs []source
	if len(c.domZones) > 0 {
		srcs = a.sources(m)
	}
	hosts := make([]string, len(srcs))
	for i, s := range srcs {
		hosts[i] = s.host
	}
	res := c.Check(ctx, ips, hosts)
	asked := [2]bool{len(ips) > 0, false} // IP lists, domain lists
	for _, h := range hosts {
		isIP := mayBeIP(h)
		if isIP {
			_, isIP = ipLiteral(h)
		}
		asked[0] = asked[0] || isIP
		asked[1] = asked[1] || !isIP
	}
	return a.result(res, asked, m.ClientIP.Unmap(), srcs)
}

// sources lists the names a message gives the domain lists, those an
// attacker cannot vary freely first: the header's and envelope's
// domains, then the links' hosts (at most MaxLinks distinct ones).
func (a *Analyzer) sources(m *analysis.Message) []source {
	out := make([]source, 0, 8)
	from := m.HeaderFrom
	if from == "" {
		if ds := fieldDomains(m.Fields, "From"); len(ds) > 0 {
			from = ds[0]
		}
	}
	if from != "" {
		out = append(out, source{"From domain", from})
	}
	for _, d := range fieldDomains(m.Fields, "Reply-To") {
		out = append(out, source{"Reply-To domain", d})
	}
	for _, d := range m.DKIMPass {
		out = append(out, source{"DKIM d= domain", d})
	}
	if m.SPFDomain != "" {
		out = append(out, source{"envelope domain", m.SPFDomain})
	}
	max := a.MaxLinks
	if max <= 0 {
		max = DefaultMaxLinks
	}
	content := m.Content()
	if content == nil {
		return out
	}
	// The hosts seen are those out holds from first, looked through in
	// a loop (MaxLinks is 20 by default), not a map each message; past
	// 32 of them, a map.
	first, seen := len(out), 0
	var many map[string]bool
	for _, l := range content.Links {
		if seen >= max {
			break
		}
		h := linkHost(l.Href)
		switch {
		case h == "":
			continue
		case many != nil:
			if many[h] {
				continue
			}
			many[h] = true
		case slices.ContainsFunc(out[first:], func(s source) bool { return s.host == h }):
			continue
		}
		seen++
		out = append(out, source{"link host", h})
		if seen == 32 && many == nil {
			many = make(map[string]bool, 64)
			for _, s := range out[first:] {
				many[s.host] = true
			}
		}
	}
	return out
}

// linkHost is the host a link goes to ("" for none): http and https
// links and bare www. names, as internal/phish reads them, and the
// domain of a mailto: address.
func linkHost(href string) string {
	raw := strings.TrimSpace(href)
	if h, ok := phish.PlainHTTPHost(raw); ok {
		return h
	}
	if len(raw) >= 4 && strings.EqualFold(raw[:4], "www.") {
		raw = "http://" + raw
	}
	return parsedLinkHost(raw)
}

// parsedLinkHost is linkHost's reading of raw through url.Parse.
func parsedLinkHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return strings.ToLower(u.Hostname())
	case "mailto":
		addr, _, _ := strings.Cut(u.Opaque, "?")
		if i := strings.LastIndexByte(addr, '@'); i >= 0 {
			return strings.ToLower(addr[i+1:])
		}
	}
	return ""
}

// maxAddresses bounds the addresses read from one header field.
const maxAddresses = 5

// fieldDomains returns the domains of the addresses in the first field
// called name: as net/mail parses them, or, when it refuses the field
// (kits write broken ones on purpose), the text after each '@'.
func fieldDomains(fields []dkim.Field, name string) []string {
	var value string
	found := false
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			value, found = f.Value(), true
			break
		}
	}
	if !found {
		return nil
	}
	var out []string
	if list, err := mail.ParseAddressList(value); err == nil {
		for _, a := range list {
			if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && len(out) < maxAddresses {
				out = append(out, strings.ToLower(a.Address[i+1:]))
			}
		}
		return out
	}
	for rest := value; len(out) < maxAddresses; {
		i := strings.IndexByte(rest, '@')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		end := strings.IndexAny(rest, "> \t\r\n,;\"'()<")
		if end < 0 {
			end = len(rest)
		}
		if d := strings.ToLower(rest[:end]); d != "" {
			out = append(out, d)
		}
		rest = rest[end:]
	}
	return out
}

// labels maps each name the Checker asks (normalized; a host's
// registered domain too) to where it came from, in order, without
// repeats.
func labels(srcs []source) map[string][]string {
	out := map[string][]string{}
	add := func(name, label string) {
		for _, l := range out[name] {
			if l == label {
				return
			}
		}
		out[name] = append(out[name], label)
	}
	for _, s := range srcs {
		if ip, ok := ipLiteral(s.host); ok {
			add(ip.String(), s.label)
			continue
		}
		d, err := NormalizeDomain(s.host)
		if err != nil {
			continue
		}
		add(d, s.label)
		if reg, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil && reg != d {
			label := s.label
			if label == "link host" {
				label = "link domain"
			}
			add(reg, label)
		}
	}
	return out
}

// siteKey is one site of one list kind: its hits count once a message.
type siteKey struct {
	ip     bool
	zone   string
	filter string
	weight int
}

// result turns a Check's result into hits, problems and the report.
func (a *Analyzer) result(res *Result, asked [2]bool, client netip.Addr, srcs []source) analysis.Result {
	out := analysis.Result{Report: &Report{Result: *res, Zones: a.outcomes(res, asked)}}
	var from map[string][]string
	if len(res.Hits) > 0 {
		from = labels(srcs) // only listings are explained
	}
	type group struct {
		key  siteKey
		hits []Hit
	}
	var groups []group
	idx := map[siteKey]int{}
	for _, h := range res.Hits {
		_, isIP := ipLiteral(h.Subject) // the Checker writes addresses as netip does
		k := siteKey{isIP, h.Zone, h.Filter, h.Weight}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, group{key: k})
		}
		groups[i].hits = append(groups[i].hits, h)
	}
	for _, g := range groups {
		out.Hits = append(out.Hits, a.hit(g.hits, client, from))
	}
	for _, e := range res.Errors {
		out.Problems = append(out.Problems, fmt.Sprintf("dnsbl: %s in %s: %s: %v", e.Subject, a.zoneName(e.Zone), e.Kind, e.Err))
	}
	if res.Dropped > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("dnsbl: %d names over the limit not asked", res.Dropped))
	}
	return out
}

// maxNamed bounds the listed names one hit's explanation names.
const maxNamed = 3

// hit is one site's hit: its first listing explained, the others named.
func (a *Analyzer) hit(hs []Hit, client netip.Addr, from map[string][]string) analysis.Hit {
	first := hs[0]
	zone := a.zoneName(first.Zone)
	rule := "dnsbl:" + zone
	if first.Weight < 0 {
		rule = "dnswl:" + zone
	}
	var b strings.Builder
	b.WriteString(first.explain(a.describe(first.Subject, client, from), zone))
	if len(hs) > 1 {
		fmt.Fprintf(&b, "; also listed:")
		for i, h := range hs[1:] {
			if i == maxNamed {
				fmt.Fprintf(&b, " and %d more", len(hs)-1-maxNamed)
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(" " + a.describe(h.Subject, client, from))
		}
	}
	return analysis.Hit{Rule: rule, Weight: first.Weight * a.Points, Detail: b.String()}
}

// describe names a subject with where it came from: "client 192.0.2.1",
// "link host evil.test", "From domain evil.test (also DKIM d= domain)".
func (a *Analyzer) describe(subject string, client netip.Addr, from map[string][]string) string {
	ls := from[subject]
	if ip, err := netip.ParseAddr(subject); err == nil && ip == client {
		ls = append([]string{"client"}, ls...)
	}
	if len(ls) == 0 {
		return subject
	}
	s := ls[0] + " " + subject
	if len(ls) > 1 {
		s += " (also " + strings.Join(ls[1:], ", ") + ")"
	}
	return s
}

func (a *Analyzer) zoneName(z string) string {
	if n, ok := a.Names[z]; ok && n != "" {
		return n
	}
	return z
}

// outcomes gives the outcome of each zone of the kinds asked (IP lists,
// domain lists) in res, by the zone's own name (the metrics are the
// admin's, not the world's).
func (a *Analyzer) outcomes(res *Result, asked [2]bool) map[string]string {
	if res.Queries == 0 && len(res.Errors) == 0 {
		return nil
	}
	out := make(map[string]string, len(a.C.ipZones)+len(a.C.domZones))
	for i, zs := range [2][]zone{a.C.ipZones, a.C.domZones} {
		for _, z := range zs {
			if asked[i] {
				out[z.name] = "not_listed"
			}
		}
	}
	for _, h := range res.Hits {
		out[h.Zone] = "listed"
	}
	for _, e := range res.Errors {
		if e.Kind == TempError {
			out[e.Zone] = "error"
		} else {
			out[e.Zone] = "refused"
		}
	}
	// A zone the cache answered was asked already, by the policy server
	// at RCPT or for an earlier message: counted apart, not as a second
	// lookup (issue 25).
	for _, z := range res.cachedZones {
		switch out[z] { // constants: no string built each message
		case "listed":
			out[z] = "listed_cached"
		case "not_listed":
			out[z] = "not_listed_cached"
		}
	}
	return out
}
