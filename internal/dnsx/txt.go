package dnsx

import "strings"

// JoinTXT joins the character-strings of one TXT record, turning miekg/dns's
// presentation escapes (\" \\ \DDD) back into the raw bytes.
func JoinTXT(parts []string) string {
	if len(parts) == 1 && !strings.Contains(parts[0], `\`) {
		return parts[0]
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(UnescapeTXT(p))
	}
	return b.String()
}

// UnescapeTXT undoes the presentation escapes of one character-string.
func UnescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v <= 255 {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

// EscapeTXT writes raw bytes as one presentation-format character-string
// body, the form miekg/dns expects in dns.TXT.Txt.
func EscapeTXT(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
