package dnsx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Client queries upstream recursive servers (or, in the lab, the
// authoritative lab-dns server, which is why it also follows CNAME chains
// that leave the response).
type Client struct {
	// Servers are "host:port" addresses, tried in order on each attempt.
	Servers []string
	// Timeout bounds each single exchange; zero means 2s.
	Timeout time.Duration
	// Attempts is how many rounds over Servers are made; zero means 2.
	Attempts int
	// UDPSize is the EDNS0 buffer size advertised; zero means 1232, the
	// size recommended by DNS Flag Day 2020 to avoid fragmentation.
	UDPSize uint16
	// OnServerError, if set, is called for each exchange with one server
	// that failed (timeout, transport error, or an rcode other than
	// NOERROR and NXDOMAIN), even when another server then answers: which
	// of several servers is failing. It must be safe for concurrent use.
	OnServerError func(server string, err error)
	// Validator, if set, checks answers with DNSSEC and says so in
	// Answer.Security (dnssec.go); bogus answers become errors.
	Validator *Validator
}

// queryFlags are the header and EDNS bits a query sets: DO (and CD, so an
// upstream validator hands over what it finds bogus for us to judge, RFC
// 4035 §3.2.2) when validating, AD when trusting the upstream's (RFC 6840
// §5.7).
type queryFlags struct{ do, ad bool }

// maxCNAMEHops bounds CNAME chains, as resolvers commonly do.
const maxCNAMEHops = 8

// NewClient returns a Client for servers, or for the name servers in
// /etc/resolv.conf when servers is empty.
func NewClient(servers []string) (*Client, error) {
	if len(servers) == 0 {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("dnsx: no servers given and %w", err)
		}
		for _, s := range conf.Servers {
			servers = append(servers, net.JoinHostPort(s, conf.Port))
		}
		if len(servers) == 0 {
			return nil, errors.New("dnsx: no servers given and none in /etc/resolv.conf")
		}
	}
	for i, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			servers[i] = net.JoinHostPort(s, "53")
		}
	}
	return &Client{Servers: servers}, nil
}

// Query asks the servers for name/qtype and follows CNAMEs. name is a raw
// name: bytes outside letters, digits, '-', '_' and '.' are escaped for the
// wire by EscapeName.
func (c *Client) Query(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	qname := Fqdn(EscapeName(name))
	if _, ok := dns.IsDomainName(qname); !ok || len(qname) > 254 {
		return nil, &Error{Name: qname, Type: qtype, Err: errors.New("invalid domain name")}
	}
	if c.Validator != nil {
		return c.Validator.query(ctx, c, qname, qtype)
	}
	ans := &Answer{Name: qname, Type: qtype, TTL: ^uint32(0)}
	target := qname
	for hop := 0; ; hop++ {
		resp, server, tcp, err := c.exchange(ctx, target, qtype, queryFlags{})
		if err != nil {
			return nil, &Error{Name: qname, Type: qtype, Temporary: true, Err: err}
		}
		ans.Server, ans.TCP = server, ans.TCP || tcp
		var chained bool
		target, chained = collect(ans, resp, target, qtype)
		if !chained || hop >= maxCNAMEHops {
			break
		}
		// The response ended in a CNAME whose target it did not answer for:
		// an authoritative server pointing outside its zone. Chase it.
	}
	return ans, nil
}

// collect adds to ans the records of resp that answer target/qtype,
// following the CNAME chain inside resp. It returns the last target and
// whether the chain ended on a CNAME that resp does not resolve.
func collect(ans *Answer, resp *dns.Msg, target string, qtype uint16) (string, bool) {
	ans.Rcode = resp.Rcode
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		var cname string
		found := false
		for _, rr := range resp.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, target) {
				continue
			}
			if h.Rrtype == qtype || qtype == dns.TypeANY {
				ans.Records = append(ans.Records, rr)
				ans.TTL = min(ans.TTL, h.Ttl)
				found = true
			} else if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME {
				cname = strings.ToLower(c.Target)
				ans.TTL = min(ans.TTL, h.Ttl)
			}
		}
		if found || cname == "" {
			break
		}
		target = cname
		if hop == maxCNAMEHops {
			return target, false
		}
		if !hasOwner(resp.Answer, target) && resp.Rcode == dns.RcodeSuccess {
			return target, true
		}
	}
	if len(ans.Records) == 0 {
		// RFC 2308 §5: a negative answer is cached for the smaller of the
		// SOA's own TTL and its MINIMUM field.
		ans.TTL = ^uint32(0)
		ans.NegativeNoSOA = true
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ans.TTL = min(soa.Hdr.Ttl, soa.Minttl)
				ans.NegativeNoSOA = false
			}
		}
		if ans.NegativeNoSOA {
			ans.TTL = 0
		}
	}
	return target, false
}

func hasOwner(rrs []dns.RR, name string) bool {
	for _, rr := range rrs {
		if strings.EqualFold(rr.Header().Name, name) {
			return true
		}
	}
	return false
}

// exchange sends one question, trying each server in turn for Attempts
// rounds, and retries over TCP when a UDP answer is truncated.
func (c *Client) exchange(ctx context.Context, name string, qtype uint16, fl queryFlags) (*dns.Msg, string, bool, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 2
	}
	size := c.UDPSize
	if size == 0 {
		size = 1232
	}
	if len(c.Servers) == 0 {
		return nil, "", false, errors.New("no DNS servers configured")
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(size, fl.do)
	m.CheckingDisabled = fl.do
	m.AuthenticatedData = fl.ad

	var lastErr error
	for range attempts {
		for _, server := range c.Servers {
			if err := ctx.Err(); err != nil {
				return nil, server, false, fmt.Errorf("%w: %v", ErrTimeout, err)
			}
			resp, tcp, err := c.exchangeOne(ctx, m, server, timeout, size)
			if err != nil {
				lastErr = fmt.Errorf("%s: %w", server, err)
				if c.OnServerError != nil && ctx.Err() == nil {
					c.OnServerError(server, err)
				}
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, server, tcp, nil
			default:
				lastErr = fmt.Errorf("%s: %w (%s)", server, ErrServFail, dns.RcodeToString[resp.Rcode])
				if c.OnServerError != nil {
					c.OnServerError(server, fmt.Errorf("%w (%s)", ErrServFail, dns.RcodeToString[resp.Rcode]))
				}
			}
		}
	}
	return nil, "", false, lastErr
}

func (c *Client) exchangeOne(ctx context.Context, m *dns.Msg, server string, timeout time.Duration, size uint16) (*dns.Msg, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	udp := &dns.Client{Net: "udp", UDPSize: size, Timeout: timeout}
	resp, _, err := udp.ExchangeContext(ctx, m, server)
	if err == nil && !resp.Truncated {
		return resp, false, nil
	}
	if err != nil {
		return nil, false, classify(err)
	}
	// TC bit: RFC 7766 §5, retry the same question over TCP.
	tcp := &dns.Client{Net: "tcp", Timeout: timeout}
	resp, _, err = tcp.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, true, fmt.Errorf("tcp: %w", classify(err))
	}
	return resp, true, nil
}

func classify(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}
