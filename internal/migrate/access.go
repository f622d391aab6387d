package migrate

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"mailwall/internal/lists"
)

// AccessTable says which Postfix restriction an access table serves:
// its keys mean different things in each (postconf(5),
// check_client_access, check_sender_access, check_recipient_access).
type AccessTable string

// The tables an access file can be imported as.
const (
	ClientAccess    AccessTable = "client"
	SenderAccess    AccessTable = "sender"
	RecipientAccess AccessTable = "recipient"
)

// AccessImport is what an access table gives the lists: the entries and
// the lines left out, each with why.
type AccessImport struct {
	Entries []lists.Entry
	Skipped []string
}

// ReadAccess reads a Postfix access(5) table in its source form (the
// file postmap reads, or a cidr: table) as entries of the allow and
// block lists. OK and a numeric 2xx are allow entries, REJECT and a
// numeric 5xx block entries. DEFER and 4xx (a block entry refuses for
// good), DUNNO and the actions that are not a yes or no (FILTER, HOLD, PREPEND,
// restriction lists...) are skipped and reported. Keys as access(5)
// reads them: an address (user@domain), a domain (matching its
// subdomains, as parent_domain_matches_subdomains does by default for
// access maps), @domain, an IP address, a network by octets (1.2.3) or
// in CIDR form. user@ keys and, for client tables, host names have no
// entry kind here and are skipped.
func ReadAccess(r io.Reader, name string, table AccessTable) (AccessImport, error) {
	var out AccessImport
	skip := func(line int, text, why string) {
		out.Skipped = append(out.Skipped, fmt.Sprintf("%s, line %d: %q: %s", name, line, text, why))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var lines []string
	var starts []int
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		// A line starting with white space continues the one before
		// (postmap(1)).
		if len(lines) > 0 && l != "" && (l[0] == ' ' || l[0] == '\t') && strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines[len(lines)-1] += " " + strings.TrimSpace(l)
			continue
		}
		lines, starts = append(lines, l), append(starts, n)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("migrate: %s: %w", name, err)
	}
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key, rest, _ := strings.Cut(strings.Join(strings.Fields(l), " "), " ")
		action, text, _ := strings.Cut(rest, " ")
		var list lists.List
		switch a := strings.ToUpper(action); {
		case a == "OK" || isCode(a, '2'):
			list = lists.Allow
		case a == "REJECT" || isCode(a, '5'):
			list = lists.Block
		case a == "DEFER" || a == "DEFER_IF_PERMIT" || a == "DEFER_IF_REJECT" || isCode(a, '4'):
			skip(starts[i], l, "a temporary refusal: the block list refuses for good, not kept")
			continue
		case a == "":
			skip(starts[i], l, "no action")
			continue
		default:
			skip(starts[i], l, a+" is not an allow or a block")
			continue
		}
		kind, value, why := accessKey(key, table)
		if why != "" {
			skip(starts[i], l, why)
			continue
		}
		v, err := lists.Normalize(kind, value)
		if err != nil {
			skip(starts[i], l, err.Error())
			continue
		}
		note := "postfix " + string(table) + " access " + name
		if text != "" {
			note += ": " + text
		}
		out.Entries = append(out.Entries, lists.Entry{List: list, Kind: kind, Value: v, Note: note})
	}
	return out, nil
}

// isCode reports whether a is a three-digit SMTP code of class c.
func isCode(a string, c byte) bool {
	return len(a) == 3 && a[0] == c && a[1] >= '0' && a[1] <= '9' && a[2] >= '0' && a[2] <= '9'
}

// accessKey maps an access(5) key to an entry kind, or says why it has
// none.
func accessKey(key string, table AccessTable) (lists.Kind, string, string) {
	key = strings.ToLower(key)
	if p, err := netip.ParsePrefix(key); err == nil {
		return lists.IP, p.String(), ""
	}
	if a, err := netip.ParseAddr(strings.Trim(key, "[]")); err == nil {
		return lists.IP, a.String(), ""
	}
	if p, ok := octetNetwork(key); ok {
		return lists.IP, p.String(), ""
	}
	switch table {
	case ClientAccess:
		return "", "", "a client host name: only addresses and networks are kept"
	case RecipientAccess:
		if local, dom, ok := strings.Cut(key, "@"); ok && local != "" && dom != "" {
			return lists.Rcpt, key, ""
		}
		return "", "", "only full recipient addresses are kept"
	}
	local, dom, ok := strings.Cut(key, "@")
	switch {
	case !ok:
		return lists.Domain, key, ""
	case local == "" && dom != "":
		return lists.Domain, dom, ""
	case dom == "":
		return "", "", "a local part alone (user@) matches every domain: not kept"
	}
	return lists.Sender, key, ""
}

// octetNetwork reads access(5)'s "1.2.3" (every address under it) as a
// network.
func octetNetwork(key string) (netip.Prefix, bool) {
	parts := strings.Split(key, ".")
	if len(parts) < 1 || len(parts) > 3 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return netip.Prefix{}, false
		}
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return netip.Prefix{}, false
			}
			n = n*10 + int(c-'0')
		}
		if n > 255 {
			return netip.Prefix{}, false
		}
		b[i] = byte(n)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), 8*len(parts)), true
}

// ReadAccessFile is ReadAccess on a file.
func ReadAccessFile(path string, table AccessTable) (AccessImport, error) {
	f, err := os.Open(path)
	if err != nil {
		return AccessImport{}, fmt.Errorf("migrate: %w", err)
	}
	defer f.Close()
	return ReadAccess(f, path, table)
}

// PolicydSPFLists reads policyd-spf.conf's Whitelist (client addresses
// and networks: allow entries by IP, exempt from every check as there)
// and Domain_Whitelist (allow entries by domain). The latter is not the
// same test: policyd-spf skips SPF for a client that passes SPF for the
// listed domain whatever the sender, our entry allows mail whose MAIL
// FROM passes SPF, or whose From passes DMARC, in the domain; policyd.
// allow_domains (from mailwall import) keeps policyd-spf's meaning.
func PolicydSPFLists(path string) (AccessImport, error) {
	var out AccessImport
	ds, err := readDirectives(path, "=")
	if err != nil {
		return out, err
	}
	for _, d := range ds {
		var kind lists.Kind
		switch strings.ToLower(d.name) {
		case "whitelist":
			kind = lists.IP
		case "domain_whitelist":
			kind = lists.Domain
		default:
			continue
		}
		for _, v := range splitList(d.value) {
			n, err := lists.Normalize(kind, v)
			if err != nil {
				out.Skipped = append(out.Skipped, fmt.Sprintf("%s, line %d: %s: %v", path, d.line, d.name, err))
				continue
			}
			out.Entries = append(out.Entries, lists.Entry{List: lists.Allow, Kind: kind, Value: n, Note: "policyd-spf " + d.name + " " + path})
		}
	}
	return out, nil
}
