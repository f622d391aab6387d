// Package dmarc evaluates DMARC as RFC 9989 (May 2026) specifies: policy
// discovery and Organizational Domains by the DNS tree walk, psd=, np=,
// t=, relaxed and strict alignment, and the external report-destination
// check of RFC 9990. Records written for RFC 7489 keep working (pct, rf,
// ri are read, pct honoured as 7489 readers did), and a switch selects
// RFC 7489's Public Suffix List method for Organizational Domains.
package dmarc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Policy is a Domain Owner Assessment Policy.
type Policy string

// Policies, weakest first.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// ReportPass is the aggregate report's disposition for mail that passed
// under an enforcing policy (RFC 9990 ActionDispositionType); not a policy.
const ReportPass Policy = "pass"

// downgrade is the policy one level below (t=y, RFC 9989 §4.7; pct
// sampling, RFC 7489 §6.6.4).
func (p Policy) downgrade() Policy {
	switch p {
	case PolicyReject:
		return PolicyQuarantine
	case PolicyQuarantine:
		return PolicyNone
	}
	return p
}

func (p Policy) rank() int {
	switch p {
	case PolicyReject:
		return 2
	case PolicyQuarantine:
		return 1
	}
	return 0
}

// Weaker reports whether p asks for less than q (none < quarantine <
// reject).
func (p Policy) Weaker(q Policy) bool { return p.rank() < q.rank() }

// URI is a reporting address from rua= or ruf=.
type URI struct {
	URI string // as written, without the size suffix
	// MaxSize is RFC 7489's "!size" suffix in bytes (0: none). RFC 9989
	// made it obsolete; report senders may still honour it.
	MaxSize int64
}

// String is the URI as a record writes it, with a "!size" suffix (in
// bytes) when it has a limit.
func (u URI) String() string {
	if u.MaxSize > 0 {
		return u.URI + "!" + strconv.FormatInt(u.MaxSize, 10)
	}
	return u.URI
}

// ParseURIs reads a comma-separated list of reporting URIs as rua= and
// ruf= hold them, returning the usable ones and a note for each other.
func ParseURIs(v string) ([]URI, []string) { return parseURIs(v) }

// Address is the mail address of a mailto: URI as Mailbox decodes and
// checks it, "" when it is not one usable address.
func (u URI) Address() string {
	addr, _ := u.Mailbox()
	return addr
}

// Host returns the domain of the address a mailto: URI names (Mailbox),
// lower case, "" when it is not one usable address.
func (u URI) Host() string {
	addr, err := u.Mailbox()
	if err != nil {
		return ""
	}
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

// Record is a parsed DMARC Policy Record (RFC 9989 §4.7).
type Record struct {
	Raw string
	// P is the policy; PValid is false when p= is absent or invalid.
	P      Policy
	PValid bool
	SP, NP Policy // "" when absent
	// SPNPInvalid is set when sp= or np= is present but not a policy.
	SPNPInvalid bool
	PSD         byte // 'y', 'n' or 'u'
	Testing     bool // t=y
	ADKIM, ASPF byte // 'r' or 's'
	RUA, RUF    []URI
	FO          []string
	// RFC 7489 tags that RFC 9989 removed: Pct is -1 when absent.
	Pct      int
	RF       string
	RI       int // -1 when absent
	Warnings []string
}

// ErrNotDMARC marks a TXT record that is not a DMARC record at all.
var ErrNotDMARC = errors.New("not a DMARC record")

// ParseRecord parses a record. It fails only when the record is not a
// DMARC record (v=DMARC1 must be the first tag, §4.7); bad values are
// replaced by defaults and listed in Warnings, as §4.8 asks.
func ParseRecord(txt string) (*Record, error) {
	r := &Record{Raw: txt, PSD: 'u', ADKIM: 'r', ASPF: 'r', Pct: -1, RI: -1}
	parts := strings.Split(txt, ";")
	name, value, ok := strings.Cut(parts[0], "=")
	if !ok || strings.TrimSpace(name) != "v" || strings.TrimSpace(value) != "DMARC1" {
		return nil, ErrNotDMARC
	}
	seen := map[string]bool{}
	warn := func(format string, args ...any) { r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...)) }
	for _, part := range parts[1:] {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		if !ok || name == "" {
			warn("ignored %q: not tag=value", part)
			continue
		}
		if seen[name] {
			warn("tag %s= given twice; the first is used", name)
			continue
		}
		seen[name] = true
		switch name {
		case "p", "sp", "np":
			p, ok := parsePolicy(value)
			switch {
			case !ok:
				warn("%s=%s is not none, quarantine or reject", name, value)
				if name != "p" {
					r.SPNPInvalid = true
				}
			case name == "p":
				r.P, r.PValid = p, true
			case name == "sp":
				r.SP = p
			default:
				r.NP = p
			}
		case "psd":
			if v := strings.ToLower(value); v == "y" || v == "n" || v == "u" {
				r.PSD = v[0]
			} else {
				warn("psd=%s is not y, n or u", value)
			}
		case "t":
			switch strings.ToLower(value) {
			case "y":
				r.Testing = true
			case "n":
			default:
				warn("t=%s is not y or n", value)
			}
		case "adkim", "aspf":
			v := strings.ToLower(value)
			if v != "r" && v != "s" {
				warn("%s=%s is not r or s; relaxed is used", name, value)
				continue
			}
			if name == "adkim" {
				r.ADKIM = v[0]
			} else {
				r.ASPF = v[0]
			}
		case "rua", "ruf":
			uris, bad := parseURIs(value)
			for _, b := range bad {
				warn("%s: %s", name, b)
			}
			if name == "rua" {
				r.RUA = uris
			} else {
				r.RUF = uris
			}
		case "fo":
			r.FO = strings.Split(value, ":")
		case "pct":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 || n > 100 {
				warn("pct=%s is not 0 to 100", value)
				continue
			}
			r.Pct = n
			warn("pct= was removed by RFC 9989; it is honoured as RFC 7489 did (use t=y for testing)")
		case "rf":
			r.RF = value
			warn("rf= was removed by RFC 9989 and is ignored")
		case "ri":
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 {
				warn("ri=%s is not a positive number of seconds", value)
				continue
			}
			r.RI = n
			warn("ri= was removed by RFC 9989; reports are sent daily")
		default:
			// §4.7: unknown tags MUST be ignored.
		}
	}
	if !r.PValid {
		r.P = PolicyNone
	}
	return r, nil
}

func parsePolicy(v string) (Policy, bool) {
	switch p := Policy(strings.ToLower(v)); p {
	case PolicyNone, PolicyQuarantine, PolicyReject:
		return p, true
	}
	return "", false
}

// parseURIs reads a comma-separated list of reporting URIs, keeping the
// mailto: ones with an address (§4.7: a receiver MUST support mailto:;
// other schemes it does not support MUST be ignored).
func parseURIs(v string) (uris []URI, bad []string) {
	for u := range strings.SplitSeq(v, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		uri := URI{URI: u}
		if i := strings.LastIndexByte(u, '!'); i > 0 {
			size, err := parseSize(u[i+1:])
			if err != nil {
				bad = append(bad, fmt.Sprintf("%q: bad size suffix", u))
				continue
			}
			uri = URI{URI: u[:i], MaxSize: size}
		}
		if _, err := uri.Mailbox(); err != nil {
			bad = append(bad, fmt.Sprintf("%v; ignored", err))
			continue
		}
		uris = append(uris, uri)
	}
	return uris, bad
}

// parseSize reads RFC 7489's size suffix: digits and k, m, g or t.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("bad size")
	}
	return n * mult, nil
}
