package phish

import (
	"net/url"
	"strings"
	"testing"
)

// plainLinks are links PlainHTTPHost must read as url.Parse does, or
// leave to it.
var plainLinks = []string{
	"https://www.example.test/account/statement?id=4711",
	"HTTP://WWW.Example.TEST", "http://a.test?x#y", "http://a.test#frag/x", "https://a.test/p%zz",
	"https://a.test/%41", "http://a.test:8080/x", "http://user@a.test/", "http://user:pw@a.test/", "http://[2001:db8::1]/",
	"http://192.0.2.1/x", "http:///path", "http://", "https://a.test/\x7f", "https://a.test/ x",
	"http://a_b.test/", "http://ex%61mple.test/", "http://a.test\x00/", "http://münchen.test/",
	"https://a.test/päth", "http://a.test/?q=%zz", "ftp://a.test/", "www.example.test/x", "mailto:a@b.test",
	"http://-a-.test.", "https://a.test:/", "http://a..test/", "https://paypal.com@evil.test/",
}

// parsedHTTPHost is what the rules read of an http or https link through
// url.Parse: its host in lower case and whether it has user information;
// ok is false for a link url.Parse refuses or another scheme.
func parsedHTTPHost(raw string) (host string, user, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false, false
	}
	return strings.ToLower(u.Hostname()), u.User != nil, true
}

// TestPlainHTTPHost: where PlainHTTPHost answers, url.Parse reads the
// link as an http or https link to the same host, without user
// information; the plain links are most.
func TestPlainHTTPHost(t *testing.T) {
	plain := 0
	for _, raw := range plainLinks {
		h, ok := PlainHTTPHost(raw)
		if !ok {
			continue
		}
		plain++
		if want, user, pok := parsedHTTPHost(raw); !pok || h != want || user {
			t.Errorf("%q: %q, url.Parse %q (ok %v, user information %v)", raw, h, want, pok, user)
		}
	}
	if plain < 8 {
		t.Errorf("%d of the links read as plain, want at least 8", plain)
	}
}

// FuzzPlainHTTPHost: for any link, PlainHTTPHost answers as url.Parse
// or not at all.
func FuzzPlainHTTPHost(f *testing.F) {
	for _, raw := range plainLinks {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if h, ok := PlainHTTPHost(raw); ok {
			if want, user, pok := parsedHTTPHost(raw); !pok || h != want || user {
				t.Errorf("%q: %q, url.Parse %q (ok %v, user information %v)", raw, h, want, pok, user)
			}
		}
	})
}
