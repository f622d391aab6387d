package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"mailwall/internal/dkim"
)

func cmdDKIM(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: mailwall dkim keygen|sign|verify ...")
		return errUsage
	}
	switch args[0] {
	case "keygen":
		return cmdDKIMKeygen(args[1:], stdout, stderr)
	case "sign":
		return cmdDKIMSign(args[1:], stdin, stdout, stderr)
	case "verify":
		return cmdDKIMVerify(ctx, args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "mailwall dkim: unknown command %q (keygen, sign, verify)\n", args[0])
	return errUsage
}

func cmdDKIMKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dkim keygen", stderr)
	domain := fs.String("domain", "", "signing domain (d=)")
	selector := fs.String("selector", "", "selector (s=)")
	alg := fs.String("algorithm", "rsa", "rsa or ed25519")
	bits := fs.Int("bits", 2048, "RSA key size (at least 1024; 2048 recommended)")
	out := fs.String("out", ".", "directory for SELECTOR.private (mode 0600) and SELECTOR.txt")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *domain == "" || *selector == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: mailwall dkim keygen --domain D --selector S [--algorithm rsa|ed25519] [--bits N] --out DIR")
		return errUsage
	}
	key, err := dkim.GenerateKey(*alg, *bits)
	if err != nil {
		return err
	}
	priv, txt, err := dkim.WriteKeyFiles(*out, *selector, *domain, key)
	if err != nil {
		return err
	}
	rec, _ := dkim.PublicKeyRecord(key)
	fmt.Fprintf(stdout, "private key: %s (mode 0600)\nDNS record:  %s\n\n%s", priv, txt, dkim.ZoneRecord(*selector, *domain, rec))
	return nil
}

func cmdDKIMSign(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("dkim sign", stderr)
	domain := fs.String("domain", "", "signing domain (d=)")
	selector := fs.String("selector", "", "selector (s=)")
	keyPath := fs.String("key", "", "private key file (PEM, or dkimpy's base64 Ed25519 seed)")
	headers := fs.String("headers", "", "comma-separated header names to sign (default: the usual set)")
	canon := fs.String("c", "relaxed/relaxed", "canonicalization header/body")
	expire := fs.Duration("expire", 0, "signature lifetime (x=); 0 for none")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *domain == "" || *selector == "" || *keyPath == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: mailwall dkim sign --domain D --selector S --key FILE < message > signed")
		return errUsage
	}
	key, err := dkim.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	hc, bc, _ := strings.Cut(*canon, "/")
	s := &dkim.Signer{Domain: *domain, Selector: *selector, Key: key, HeaderCanon: hc, BodyCanon: bc, Expiration: *expire}
	if *headers != "" {
		s.Headers = strings.Split(*headers, ",")
	}
	// The message is read twice (sign, then copy out): keep it in a file
	// rather than memory, so large messages cost no RAM.
	tmp, err := os.CreateTemp("", "mailwall-sign-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, stdin); err != nil {
		return err
	}
	tmp.Seek(0, io.SeekStart)
	field, err := s.Sign(tmp)
	if err != nil {
		return err
	}
	tmp.Seek(0, io.SeekStart)
	w := bufio.NewWriter(stdout)
	w.WriteString(field)
	io.Copy(w, tmp)
	return w.Flush()
}

func cmdDKIMVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("dkim verify", stderr)
	dnsFlag := fs.String("dns", "", "DNS server(s) HOST:PORT, comma separated")
	cfgPath := fs.String("config", "", configFlagHelp)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: mailwall dkim verify [--dns HOST:PORT] [--json] < message")
		return errUsage
	}
	cfg, res, err := loadResolver(*cfgPath, *dnsFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results, err := newDKIMVerifier(cfg.Checks.DKIM, res).Verify(ctx, stdin)
	if err != nil {
		return err
	}
	if *asJSON {
		if results == nil {
			results = []dkim.Result{}
		}
		return writeJSON(stdout, results)
	}
	if len(results) == 0 {
		fmt.Fprintln(stdout, "dkim=none (no signatures)")
	}
	for _, r := range results {
		line := fmt.Sprintf("dkim=%s header.d=%s header.s=%s header.a=%s", r.Status, r.Domain, r.Selector, r.Algorithm)
		if r.Reason != "" {
			line += " (" + r.Reason + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}
