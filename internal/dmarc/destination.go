package dmarc

import (
	"context"
	"fmt"
	"strings"

	"mailwall/internal/dnsx"
)

// Destinations returns the reporting URIs that reports for policyDomain
// may be sent to, with a note for each one dropped. An address outside the
// policy domain's organization needs the destination's consent, a
// "v=DMARC1" record at <policyDomain>._report._dmarc.<host> (RFC 9990 §3,
// RFC 7489 §7.1); that record's own rua= may replace the address if it
// keeps the same host. A temporary DNS failure is returned as an error, so
// the caller can try again later instead of dropping the address.
func (e *Evaluator) Destinations(ctx context.Context, policyDomain string, uris []URI) ([]URI, []string, error) {
	return e.destinations(ctx, policyDomain, uris, func(r *Record) []URI { return r.RUA })
}

// FailureDestinations is Destinations for failure reports: the same
// procedure with the consenting record's ruf= in place of rua= (RFC 9991
// §5).
func (e *Evaluator) FailureDestinations(ctx context.Context, policyDomain string, uris []URI) ([]URI, []string, error) {
	return e.destinations(ctx, policyDomain, uris, func(r *Record) []URI { return r.RUF })
}

func (e *Evaluator) destinations(ctx context.Context, policyDomain string, uris []URI, override func(*Record) []URI) ([]URI, []string, error) {
	w := &walker{e: e, ctx: ctx, cache: map[string]walkEntry{}}
	policyDomain = strings.TrimSuffix(strings.ToLower(policyDomain), ".")
	policyOrg, _, err := w.orgDomain(policyDomain)
	if err != nil {
		return nil, nil, err
	}
	var ok []URI
	var notes []string
	for _, u := range uris {
		// The check is on the address a report would go to, decoded:
		// an escaped "@" must not move the host the consent is asked of
		// (issue 23).
		mailbox, err := u.Mailbox()
		if err != nil {
			notes = append(notes, fmt.Sprintf("%v; dropped", err))
			continue
		}
		host := mailbox[strings.LastIndexByte(mailbox, '@')+1:]
		hostOrg, _, err := w.orgDomain(host)
		if err != nil {
			return nil, nil, err
		}
		if hostOrg == policyOrg {
			ok = append(ok, u)
			continue
		}
		name := policyDomain + "._report._dmarc." + host
		if len(name) > 253 {
			notes = append(notes, fmt.Sprintf("%s: %s is too long a name to ask for consent; dropped", u.URI, name))
			continue
		}
		txts, err := dnsx.TXT(ctx, e.Resolver, name)
		if err != nil && dnsx.IsTemporary(err) {
			return nil, nil, fmt.Errorf("dmarc: report destination %s: %w", name, err)
		}
		var consent *Record
		for _, t := range txts {
			if r, err := ParseRecord(t); err == nil {
				consent = r
				break
			}
		}
		if consent == nil {
			notes = append(notes, fmt.Sprintf("%s: %s has not authorized reports for %s (no v=DMARC1 record at %s); dropped", u.URI, host, policyDomain, name))
			continue
		}
		if len(override(consent)) == 0 {
			ok = append(ok, u)
			continue
		}
		// The consenting record names its own address: use it, but only
		// on the same host, to prevent loops and indirect abuse.
		for _, o := range override(consent) {
			if oh := o.Host(); oh == "" || oh != host {
				notes = append(notes, fmt.Sprintf("%s: %s's override %s names another host; neither is used", u.URI, host, o.URI))
				continue
			}
			ok = append(ok, o)
		}
	}
	return ok, notes, nil
}
