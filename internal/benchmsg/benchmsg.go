// Package benchmsg writes the message bench/milter sends, for the
// benchmarks that measure one part of mailwall on that same mail: a
// part's figures and bench/milter's then speak of one message. It is
// for benchmarks and tests; the program itself does not import it.
package benchmsg

import "strings"

// Header is the header of bench/milter's messages, before signing:
// sender@example.test to rcpt@rcpt.test, plain text.
const Header = "From: Sender <sender@example.test>\r\nTo: rcpt@rcpt.test\r\nSubject: benchmark\r\n" +
	"Date: Sun, 22 Nov 2026 12:00:00 +0000\r\nMessage-ID: <bench@example.test>\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/plain\r\n\r\n"

// Link is the line with a link that starts the body with a link.
const Link = "Your statement is ready: https://www.example.test/account/statement?id=4711\r\n"

// Line is the sentence the body repeats.
const Line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"

// Body is bench/milter's body of at least size octets (less than a
// Line more): Link first when link, then Line over and over.
func Body(size int, link bool) string {
	var b strings.Builder
	b.Grow(size + len(Line))
	if link {
		b.WriteString(Link)
	}
	for b.Len() < size {
		b.WriteString(Line)
	}
	return b.String()
}
