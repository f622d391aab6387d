package spf

import (
	"net/netip"
	"strings"
)

// HeaderInfo is the SMTP context a Received-SPF field records (§9.1).
type HeaderInfo struct {
	ClientIP     netip.Addr
	Helo         string
	EnvelopeFrom string // the MAIL FROM as given; empty for a bounce
	Receiver     string // empty writes "<UNKNOWN>", as policyd-spf's Hide_Receiver does
}

// ReceivedSPF returns the value of a Received-SPF header field in the form
// postfix-policyd-spf-python writes, for example
//
//	Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.2; helo=mx.example.test; envelope-from=a@example.test; receiver=<UNKNOWN>
//
// Errors carry their reason in the comment:
// "Permerror (mailfrom: Void lookup limit of 2 exceeded) identity=...".
func ReceivedSPF(o Outcome, h HeaderInfo) string {
	var b strings.Builder
	b.WriteString(ResultName(o.Result))
	b.WriteString(" (")
	b.WriteString(string(o.Identity))
	if o.Problem != "" && (o.Result == PermError || o.Result == TempError) {
		b.WriteString(": ")
		b.WriteString(commentSafe(o.Problem))
	}
	b.WriteString(") identity=")
	b.WriteString(string(o.Identity))
	b.WriteString("; client-ip=")
	b.WriteString(h.ClientIP.Unmap().String())
	b.WriteString("; helo=")
	b.WriteString(valueSafe(h.Helo))
	b.WriteString("; envelope-from=")
	from := h.EnvelopeFrom
	if from == "" {
		from = "<>"
	}
	b.WriteString(valueSafe(from))
	b.WriteString("; receiver=")
	if h.Receiver == "" {
		b.WriteString("<UNKNOWN>")
	} else {
		b.WriteString(valueSafe(h.Receiver))
	}
	return b.String()
}

// ResultName is the capitalised result name policyd-spf uses: Pass, Fail,
// Softfail, Neutral, None, Temperror, Permerror.
func ResultName(r Result) string {
	if r == "" {
		return "None"
	}
	return strings.ToUpper(string(r[:1])) + string(r[1:])
}

// commentSafe keeps a comment on one line and balanced: a DNS-supplied
// problem text must not break the header.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '(' || r == ')':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r == 0x7f:
			return ' '
		}
		return r
	}, s)
}

// valueSafe keeps SMTP-supplied values (HELO, sender) from injecting header
// lines or parameters.
func valueSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == ';' {
			return '_'
		}
		return r
	}, s)
}
