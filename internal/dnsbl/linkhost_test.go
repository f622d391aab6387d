package dnsbl

import (
	"testing"

	"mailwall/internal/phish"
)

// linkHostCases are links whose hosts the shortcut and url.Parse must
// read alike, among them those the shortcut must leave to url.Parse.
var linkHostCases = []string{
	"https://www.example.test/account/statement?id=4711",
	"HTTP://WWW.Example.TEST", "http://a.test?x#y", "http://a.test#frag/x", "https://a.test/p%zz",
	"https://a.test/%41", "http://a.test:8080/x", "http://user@a.test/", "http://[2001:db8::1]/",
	"http://192.0.2.1/x", "http:///path", "http://", "https://a.test/\x7f", "https://a.test/ x",
	"http://a_b.test/", "http://ex%61mple.test/", "http://a.test\x00/", "http://münchen.test/",
	"https://a.test/päth", "http://a.test/?q=%zz", "ftp://a.test/", "www.example.test/x", "mailto:a@b.test",
	"http://-a-.test.", "https://a.test:/", "http://a..test/",
}

// TestLinkHostPlain: linkHost's shortcut (phish.PlainHTTPHost), where it
// answers, answers as its url.Parse does.
func TestLinkHostPlain(t *testing.T) {
	plain := 0
	for _, raw := range linkHostCases {
		if h, ok := phish.PlainHTTPHost(raw); ok {
			plain++
			if want := parsedLinkHost(raw); h != want {
				t.Errorf("%q: shortcut %q, url.Parse %q", raw, h, want)
			}
		}
	}
	if plain < 8 {
		t.Errorf("the shortcut read %d of the links, want at least 8 (the plain ones)", plain)
	}
	if got := linkHost("https://www.example.test/account/statement?id=4711"); got != "www.example.test" {
		t.Errorf("linkHost: %q", got)
	}
}
