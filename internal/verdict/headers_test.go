package verdict

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"mailwall/internal/authres"
	"mailwall/internal/dkim"
)

// TestSubjectTagFolded: a folded Subject, as a milter hands it over (LF)
// or as a message has it (CRLF), with a bare CR of the sender's in it,
// is tagged with every line break a CRLF and white space after it, and
// MilterValue sends it on with LF alone. Before issue 23 the CRLF went
// to Postfix as it was, and the message got a bare CR.
func TestSubjectTagFolded(t *testing.T) {
	c := &Checker{Policy: Policy{SubjectTag: "[SUSPICIOUS]"}}
	for _, value := range []string{
		" first line\n second line",
		" first line\r\n\tsecond line",
		" first\r line\r\n second\rline",
		" first line\nsecond line\n",
		" lone\r",
	} {
		fields := []dkim.Field{dkim.NewField("Subject", value)}
		got := c.SubjectTagged(Result{Action: Tag}, fields)
		if !strings.HasPrefix(got, " [SUSPICIOUS] ") {
			t.Errorf("%q: %q", value, got)
		}
		for i := 0; i < len(got); i++ {
			switch got[i] {
			case '\r':
				if i+2 >= len(got) || got[i+1] != '\n' || (got[i+2] != ' ' && got[i+2] != '\t') {
					t.Errorf("%q: CR not part of a fold at %d in %q", value, i, got)
				}
			case '\n':
				if i == 0 || got[i-1] != '\r' {
					t.Errorf("%q: LF without CR at %d in %q", value, i, got)
				}
			}
		}
		if mv := MilterValue(got); strings.Contains(mv, "\r") {
			t.Errorf("%q: milter value %q has a CR", value, mv)
		}
	}
}

// TestAuthResultsBounded: thousands of junk DKIM-Signature fields give
// an Authentication-Results field of a few lines, spf and dmarc first.
// Before issue 23 it had one line per signature (about 40 kB here), and
// Postfix cut it before dmarc=.
func TestAuthResultsBounded(t *testing.T) {
	c, _ := world(t)
	var b strings.Builder
	for i := range 900 { // under the file path's 1,000 fields
		fmt.Fprintf(&b, "DKIM-Signature: v=1; a=rsa-sha256; d=junk%d.test; s=x; h=from; bh=; b=\r\n", i)
	}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}
	r := check(t, c, env, b.String()+msg)
	ar := header(r, "Authentication-Results")
	if len(ar) > 2000 {
		t.Errorf("Authentication-Results is %d octets", len(ar))
	}
	h, err := authres.Parse(ar)
	if err != nil {
		t.Fatalf("%v\n%s", err, ar)
	}
	if len(h.Results) < 3 || h.Results[0].Method != "spf" || h.Results[1].Method != "dmarc" {
		t.Errorf("spf and dmarc not first:\n%s", ar)
	}
	n := 0
	for _, res := range h.Results {
		if res.Method == "dkim" {
			n++
		}
	}
	if n > MaxResultsPerMethod || !strings.Contains(ar, "more dkim results not shown") {
		t.Errorf("%d dkim results:\n%s", n, ar)
	}
}

// TestForgedAuthenticationResultsTrailingDot: our authserv-id written
// with a trailing dot, or in another case, is ours too (RFC 8601 §5).
func TestForgedAuthenticationResultsTrailingDot(t *testing.T) {
	c, _ := world(t)
	forged := "Authentication-Results: mx.rcpt.test.; dmarc=pass header.from=bank.test\r\n" +
		"Authentication-Results: other.test; spf=pass\r\n" +
		"Authentication-Results: MX.RCPT.TEST.;dkim=pass header.d=bank.test\r\n" + msg
	r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, forged)
	if len(r.Remove) != 2 || r.Remove[0].Index != 1 || r.Remove[1].Index != 3 {
		t.Errorf("remove %+v, want the first and third Authentication-Results fields", r.Remove)
	}
}
