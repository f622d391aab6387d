package ddns

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxBody bounds what an address endpoint may send: an address is at most
// 45 characters, with some room for a trailing newline or two.
const maxBody = 128

// Discover learns the current public addresses: those of the interface
// named iface (one per family, the first usable), or the one the HTTP(S)
// endpoint url returns as text. The caller's ctx bounds the time.
func Discover(ctx context.Context, iface, url string, allowLoopback bool, client *http.Client) ([]netip.Addr, error) {
	switch {
	case iface != "" && url != "":
		return nil, fmt.Errorf("ddns: give an interface or a URL, not both")
	case iface != "":
		return fromInterface(iface, allowLoopback)
	case url != "":
		a, err := fromURL(ctx, url, allowLoopback, client)
		if err != nil {
			return nil, err
		}
		return []netip.Addr{a}, nil
	}
	return nil, fmt.Errorf("ddns: no address source: set ddns.interface or ddns.url")
}

func fromInterface(name string, allowLoopback bool) ([]netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("ddns: interface %s: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("ddns: addresses of %s: %w", name, err)
	}
	var v4, v6 netip.Addr
	var skipped []string
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if err := Usable(ip, allowLoopback); err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		if ip.Is4() && !v4.IsValid() {
			v4 = ip
		}
		if ip.Is6() && !v6.IsValid() {
			v6 = ip
		}
	}
	var out []netip.Addr
	for _, a := range []netip.Addr{v4, v6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("ddns: interface %s has no global unicast address (%s)", name, strings.Join(skipped, "; "))
	}
	return out, nil
}

func fromURL(ctx context.Context, url string, allowLoopback bool, client *http.Client) (netip.Addr, error) {
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return netip.Addr{}, fmt.Errorf("ddns: url %q is not http(s)", url)
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ddns: %w", err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ddns: asking %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return netip.Addr{}, fmt.Errorf("ddns: %s answered %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ddns: reading %s: %w", url, err)
	}
	if len(body) > maxBody {
		return netip.Addr{}, fmt.Errorf("ddns: %s sent more than %d octets: not an address", url, maxBody)
	}
	text := strings.TrimSpace(string(body))
	ip, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ddns: %s sent %q, not an address", url, text)
	}
	ip = ip.Unmap()
	if err := Usable(ip, allowLoopback); err != nil {
		return netip.Addr{}, fmt.Errorf("ddns: %s sent %w", url, err)
	}
	return ip, nil
}

// specialRanges are ranges that are global unicast in form but never a
// server's public address (RFC 6890 registries: shared CGNAT space,
// documentation, benchmarking, 6to4 relay, ...).
func specialRanges() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("100.64.0.0/10"), // RFC 6598 CGNAT: the real address is upstream
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("64:ff9b::/96"),
	}
}

// Usable says whether ip may be published as the server's address: a
// global unicast address, not private (RFC 1918, RFC 4193), not
// link-local, not in a special-purpose range. allowLoopback (the lab
// only) lets 127.0.0.0/8 and ::1 through.
func Usable(ip netip.Addr, allowLoopback bool) error {
	if allowLoopback && ip.IsLoopback() {
		return nil
	}
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return fmt.Errorf("%s, which is not a global unicast address", ip)
	}
	for _, p := range specialRanges() {
		if p.Contains(ip) {
			return fmt.Errorf("%s, which is in the special-purpose range %s", ip, p)
		}
	}
	return nil
}
