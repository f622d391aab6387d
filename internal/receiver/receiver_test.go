package receiver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/receiver"
	"mailwall/internal/sendtest"
	"mailwall/internal/verdict"
)

// lab serves the lab zones plus a DKIM key for example.test, runs a
// receiver with the pipeline on them, and returns the receiver, its
// Maildir, the key and the deliveries seen.
func lab(t *testing.T) (*receiver.Server, string, *dkim.Signer, func() []receiver.Delivery) {
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.PublicKeyRecord(key)
	dns := labtest.Serve(t, append(labtest.LabZones(t), labtest.Zone(t, "_domainkey.example.test", strings.Replace(dkim.ZoneRecord("lab", "", rec), "lab._domainkey", "lab", 1)))...)
	res := &dnsx.Client{Servers: []string{dns.Addr()}, Timeout: time.Second}
	tab, err := conncheck.ParseRegexpTable(strings.NewReader("/^(.+\\.)?desctrl\\.com$/ REJECT\n"), "helo_checks")
	if err != nil {
		t.Fatal(err)
	}
	pipe := verdict.New(res, "mx.rcpt.test")
	pipe.HeloTables = []*conncheck.RegexpTable{tab}
	var mu sync.Mutex
	var got []receiver.Delivery
	maildir := filepath.Join(t.TempDir(), "Maildir")
	s, err := receiver.Listen(receiver.Config{Addr: "127.0.0.1:0", Hostname: "mx.rcpt.test", Maildir: maildir, Domains: []string{"rcpt.test"},
		Pipeline: pipe, Logger: slog.New(slog.DiscardHandler),
		OnDelivery: func(d receiver.Delivery) { mu.Lock(); got = append(got, d); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return s, maildir, &dkim.Signer{Domain: "example.test", Selector: "lab", Key: key}, func() []receiver.Delivery {
		mu.Lock()
		defer mu.Unlock()
		return append([]receiver.Delivery(nil), got...)
	}
}

func send(t *testing.T, server, src, helo, from, to string, signer *dkim.Signer) *sendtest.Result {
	t.Helper()
	m := sendtest.Message{From: from, To: to, Subject: "lab " + src}
	if signer != nil {
		m.Domain, m.Selector, m.Key = signer.Domain, signer.Selector, signer.Key
	}
	msg, err := sendtest.Build(m)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sendtest.Send(context.Background(), sendtest.Options{Server: server, SourceIP: netip.MustParseAddr(src), Helo: helo, Timeout: 10 * time.Second}, from, to, msg)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return r
}

func TestReceiveSignedAlignedMail(t *testing.T) {
	s, maildir, signer, deliveries := lab(t)
	r := send(t, s.Addr(), "127.0.0.2", "mail.example.test", "alice@example.test", "bob@rcpt.test", signer)
	if !r.Accepted() || r.Code != 250 {
		t.Fatalf("refused: %d %s\n%v", r.Code, r.Reply, r.Dialogue)
	}
	ds := deliveries()
	if len(ds) != 1 || ds[0].Path == "" || !strings.HasPrefix(ds[0].Path, filepath.Join(maildir, "new")) {
		t.Fatalf("deliveries %+v", ds)
	}
	b, err := os.ReadFile(ds[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"Return-Path: <alice@example.test>\r\n", "Authentication-Results: mx.rcpt.test;", "spf=pass", "dkim=pass header.d=example.test header.s=lab", "dmarc=pass", "DKIM-Signature: v=1; a=ed25519-sha256", "MIME-Version: 1.0\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stored message lacks %q:\n%s", want, got)
		}
	}
	if fi, _ := os.Stat(ds[0].Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("stored mode %v, want 0600", fi.Mode().Perm())
	}
	// The dialogue is all there: greeting, EHLO, MAIL, RCPT, DATA, the end.
	var lines []string
	for _, l := range r.Dialogue {
		lines = append(lines, l.From+": "+l.Text)
	}
	dialogue := strings.Join(lines, "\n")
	for _, want := range []string{"S: 220 ", "C: EHLO mail.example.test", "C: MAIL FROM:<alice@example.test>", "C: RCPT TO:<bob@rcpt.test>", "C: DATA", "S: 354 ", "C: .", "S: 250 2.0.0", "C: QUIT"} {
		if !strings.Contains(dialogue, want) {
			t.Errorf("dialogue lacks %q:\n%s", want, dialogue)
		}
	}
}

func TestReceiveRefusals(t *testing.T) {
	s, maildir, _, deliveries := lab(t)
	// Claims example.test (p=reject) from a host its SPF does not list.
	r := send(t, s.Addr(), "127.0.0.3", "stranger.example.org", "alice@example.test", "bob@rcpt.test", nil)
	if r.Code != 550 || !strings.Contains(r.Reply, "DMARC") {
		t.Errorf("spoof: %d %q", r.Code, r.Reply)
	}
	ds := deliveries()
	if len(ds) != 1 || ds[0].Path != "" || ds[0].Result.DMARC.Result != "fail" || ds[0].Result.SPF.Result != "fail" {
		t.Errorf("spoof delivery %+v", ds)
	}
	// A HELO in the table: refused at EHLO (and at the HELO fallback).
	r = send(t, s.Addr(), "127.0.0.3", "mail.desctrl.com", "x@desctrl.test", "bob@rcpt.test", nil)
	if r.Code != 554 || !strings.Contains(r.Reply, "Helo command rejected") {
		t.Errorf("helo: %d %q", r.Code, r.Reply)
	}
	// A domain this MX does not serve: relay denied.
	r = send(t, s.Addr(), "127.0.0.2", "mail.example.test", "alice@example.test", "carol@elsewhere.test", nil)
	if r.Code != 554 || !strings.Contains(r.Reply, "Relay access denied") {
		t.Errorf("relay: %d %q", r.Code, r.Reply)
	}
	if files, _ := os.ReadDir(filepath.Join(maildir, "new")); len(files) != 0 {
		t.Errorf("refused mail was stored: %v", files)
	}
}

// selfSigned makes a certificate for mx.rcpt.test, as a lab would.
func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.rcpt.test"}, DNSNames: []string{"mx.rcpt.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestSTARTTLS(t *testing.T) {
	dns := labtest.Lab(t)
	res := &dnsx.Client{Servers: []string{dns}, Timeout: time.Second}
	pipe := verdict.New(res, "mx.rcpt.test")
	s, err := receiver.Listen(receiver.Config{Addr: "127.0.0.1:0", Hostname: "mx.rcpt.test", Maildir: t.TempDir(), Pipeline: pipe,
		Logger: slog.New(slog.DiscardHandler), TLS: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	msg, _ := sendtest.Build(sendtest.Message{From: "alice@example.test", To: "bob@rcpt.test"})
	opts := sendtest.Options{Server: s.Addr(), SourceIP: netip.MustParseAddr("127.0.0.2"), Helo: "mail.example.test", Timeout: 10 * time.Second}

	// A self-signed certificate fails verification: an error, nothing sent.
	if r, err := sendtest.Send(context.Background(), opts, "alice@example.test", "bob@rcpt.test", msg); err == nil || !strings.Contains(err.Error(), "--tls-insecure") {
		t.Errorf("unverifiable certificate: %+v, %v", r, err)
	}
	opts.InsecureTLS = true
	r, err := sendtest.Send(context.Background(), opts, "alice@example.test", "bob@rcpt.test", msg)
	if err != nil || !r.TLS || !r.Accepted() {
		t.Fatalf("insecure TLS: %+v, %v", r, err)
	}
	opts.NoTLS = true
	if r, err := sendtest.Send(context.Background(), opts, "alice@example.test", "bob@rcpt.test", msg); err != nil || r.TLS || !r.Accepted() {
		t.Errorf("no TLS: %+v, %v", r, err)
	}
}
