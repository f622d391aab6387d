package spf

import (
	"context"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// Severity ranks a lint finding.
type Severity string

// Severities, worst first.
const (
	SevError Severity = "error" // receivers will return permerror or mis-evaluate
	SevWarn  Severity = "warn"  // works, but weakens or endangers the policy
	SevInfo  Severity = "info"
)

// Finding is one thing the linter has to say about a domain's SPF.
type Finding struct {
	Severity Severity `json:"severity"`
	Domain   string   `json:"domain"` // the record it is about (an include's target, say)
	Pos      int      `json:"pos"`    // byte offset in that record, -1 when not about a term
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s: %s: %s", f.Severity, f.Domain, f.Message)
	if f.Pos >= 0 {
		s = fmt.Sprintf("%s: %s (position %d): %s", f.Severity, f.Domain, f.Pos, f.Message)
	}
	if f.Fix != "" {
		s += " (fix: " + f.Fix + ")"
	}
	return s
}

// LintReport is the linter's result for a domain.
type LintReport struct {
	Domain   string    `json:"domain"`
	Record   string    `json:"record,omitempty"`
	Lookups  int       `json:"lookups"` // DNS-querying terms in the whole tree
	Voids    int       `json:"void_lookups"`
	Findings []Finding `json:"findings"`
	// Tree is the record and every include and redirect target it reaches,
	// in evaluation order.
	Tree []TreeNode `json:"tree"`
}

// TreeNode is one record in the include/redirect tree.
type TreeNode struct {
	Depth   int    `json:"depth"`         // 0 for the domain's own record
	Via     string `json:"via,omitempty"` // "include" or "redirect"
	Domain  string `json:"domain"`
	Record  string `json:"record"`  // "" when there is none (an error finding says why)
	Lookups int    `json:"lookups"` // lookup terms in this record alone
}

// Lint fetches domain's SPF record and walks its include and redirect tree,
// reporting what admins commonly get wrong: more than 10 lookups, void
// lookups, +all/?all, ptr, several records, strings over 255 octets, syntax
// errors with their position. Terms with macros are not expanded (their
// targets depend on the message).
func Lint(ctx context.Context, r dnsx.Resolver, domain string) LintReport {
	l := &linter{ctx: ctx, r: r, seen: map[string]bool{}}
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	rep := LintReport{Domain: domain}
	rep.Record = l.walk(domain, "", 0, true)
	rep.Lookups, rep.Voids, rep.Findings, rep.Tree = l.lookups, l.voids, l.findings, l.tree
	if l.lookups > 10 {
		l.add(SevError, domain, -1, fmt.Sprintf("the record tree needs %d DNS lookups; receivers stop at 10 and return permerror (RFC 7208 §4.6.4)", l.lookups),
			"flatten includes into ip4:/ip6: ranges or drop senders you no longer use")
	}
	if l.voids > 2 {
		l.add(SevError, domain, -1, fmt.Sprintf("%d lookups return no records; receivers allow 2 (RFC 7208 §4.6.4)", l.voids),
			"remove mechanisms that point at names without records")
	}
	rep.Findings = l.findings
	return rep
}

type linter struct {
	ctx            context.Context
	r              dnsx.Resolver
	seen           map[string]bool
	lookups, voids int
	findings       []Finding
	tree           []TreeNode
}

func (l *linter) add(sev Severity, domain string, pos int, msg, fix string) {
	l.findings = append(l.findings, Finding{Severity: sev, Domain: domain, Pos: pos, Message: msg, Fix: fix})
}

// walk lints the record at domain and its includes; it returns the record.
func (l *linter) walk(domain, via string, depth int, top bool) string {
	node := len(l.tree)
	l.tree = append(l.tree, TreeNode{Depth: depth, Via: via, Domain: domain})
	rec := l.fetch(domain, depth, top, node)
	l.tree[node].Record = rec
	return rec
}

// fetch looks up and lints the record of tree node node.
func (l *linter) fetch(domain string, depth int, top bool, node int) string {
	if l.seen[domain] {
		l.add(SevError, domain, -1, "include/redirect loop", "remove the include that points back")
		return ""
	}
	l.seen[domain] = true
	if depth > 10 {
		return ""
	}
	ans, err := l.r.Query(l.ctx, domain, dns.TypeTXT)
	if err != nil {
		l.add(SevError, domain, -1, fmt.Sprintf("TXT lookup failed: %v", err), "")
		return ""
	}
	var records []string
	for _, rr := range ans.Records {
		t, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		txt := dnsx.JoinTXT(t.Txt)
		if !IsSPF(txt) {
			continue
		}
		records = append(records, txt)
		for _, s := range t.Txt {
			if len(dnsx.UnescapeTXT(s)) > 255 {
				l.add(SevError, domain, -1, "a TXT string is longer than 255 octets", "split the record into several quoted strings of at most 255 characters")
			}
		}
	}
	if ans.TCP {
		l.add(SevInfo, domain, -1, "the TXT answer does not fit in UDP; receivers must retry over TCP", "remove unused TXT records at this name")
	}
	switch len(records) {
	case 0:
		if top {
			l.add(SevError, domain, -1, "no SPF record", "publish one, for example \"v=spf1 mx -all\"")
		} else {
			l.add(SevError, domain, -1, "included domain has no SPF record: receivers return permerror", "remove the include")
		}
		return ""
	case 1:
	default:
		l.add(SevError, domain, -1, fmt.Sprintf("%d SPF records: receivers return permerror (RFC 7208 §4.5)", len(records)), "merge them into one record")
		return records[0]
	}
	rec, err := Parse(records[0])
	if err != nil {
		pos := -1
		if se, ok := err.(*SyntaxError); ok {
			pos = se.Pos
		}
		l.add(SevError, domain, pos, err.Error(), "")
		return records[0]
	}
	l.lintRecord(domain, rec, depth, top, node)
	return records[0]
}

func (l *linter) lintRecord(domain string, rec *Record, depth int, top bool, node int) {
	count := func() { l.lookups++; l.tree[node].Lookups++ }
	hasAll := false
	for _, d := range rec.Directives {
		if hasAll {
			l.add(SevWarn, domain, d.Pos, fmt.Sprintf("%q comes after \"all\" and is never evaluated", d.Text), "move it before \"all\"")
			continue
		}
		switch d.Mechanism {
		case "all":
			hasAll = true
			switch d.Qualifier {
			case '+':
				l.add(SevError, domain, d.Pos, "\"+all\" authorizes every host on the internet", "end with \"-all\" or \"~all\"")
			case '?':
				l.add(SevWarn, domain, d.Pos, "\"?all\" gives no protection", "end with \"-all\" or \"~all\"")
			}
			if rec.Redirect != nil {
				l.add(SevWarn, domain, rec.Redirect.Pos, "redirect= is ignored because the record has \"all\"", "remove one of them")
			}
		case "ptr":
			count()
			l.add(SevWarn, domain, d.Pos, "\"ptr\" is slow and unreliable; RFC 7208 §5.5 says not to use it", "list the addresses with ip4:/ip6: or use a")
		case "include":
			count()
			if d.domain.hasMacros() {
				continue
			}
			l.walk(l.target(d.domain), "include", depth+1, false)
		case "a", "mx", "exists":
			count()
			if d.domain.hasMacros() {
				continue
			}
			target := domain
			if d.domain != nil {
				target = l.target(d.domain)
			}
			l.checkVoid(domain, d, target)
		}
	}
	if rec.Redirect != nil && !hasAll {
		count()
		if !rec.Redirect.spec.hasMacros() {
			l.walk(l.target(rec.Redirect.spec), "redirect", depth+1, false)
		}
	}
	if top && !hasAll && rec.Redirect == nil {
		l.add(SevWarn, domain, -1, "no \"all\" and no redirect=: mail from anywhere else gets \"neutral\"", "end the record with \"-all\" or \"~all\"")
	}
}

func (l *linter) target(ms macroString) string {
	return strings.TrimSuffix(strings.ToLower(ms.String()), ".")
}

// checkVoid counts a mechanism whose lookup finds nothing.
func (l *linter) checkVoid(domain string, d Directive, target string) {
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA}
	switch d.Mechanism {
	case "mx":
		qtypes = []uint16{dns.TypeMX}
	case "exists":
		qtypes = []uint16{dns.TypeA}
	}
	for _, qt := range qtypes {
		a, err := l.r.Query(l.ctx, target, qt)
		if err != nil {
			l.add(SevWarn, domain, d.Pos, fmt.Sprintf("%q: lookup failed: %v", d.Text, err), "")
			return
		}
		if !a.Empty() {
			return
		}
	}
	l.voids++
	l.add(SevWarn, domain, d.Pos, fmt.Sprintf("%q finds no records (a void lookup)", d.Text), "remove it or publish the records")
}
