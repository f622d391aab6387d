package conncheck

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// S25RRule is one pattern for client names that look like dynamic
// (end-user) addresses.
type S25RRule struct {
	Name    string
	Pattern *regexp.Regexp
}

// DefaultS25R are the published S25R rules (Asami Hideo's "Selective SMTP
// Rejection"), applied to the client's verified host name. A client with
// no verified name matches too (Postfix's "unknown").
func DefaultS25R() []S25RRule {
	rules := []struct{ name, re string }{
		{"rule1", `^[^.]*[0-9][^0-9.]+[0-9].*\.`},               // digits, non-digits, digits in the lowest label
		{"rule2", `^[^.]*[0-9]{5}`},                             // five digits in a row in the lowest label
		{"rule3", `^([^.]+\.)?[0-9][^.]*\.[^.]+\..+\.[a-z]`},    // first or second label starts with a digit
		{"rule4", `^[^.]*[0-9]\.[^.]*[0-9]-[0-9]`},              // digit-dot then digit-dash-digit
		{"rule5", `^[^.]*[0-9]\.[^.]*[0-9]\.[^.]+\..+\.`},       // two labels ending in digits, five labels or more
		{"rule6", `^(dhcp|dialup|ppp|[achrsvx]?dsl)[^.]*[0-9]`}, // access-network words
	}
	out := make([]S25RRule, len(rules))
	for i, r := range rules {
		out[i] = S25RRule{Name: r.name, Pattern: regexp.MustCompile("(?i)" + r.re)}
	}
	return out
}

// S25R matches client names against rules, with an allow list for known
// senders whose names look dynamic (the S25R "whitelist").
type S25R struct {
	Rules []S25RRule
	// AllowNames are regular expressions for names never matched.
	AllowNames []*regexp.Regexp
	// AllowIPs are networks never matched.
	AllowIPs []netip.Prefix
}

// NewS25R compiles allow-list patterns; rules nil means DefaultS25R.
func NewS25R(rules []S25RRule, allowNames []string, allowIPs []netip.Prefix) (*S25R, error) {
	if rules == nil {
		rules = DefaultS25R()
	}
	s := &S25R{Rules: rules, AllowIPs: allowIPs}
	for _, a := range allowNames {
		re, err := regexp.Compile("(?i)" + a)
		if err != nil {
			return nil, fmt.Errorf("conncheck: S25R allow pattern %q: %w", a, err)
		}
		s.AllowNames = append(s.AllowNames, re)
	}
	return s, nil
}

// Match reports the rule a client matches: name is its verified host name
// ("" or "unknown" when it has none).
func (s *S25R) Match(ip netip.Addr, name string) (rule string, matched bool) {
	for _, p := range s.AllowIPs {
		if p.Contains(ip.Unmap()) {
			return "", false
		}
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, re := range s.AllowNames {
		if name != "" && re.MatchString(name) {
			return "", false
		}
	}
	if name == "" || name == "unknown" {
		return "no verified host name", true
	}
	for _, r := range s.Rules {
		if r.Pattern.MatchString(name) {
			return r.Name, true
		}
	}
	return "", false
}
