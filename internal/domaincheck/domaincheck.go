// Package domaincheck checks a domain's published mail records as receivers
// will read them: SPF (the include tree, its lookup and void-lookup counts),
// DKIM keys, DMARC policy and report destinations, MX hosts and their
// forward-confirmed reverse DNS, and each authoritative name server on its
// own (serials, answers, SOA timers, zone transfers). Every finding is
// pass, warn, fail or info, with the reason and, where there is one, the
// fix.
package domaincheck

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/conncheck"
	"mailwall/internal/dnsx"
	"mailwall/internal/spf"
)

// Status grades a finding.
type Status string

// Statuses, worst first.
const (
	Fail Status = "fail"
	Warn Status = "warn"
	Pass Status = "pass"
	Info Status = "info"
)

// Sections of a report, in the order they are checked.
const (
	SectionSPF   = "spf"
	SectionDKIM  = "dkim"
	SectionDMARC = "dmarc"
	SectionMX    = "mx"
	SectionNS    = "ns"
)

// Finding is one line of a report.
type Finding struct {
	Section string `json:"section"`
	Status  Status `json:"status"`
	Subject string `json:"subject,omitempty"` // the name, host or server it is about
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

func (f Finding) String() string {
	s := f.Message
	if f.Subject != "" {
		s = f.Subject + ": " + s
	}
	if f.Fix != "" {
		s += " (fix: " + f.Fix + ")"
	}
	return s
}

// Report is the result of checking one domain.
type Report struct {
	Domain   string          `json:"domain"`
	SPF      *spf.LintReport `json:"spf,omitempty"`
	Findings []Finding       `json:"findings"`
}

// Count returns how many findings have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, f := range r.Findings {
		if f.Status == s {
			n++
		}
	}
	return n
}

// Has reports whether some finding in section has status s and a message
// containing text.
func (r *Report) Has(section string, s Status, text string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool {
		return f.Section == section && f.Status == s && strings.Contains(f.String(), text)
	})
}

// CommonSelectors are DKIM selectors tried besides the ones given: the
// defaults of common signers and mail providers.
var CommonSelectors = []string{"default", "mail", "dkim", "selector1", "selector2", "google", "k1", "s1", "s2", "mx"}

// Checker checks domains. Resolver is required.
type Checker struct {
	// Resolver answers as a receiver's resolver would (recursive, or the
	// lab DNS server).
	Resolver dnsx.Resolver
	// Selectors are the DKIM selectors to check; CommonSelectors are tried
	// too, and reported only when found.
	Selectors []string
	// NSPort is the port each authoritative server is asked on; 0 means
	// 53. A lab serves its zones on another port.
	NSPort int
	// Timeout bounds each query to an authoritative server and each zone
	// transfer attempt; 0 means 3 seconds.
	Timeout time.Duration
	// S25R judges MX host names; nil means the published rules.
	S25R *conncheck.S25R
}

type run struct {
	c   *Checker
	ctx context.Context
	rep *Report
}

func (r *run) add(section string, st Status, subject, msg, fix string) {
	r.rep.Findings = append(r.rep.Findings, Finding{Section: section, Status: st, Subject: subject, Message: msg, Fix: fix})
}

// Check checks domain and returns the report; DNS failures are findings,
// not errors.
func (c *Checker) Check(ctx context.Context, domain string) *Report {
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
	r := &run{c: c, ctx: ctx, rep: &Report{Domain: domain}}
	r.spf(domain)
	r.dkim(domain)
	r.dmarc(domain)
	r.mx(domain)
	r.mxAgree(domain) // mxagree.go
	r.ns(domain)
	r.dnssec(domain) // dnssec.go
	return r.rep
}

func (r *run) spf(domain string) {
	rep := spf.Lint(r.ctx, r.c.Resolver, domain)
	r.rep.SPF = &rep
	bad := false
	for _, f := range rep.Findings {
		st := Info
		switch f.Severity {
		case spf.SevError:
			st, bad = Fail, true
		case spf.SevWarn:
			st = Warn
		}
		msg := f.Message
		if f.Pos >= 0 {
			msg = fmt.Sprintf("%s (at position %d)", msg, f.Pos)
		}
		r.add(SectionSPF, st, f.Domain, msg, f.Fix)
	}
	if rep.Record == "" {
		return
	}
	summary := fmt.Sprintf("%q: %d DNS lookups of the 10 allowed, %d void lookups of 2", rep.Record, rep.Lookups, rep.Voids)
	if bad {
		r.add(SectionSPF, Info, domain, summary, "")
	} else {
		r.add(SectionSPF, Pass, domain, summary, "")
	}
	if len(rep.Tree) > 1 {
		for _, n := range rep.Tree[1:] {
			msg := fmt.Sprintf("%s%s:%s, %d lookups: %q", strings.Repeat("  ", n.Depth-1), n.Via, n.Domain, n.Lookups, n.Record)
			r.add(SectionSPF, Info, domain, msg, "")
		}
	}
}

// lookupError words a DNS failure for a finding.
func lookupError(what string, err error) string {
	if dnsx.IsTemporary(err) {
		return fmt.Sprintf("%s lookup failed temporarily (%v): the result is unknown; try again", what, err)
	}
	return fmt.Sprintf("%s lookup failed: %v", what, err)
}

// nsPort is the port authoritative servers are asked on.
func (c *Checker) nsPort() string {
	if c.NSPort == 0 {
		return "53"
	}
	return strconv.Itoa(c.NSPort)
}

func (c *Checker) timeout() time.Duration {
	if c.Timeout == 0 {
		return 3 * time.Second
	}
	return c.Timeout
}

// serverAddr joins an address and the name-server port.
func (c *Checker) serverAddr(ip string) string { return net.JoinHostPort(ip, c.nsPort()) }
