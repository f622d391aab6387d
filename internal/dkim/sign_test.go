package dkim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

const plainMessage = "From: Joe SixPack <joe@example.test>\r\n" +
	"To: Suzie Q <suzie@shopping.example.net>\r\n" +
	"Subject: Is dinner ready?\r\n" +
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n" +
	"Message-ID: <20030712040037.46341.5F8J@example.test>\r\n" +
	"\r\n" +
	"Hi.  \r\n\r\nWe lost the game.\tAre you hungry yet?\r\n\r\nJoe.\r\n\r\n\r\n"

// testKeys makes an RSA and an Ed25519 key and serves their records under
// example.test as rsa._domainkey and ed._domainkey.
func testKeys(t testing.TB) (map[string]crypto.Signer, dnsx.Resolver) {
	keys := map[string]crypto.Signer{}
	var records []string
	for sel, alg := range map[string]string{"rsa": "rsa", "ed": "ed25519"} {
		k, err := GenerateKey(alg, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keys[sel] = k
		rec, _ := PublicKeyRecord(k)
		records = append(records, ZoneRecord(sel, "example.test", rec))
	}
	s := labtest.Serve(t, labtest.Zone(t, "example.test", records...))
	return keys, dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})
}

func sign(t testing.TB, s *Signer, msg string) string {
	t.Helper()
	field, err := s.Sign(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return field + msg
}

func TestSignVerifyRoundTrip(t *testing.T) {
	keys, res := testKeys(t)
	v := &Verifier{Resolver: res}
	for sel, key := range keys {
		for _, c := range [][2]string{{Relaxed, Relaxed}, {Simple, Simple}, {Relaxed, Simple}, {Simple, Relaxed}} {
			t.Run(fmt.Sprintf("%s %s/%s", sel, c[0], c[1]), func(t *testing.T) {
				s := &Signer{Domain: "example.test", Selector: sel, Key: key, HeaderCanon: c[0], BodyCanon: c[1], Expiration: time.Hour}
				signed := sign(t, s, plainMessage)
				r := verifyString(t, v, signed)
				if len(r) != 1 || r[0].Status != Pass {
					t.Fatalf("%+v\n%s", r, signed)
				}
				if r := verifyString(t, v, strings.Replace(signed, "hungry", "thirsty", 1)); r[0].Status != Fail {
					t.Errorf("body change: %s (%s)", r[0].Status, r[0].Reason)
				}
				if r := verifyString(t, v, strings.Replace(signed, "Subject: Is dinner", "Subject: Was dinner", 1)); r[0].Status != Fail {
					t.Errorf("header change: %s (%s)", r[0].Status, r[0].Reason)
				}
				// A second Subject added after signing breaks it: over-signed.
				if r := verifyString(t, v, strings.Replace(signed, "Subject:", "Subject: Urgent\r\nSubject:", 1)); r[0].Status != Fail {
					t.Errorf("added Subject: %s (%s)", r[0].Status, r[0].Reason)
				}
			})
		}
	}
}

func TestSignedHeaderList(t *testing.T) {
	keys, _ := testKeys(t)
	s := &Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"]}
	field, err := s.Sign(strings.NewReader(plainMessage))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ParseSignature(Field{Raw: field}.Value())
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(sig.Headers, ":")
	if want := "from:from:subject:subject:date:to:to:message-id"; got != want {
		t.Errorf("h=%s, want %s", got, want)
	}
	for _, line := range strings.Split(strings.TrimSuffix(field, "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
	if _, err := (&Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"]}).Sign(strings.NewReader("To: a@b\r\n\r\nx")); err == nil {
		t.Error("signed a message without From")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"rsa", "ed25519"} {
		k, err := GenerateKey(alg, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv, txt, err := WriteKeyFiles(dir, alg, "example.test", k)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(priv)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", priv, fi.Mode().Perm())
		}
		back, err := LoadPrivateKey(priv)
		if err != nil || !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Errorf("%s: reloaded key differs: %v", priv, err)
		}
		b, _ := os.ReadFile(txt)
		for _, q := range strings.Split(string(b), `"`)[1:] {
			if len(q) > 255 {
				t.Errorf("%s: string of %d octets", txt, len(q))
			}
		}
		if _, _, err := WriteKeyFiles(dir, alg, "example.test", k); err == nil {
			t.Errorf("%s: existing key overwritten", priv)
		}
	}
	if _, err := GenerateKey("rsa", 512); err == nil {
		t.Error("512-bit RSA key generated")
	}
	// dkimpy writes Ed25519 keys as a bare base64 seed.
	seed := make([]byte, 32)
	k, err := ParsePrivateKey([]byte(base64.StdEncoding.EncodeToString(seed) + "\n"))
	if err != nil || !k.(ed25519.PrivateKey).Equal(ed25519.NewKeyFromSeed(seed)) {
		t.Errorf("base64 seed: %v", err)
	}
}

// A 50 MB body is hashed as it streams: allocations stay far below its size.
func TestStreamingBodyMemory(t *testing.T) {
	keys, res := testKeys(t)
	const size = 50 << 20
	line := bytes.Repeat([]byte("0123456789 abcdefghij\t"), 3)
	line = append(line, "\r\n"...)
	body := func() io.Reader {
		return io.LimitReader(&repeater{line: line}, size)
	}
	hdr := "From: a@example.test\r\nSubject: big\r\n\r\n"
	s := &Signer{Domain: "example.test", Selector: "ed", Key: keys["ed"]}
	field, err := s.Sign(io.MultiReader(strings.NewReader(hdr), body()))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Resolver: res}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := v.Verify(context.Background(), io.MultiReader(strings.NewReader(field+hdr), body()))
	runtime.ReadMemStats(&after)
	if err != nil || len(r) != 1 || r[0].Status != Pass {
		t.Fatalf("%+v %v", r, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("verifying a 50 MB message allocated %d MB", alloc>>20)
	}
}

type repeater struct {
	line []byte
	off  int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.line[r.off:])
		n += c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}

// requirePeer finds a peer program; MAILWALL_E2E=1 (make test, CI) makes
// its absence a failure.
func requirePeer(t *testing.T, path string) {
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("MAILWALL_E2E") == "1" {
			t.Fatalf("MAILWALL_E2E=1 but %s is missing", path)
		}
		t.Skipf("%s not installed", path)
	}
}

// dkimpy (python3-dkim) signs; mailwall verifies. mailwall signs; dkimpy
// verifies, its DNS pointed at the lab server.
func TestDkimpyInterop(t *testing.T) {
	requirePeer(t, "/usr/bin/dkimsign")
	keys, res := testKeys(t)
	dir := t.TempDir()
	rsaPEM, _ := MarshalPrivateKey(keys["rsa"])
	os.WriteFile(filepath.Join(dir, "rsa.pem"), rsaPEM, 0o600)
	edSeed := base64.StdEncoding.EncodeToString(keys["ed"].(ed25519.PrivateKey).Seed())
	os.WriteFile(filepath.Join(dir, "ed.key"), []byte(edSeed+"\n"), 0o600)
	v := &Verifier{Resolver: res}
	for _, tc := range []struct{ sel, key, alg string }{{"rsa", "rsa.pem", "rsa-sha256"}, {"ed", "ed.key", "ed25519-sha256"}} {
		cmd := exec.Command("/usr/bin/dkimsign", "--signalg", tc.alg, "--hcanon", "relaxed", "--bcanon", "relaxed", tc.sel, "example.test", filepath.Join(dir, tc.key))
		cmd.Stdin = strings.NewReader(plainMessage)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dkimsign %s: %v", tc.alg, err)
		}
		r := verifyString(t, v, string(out))
		if len(r) != 1 || r[0].Status != Pass || r[0].Algorithm != tc.alg {
			t.Errorf("dkimpy %s signature: %+v", tc.alg, r)
		}
		tampered := strings.Replace(string(out), "hungry", "thirsty", 1)
		if r := verifyString(t, v, tampered); r[0].Status != Fail {
			t.Errorf("dkimpy %s signature on a changed body: %+v", tc.alg, r)
		}
	}
	// The other way round.
	addr := dnsServerOf(t, res)
	host, port, _ := strings.Cut(addr, ":")
	os.WriteFile(filepath.Join(dir, "sitecustomize.py"), []byte(fmt.Sprintf(
		"import dns.resolver\n_r = dns.resolver.Resolver(configure=False)\n_r.nameservers = [%q]\n_r.port = %s\ndns.resolver.default_resolver = _r\n", host, port)), 0o644)
	for sel, key := range keys {
		signed := sign(t, &Signer{Domain: "example.test", Selector: sel, Key: key}, plainMessage)
		for _, tc := range []struct {
			msg  string
			pass bool
		}{{signed, true}, {strings.Replace(signed, "Subject: Is", "Subject: Was", 1), false}} {
			cmd := exec.Command("/usr/bin/dkimverify")
			cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
			cmd.Stdin = strings.NewReader(tc.msg)
			out, err := cmd.CombinedOutput()
			if passed := err == nil && strings.Contains(string(out), "signature ok"); passed != tc.pass {
				t.Errorf("dkimverify of mailwall's %s signature (want pass=%v): %v %s", sel, tc.pass, err, out)
			}
		}
	}
}

// OpenDKIM signs (opendkim-testmsg, the library without the milter);
// mailwall verifies.
func TestOpenDKIMInterop(t *testing.T) {
	requirePeer(t, "/usr/sbin/opendkim-testmsg")
	keys, res := testKeys(t)
	dir := t.TempDir()
	rsaPEM, _ := MarshalPrivateKey(keys["rsa"])
	keyPath := filepath.Join(dir, "rsa.private")
	os.WriteFile(keyPath, rsaPEM, 0o600)
	cmd := exec.Command("/usr/sbin/opendkim-testmsg", "-C", "-d", "example.test", "-s", "rsa", "-k", keyPath, "-t", dir)
	cmd.Stdin = strings.NewReader(plainMessage)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("opendkim-testmsg: %v\n%s", err, out)
	}
	// opendkim-testmsg signs with rsa-sha1, its library's default: by
	// default that is a "policy" result (RFC 8301 §3.1); a verifier that
	// accepts rsa-sha1 checks it.
	if r := verifyString(t, &Verifier{Resolver: res}, string(out)); len(r) != 1 || r[0].Status != Policy {
		t.Errorf("OpenDKIM rsa-sha1 signature by default: %+v", r)
	}
	v := &Verifier{Resolver: res, AcceptRSASHA1: true}
	r := verifyString(t, v, string(out))
	if len(r) != 1 || r[0].Status != Pass {
		t.Fatalf("OpenDKIM signature: %+v\n%s", r, out)
	}
	if r := verifyString(t, v, strings.Replace(string(out), "Joe.", "Jim.", 1)); r[0].Status != Fail {
		t.Errorf("OpenDKIM signature on a changed body: %+v", r)
	}
}

// dnsServerOf digs the lab server's address out of the test resolver.
func dnsServerOf(t *testing.T, r dnsx.Resolver) string {
	a, err := r.Query(context.Background(), "rsa._domainkey.example.test", 16)
	if err != nil {
		t.Fatal(err)
	}
	return a.Server
}

// TestKeyChangeTakesEffect: the Verifier keeps parsed keys, by record
// text, so a selector whose record changes (a key rotated in place) is
// checked against the new key at once, not the one parsed before.
func TestKeyChangeTakesEffect(t *testing.T) {
	var records []string
	var keys []crypto.Signer
	for range 2 {
		k, err := GenerateKey("ed25519", 0)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := PublicKeyRecord(k)
		keys = append(keys, k)
		records = append(records, ZoneRecord("sel", "example.test", rec))
	}
	msg := sign(t, &Signer{Domain: "example.test", Selector: "sel", Key: keys[0]}, "From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n")
	v := &Verifier{}
	for i, want := range []Status{Pass, Fail, Pass} {
		v.Resolver = zoneResolver(t, "example.test", records[i%2])
		if r := verifyString(t, v, msg)[0]; r.Status != want {
			t.Errorf("record %d: got %s (%s), want %s", i%2, r.Status, r.Reason, want)
		}
	}
}
