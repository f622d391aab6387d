package phish

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// TestExtractBrokenParts: what phishing sends broken on purpose is read
// as a client shows it, and each break is reported.
func TestExtractBrokenParts(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, raw string
		links     []string
		problem   bool
	}{
		{"stray = in quoted-printable", "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nPay =ZZ now at=\n http://evil.example/=3Fid=3D1\n", []string{"http://evil.example/?id=1"}, true},
		{"base64 padded in the middle", "Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n" + b64("<p>Hi</p>") + "\n" + b64(`<a href="http://evil.example/">www.paypal.com</a>`) + "\n", []string{"http://evil.example/|www.paypal.com"}, false},
		{"base64 with junk and a cut byte", "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + b64("see http://evil.example/ ") + "!!*\nQ\n", []string{"http://evil.example/"}, true},
		{"no closing boundary", "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nhttp://first.example/\n--b\nContent-Type: text/plain\n\nhttp://last.example/\n", []string{"http://first.example/", "http://last.example/"}, true},
		{"HTML attachment", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee the attached invoice.\n--b\nContent-Type: application/octet-stream; name=\"invoice.html\"\nContent-Disposition: attachment; filename=\"invoice.html\"\nContent-Transfer-Encoding: base64\n\n" + b64(`<form action="http://evil.example/post"></form><a href="http://evil.example/login">Sign in</a>`) + "\n--b--\n", []string{"http://evil.example/login|Sign in"}, false},
		{"text attachment still skipped", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=log.txt\n\nhttp://log.example/\n--b--\n", nil, false},
		{"Content-Type without a semicolon", "Content-Type: TEXT/HTML charset=US-ASCII\n\n<a href=\"http://evil.example/\">x</a>\n", []string{"http://evil.example/|x"}, true},
		{"entities and invisible characters in link text", "Content-Type: text/html\n\n<a href=\"http://evil.example/\">www.pay&#x200B;pal&period;com</a>\n", []string{"http://evil.example/|www.pay\u200bpal.com"}, false},
		{"calendar invitation attached", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee the invitation.\n--b\nContent-Type: text/calendar; method=REQUEST\nContent-Disposition: attachment; filename=invite.ics\n\nBEGIN:VCALENDAR\nDESCRIPTION:Review the document at https://evil.example/doc\nEND:VCALENDAR\n--b--\n", []string{"https://evil.example/doc"}, false},
		{"AMP part", "Content-Type: text/x-amp-html\n\n<a href=\"http://evil.example/\">www.amazon.co.jp</a>\n", []string{"http://evil.example/|www.amazon.co.jp"}, false},
		{"hidden text inside link text", "Content-Type: text/html\n\n<a href=\"http://evil.example/\">www.pay<span style=\"display: none !important\">xq</span>pal.com</a>\n", []string{"http://evil.example/|www.paypal.com"}, false},
		{"relative link under <base>", "Content-Type: text/html\n\n<html><head><base href=\"http://evil.example/kit/\"></head><a href=\"login.php?a=b:c\">Sign in</a> <a href=\"https://ok.example/\">ok</a>\n", []string{"http://evil.example/kit/login.php?a=b:c|Sign in", "https://ok.example/|ok"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields, body := msg(t, tc.raw)
			c := Extract(fields, body)
			var got []string
			for _, l := range c.Links {
				s := l.Href
				if l.Text != "" {
					s += "|" + l.Text
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.links) {
				t.Errorf("links %q, want %q (problems %q)", got, tc.links, c.Problems)
			}
			if (len(c.Problems) > 0) != tc.problem {
				t.Errorf("problems %q, want some: %v", c.Problems, tc.problem)
			}
		})
	}
}

func TestDecodeBounded(t *testing.T) {
	big := strings.Repeat("QUFB", maxPartBytes) // 3 MB... of 'A's decoded
	out, _ := decodeBase64([]byte(big))
	if len(out) != maxPartBytes {
		t.Errorf("base64: %d octets out, want the cap %d", len(out), maxPartBytes)
	}
	out, _ = decodeQP([]byte(strings.Repeat("=41", maxPartBytes)))
	if len(out) != maxPartBytes {
		t.Errorf("quoted-printable: %d octets out, want the cap %d", len(out), maxPartBytes)
	}
	for _, in := range []string{"", "=", "Q", "QQ==QQ", "====", "QUFB=QUFB"} {
		decodeBase64([]byte(in)) // no panic
	}
}

// TestHiddenHTMLText: text a client does not show is not read, and the
// element that hid it ends where it ends, nested or not.
func TestHiddenHTMLText(t *testing.T) {
	raw := "Content-Type: text/html\n\n<p>Your <div style=\"font-size:0px\">lorem <div>ipsum</div> dolor</div>account <span hidden>sit</span>is <font style='opacity:0'>amet</font>locked." +
		"<div style=\"max-height:0;overflow:hidden\">filler</div><span style=\"font-size:0.9em\">Read</span> <img style=\"display:none\" src=x>more</p>\n"
	fields, body := msg(t, raw)
	c := Extract(fields, body)
	if got := strings.Join(strings.Fields(c.Text), " "); got != "Your account is locked. Read more" {
		t.Errorf("text %q", got)
	}
	if want := len("lorem ipsum dolorsitametfiller"); c.Hidden != want {
		t.Errorf("hidden %d octets, want %d", c.Hidden, want)
	}
}
