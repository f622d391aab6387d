// Package dnsx is mailwall's DNS client side: a Resolver interface that every
// check takes, a Client that speaks to upstream servers (UDP with EDNS0, TCP
// when an answer is truncated, retries across servers), and a Cache that
// honours TTLs and negative caching (RFC 2308) and can be flushed.
//
// Lookups distinguish the three outcomes that mail authentication cares
// about: records found, no records (NXDOMAIN or NODATA, both "void" in SPF
// terms), and a temporary failure (timeout, SERVFAIL), which is an error.
package dnsx

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Resolver answers one DNS question. Implementations honour ctx and return an
// *Error (temporary or permanent) when no usable answer was obtained; an empty
// Answer (NXDOMAIN or NODATA) is not an error.
type Resolver interface {
	Query(ctx context.Context, name string, qtype uint16) (*Answer, error)
}

// Answer is the usable part of a response. Records holds only the RRs of the
// asked type, after any CNAME chain. Callers must not modify a returned
// Answer: caches share it.
type Answer struct {
	Name    string   // the question name, FQDN, lower case
	Type    uint16   // the question type
	Rcode   int      // dns.RcodeSuccess or dns.RcodeNameError
	Records []dns.RR // RRs of Type, CNAME chain followed
	// TTL is how long the answer may be cached: the smallest TTL of the
	// records and the CNAME chain, or for a negative answer the SOA
	// TTL/MINIMUM rule of RFC 2308 §5. Negative answers without an SOA in the
	// authority section get NegativeNoSOA.
	TTL           uint32
	NegativeNoSOA bool
	// Truncated and TCP tell how the answer was obtained, for diagnostics.
	TCP    bool
	Server string
	// Security is the DNSSEC status (dnssec.go); the zero value,
	// Unvalidated, when validation is off. SecurityReason says why an
	// answer is insecure or unvalidated.
	Security       Security
	SecurityReason string
}

// NXDomain reports whether the name does not exist.
func (a *Answer) NXDomain() bool { return a.Rcode == dns.RcodeNameError }

// Empty reports whether the answer holds no records of the asked type: a
// "void lookup" in RFC 7208 §4.6.4 terms.
func (a *Answer) Empty() bool { return len(a.Records) == 0 }

// ErrTimeout is wrapped by errors for queries that got no answer in time.
var ErrTimeout = errors.New("timeout")

// ErrServFail is wrapped by errors for queries answered with SERVFAIL or
// another RCODE that says nothing about the name.
var ErrServFail = errors.New("server failure")

// Error describes a failed lookup. Temporary errors (timeouts, SERVFAIL) map
// to SPF/DKIM/DMARC "temperror"; permanent ones (a malformed name) do not.
type Error struct {
	Name      string
	Type      uint16
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	return fmt.Sprintf("dns: %s %s: %v", strings.TrimSuffix(e.Name, "."), dns.TypeToString[e.Type], e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsTemporary reports whether err is a temporary DNS failure.
func IsTemporary(err error) bool {
	var de *Error
	if errors.As(err, &de) {
		return de.Temporary
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout)
}

// Fqdn returns name as a lower-case fully qualified domain name.
func Fqdn(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}

// EscapeName turns a raw domain name (the bytes of its labels, dots between
// them) into the presentation form miekg/dns uses for names it unpacks, so
// a label holding a space or a control byte, as SPF macro expansion can
// produce, is queried as written and compares equal to the name a server
// sees.
func EscapeName(raw string) string {
	if !strings.ContainsFunc(raw, func(r rune) bool { return r < 0x21 || r > 0x7e || strings.ContainsRune(`()@;"\`, r) }) {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c < 0x20 || c > 0x7e:
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		case strings.IndexByte(`()@; "\`, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// TXT returns the TXT records at name, the character-strings of each record
// joined without separator (as RFC 7208 §3.3 and RFC 6376 §3.6.2.2 require),
// with presentation escapes undone, so the strings are the raw bytes on the
// wire.
func TXT(ctx context.Context, r Resolver, name string) ([]string, error) {
	a, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(a.Records))
	for _, rr := range a.Records {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, JoinTXT(t.Txt))
		}
	}
	return out, nil
}

// IPs returns the addresses at name: A records when qtype is dns.TypeA,
// AAAA when it is dns.TypeAAAA.
func IPs(ctx context.Context, r Resolver, name string, qtype uint16) ([]netip.Addr, error) {
	a, err := r.Query(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(a.Records))
	for _, rr := range a.Records {
		switch v := rr.(type) {
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(v.A.To4()); ok {
				out = append(out, ip)
			}
		case *dns.AAAA:
			if ip, ok := netip.AddrFromSlice(v.AAAA.To16()); ok {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

// MX returns the exchange names at name in preference order (lowest first),
// lower case, with the trailing dot removed.
func MX(ctx context.Context, r Resolver, name string) ([]string, error) {
	a, err := r.Query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	mxs := make([]*dns.MX, 0, len(a.Records))
	for _, rr := range a.Records {
		if m, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, m)
		}
	}
	// Stable insertion sort: MX sets are small.
	for i := 1; i < len(mxs); i++ {
		for j := i; j > 0 && mxs[j].Preference < mxs[j-1].Preference; j-- {
			mxs[j], mxs[j-1] = mxs[j-1], mxs[j]
		}
	}
	out := make([]string, 0, len(mxs))
	for _, m := range mxs {
		out = append(out, strings.TrimSuffix(strings.ToLower(m.Mx), "."))
	}
	return out, nil
}

// PTR returns the names that ip's reverse entry points to, lower case,
// without the trailing dot.
func PTR(ctx context.Context, r Resolver, ip netip.Addr) ([]string, error) {
	rev, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, fmt.Errorf("dns: reverse of %s: %w", ip, err)
	}
	a, err := r.Query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(a.Records))
	for _, rr := range a.Records {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, strings.TrimSuffix(strings.ToLower(p.Ptr), "."))
		}
	}
	return out, nil
}
