package conncheck

import (
	"net/netip"
	"strings"
)

// HeloSyntax checks a HELO/EHLO name as Postfix's
// reject_invalid_helo_hostname and reject_non_fqdn_helo_hostname do. It
// returns the reply Postfix would give, or "" when the name passes.
func HeloSyntax(helo string, requireFQDN bool) string {
	name := helo
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		// An address literal: valid if it holds an address.
		lit := strings.TrimPrefix(name[1:len(name)-1], "IPv6:")
		if _, err := netip.ParseAddr(lit); err != nil {
			return "501 5.5.2 <" + helo + ">: Helo command rejected: Invalid name"
		}
		return ""
	}
	if _, err := netip.ParseAddr(name); err == nil {
		if requireFQDN {
			return "504 5.5.2 <" + helo + ">: Helo command rejected: need fully-qualified hostname"
		}
		return ""
	}
	if !validHostname(name) {
		return "501 5.5.2 <" + helo + ">: Helo command rejected: Invalid name"
	}
	if requireFQDN && !strings.Contains(strings.TrimSuffix(name, "."), ".") {
		return "504 5.5.2 <" + helo + ">: Helo command rejected: need fully-qualified hostname"
	}
	return ""
}

// validHostname follows Postfix's valid_hostname(): labels of letters,
// digits, '-' and '_', 1 to 63 octets, no hyphen at either end of a
// label, at most 255 octets, not all numeric.
func validHostname(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 255 {
		return false
	}
	allDigits := true
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
				allDigits = false
			default:
				return false
			}
		}
	}
	return !allDigits
}
