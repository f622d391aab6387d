package dkim

import (
	"bufio"
	"crypto/sha256"
	"strings"
	"testing"
)

// FuzzParseSignature: any DKIM-Signature value parses or errs, never
// panics; accepted ones have the tags RFC 6376 requires.
func FuzzParseSignature(f *testing.F) {
	f.Add(" v=1; a=rsa-sha256; c=relaxed/simple; d=example.com; s=sel; h=from:to; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=AAAA")
	f.Add("v=1; a=ed25519-sha256; d=x; s=y; h=From; bh=YQ==; b=YQ==; l=12; t=1; x=2; i=@x; q=dns/txt")
	f.Add("v=1;;;a=;b")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseSignature(v)
		if err != nil {
			return
		}
		if s.Domain == "" || s.Selector == "" || len(s.Signature) == 0 || len(s.BodyHash) == 0 || len(s.Headers) == 0 {
			t.Fatalf("accepted incomplete signature %+v", s)
		}
		withoutB("DKIM-Signature:" + v + "\r\n")
	})
}

// FuzzParseKey: key records never panic.
func FuzzParseKey(f *testing.F) {
	f.Add("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	f.Add("v=DKIM1; h=sha256; t=y:s; s=email; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB")
	f.Add("p=")
	f.Fuzz(func(t *testing.T, rec string) {
		k, err := ParseKey(rec)
		if err == nil && k.Public == nil {
			t.Fatal("key accepted without a public key")
		}
	})
}

// FuzzBodyCanonicalization: the streaming canonicalizer gives the same
// hash however the body is cut into writes, and never panics.
func FuzzBodyCanonicalization(f *testing.F) {
	f.Add("Hi.  \r\n\r\n\tx \r\n\r\n", 3)
	f.Add("a\rb\n\r\n \t \r\n", 1)
	f.Fuzz(func(t *testing.T, body string, cut int) {
		for _, canon := range []string{Simple, Relaxed} {
			whole := newBodyHasher(sha256.New(), canon, -1)
			whole.Write([]byte(body))
			parts := newBodyHasher(sha256.New(), canon, -1)
			if cut <= 0 {
				cut = 1
			}
			for i := 0; i < len(body); i += cut {
				parts.Write([]byte(body[i:min(i+cut, len(body))]))
			}
			sum := whole.Sum()
			if string(sum) != string(parts.Sum()) {
				t.Fatalf("%s: hash depends on write boundaries (cut %d)", canon, cut)
			}
			ref := sha256.Sum256([]byte(canonBodyReference(body, canon)))
			if string(sum) != string(ref[:]) {
				t.Fatalf("%s canonicalization of %q differs from the reference %q", canon, body, canonBodyReference(body, canon))
			}
		}
	})
}

// canonBodyReference is RFC 6376 §3.4.3 and §3.4.4 written the plain way,
// line by line, to check the streaming canonicalizer against.
func canonBodyReference(body, canon string) string {
	lines := strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
	if strings.HasSuffix(body, "\n") {
		lines = lines[:len(lines)-1] // the last line ended; no partial line follows
	}
	for i, l := range lines {
		if canon == Relaxed {
			l = strings.Join(strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
			if strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t") {
				if l != "" {
					l = " " + l
				}
			}
		}
		lines[i] = l
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		if canon == Simple {
			return "\r\n"
		}
		return ""
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// FuzzReadHeader: arbitrary input yields fields or an error.
func FuzzReadHeader(f *testing.F) {
	f.Add("From: a\r\n b\r\nTo: c\r\n\r\nbody")
	f.Add(" leading continuation\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		fields, err := ReadHeader(bufio.NewReader(strings.NewReader(msg)))
		if err != nil {
			return
		}
		for _, fl := range fields {
			if !strings.HasSuffix(fl.Raw, "\r\n") || !strings.Contains(fl.Raw, ":") {
				t.Fatalf("field %q", fl.Raw)
			}
		}
	})
}

// FuzzSelfCanonical: the vector and word-at-a-time scans find exactly the prefix the
// line-by-line reference does.
func FuzzSelfCanonical(f *testing.F) {
	f.Add("The quick brown fox.\r\nSecond  line\r\n", 0)
	f.Add("ab cd ef \r\n\r\nx\r\n", 3)
	f.Fuzz(func(t *testing.T, p string, off int) {
		// An offset start puts the 8-octet words at every alignment.
		off = max(off, 0) % 8
		p = strings.Repeat("x", off) + "\r\n" + p
		// Plain lines first take the vector scan (64 octets and more)
		// into the fuzzed text.
		long := strings.Repeat("y", 8*off+1) + "\r\n" + strings.Repeat("A plain line.\r\n", 4) + p
		for _, p := range []string{p, long} {
			for _, relaxed := range []bool{false, true} {
				if got, want := selfCanonical([]byte(p), relaxed), selfCanonicalReference(p, relaxed); got != want {
					t.Fatalf("relaxed=%v %q: got %d, want %d", relaxed, p, got, want)
				}
			}
		}
	})
}
