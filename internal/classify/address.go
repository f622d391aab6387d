package classify

import "net/mail"

// parseAddress is mail.ParseAddress, for the two shapes most From
// fields have read without it (its parser tries an addr-spec first and
// makes an error of it, a dozen allocations an address): an addr-spec
// "local@domain" and a name-addr "Display Name <local@domain>" whose
// display name is ASCII letters and digits in words one space apart,
// the addr-spec of dot-atoms (RFC 5322 section 3.4.1) of letters,
// digits, '-', '_' and '+'. Anything else goes to mail.ParseAddress;
// TestParseAddress and FuzzParseAddress hold the two to the same
// answers.
func parseAddress(v string) (mail.Address, error) {
	if addrSpec(v) {
		return mail.Address{Address: v}, nil
	}
	if n := len(v); n > 0 && v[n-1] == '>' {
		for i := 0; i < n; i++ {
			if v[i] == '<' {
				if i >= 2 && v[i-1] == ' ' && displayName(v[:i-1]) && addrSpec(v[i+1:n-1]) {
					return mail.Address{Name: v[:i-1], Address: v[i+1 : n-1]}, nil
				}
				break
			}
		}
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		return mail.Address{}, err
	}
	return *a, nil
}

// displayName reports whether s is words of ASCII letters and digits,
// one space apart.
func displayName(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ':
			if s[i-1] == ' ' {
				return false
			}
		case wordByte[c] == 0:
			return false
		}
	}
	return true
}

// addrSpec reports whether s is local@domain, each a dot-atom of ASCII
// letters, digits, '-', '_' and '+' (no dot first, last or twice).
func addrSpec(s string) bool {
	at := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	return at > 0 && dotAtom(s[:at]) && dotAtom(s[at+1:])
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		case wordByte[c] == 0 && c != '-' && c != '_' && c != '+':
			return false
		}
	}
	return true
}
