package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/sendtest"
)

// errRefused makes send-test exit 1 when the server refuses the message.
var errRefused = errors.New("message refused")

func cmdSendTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("send-test", stderr)
	from := fs.String("from", "", "sender address (envelope and From:)")
	to := fs.String("to", "", "recipient address")
	server := fs.String("server", "", "SMTP server HOST:PORT")
	source := fs.String("source-ip", "", "local address to send from, such as 127.0.0.2 (one machine playing several hosts)")
	host, _ := os.Hostname()
	helo := fs.String("helo", host, "EHLO name")
	subject := fs.String("subject", "", "Subject (default: mailwall send-test)")
	body := fs.String("body", "", "body text (default: a line with the date)")
	signDomain := fs.String("sign-domain", "", "DKIM d= (default: the sender's domain when --key is given)")
	selector := fs.String("selector", "", "DKIM selector")
	keyPath := fs.String("key", "", "DKIM private key file (PEM)")
	insecure := fs.Bool("tls-insecure", false, "STARTTLS without checking the certificate (a lab's self-signed one)")
	noTLS := fs.Bool("no-tls", false, "never use STARTTLS")
	timeout := fs.Duration("timeout", 60*time.Second, "bound on the whole exchange")
	asJSON := fs.Bool("json", false, "print JSON")
	bulk := fs.Bool("bulk", false, "make the message meet the bulk sender requirements (one-click unsubscribe fields, RFC 8058; signed by the From domain: needs --key)")
	unsub := fs.String("unsubscribe", "", "with --bulk: the https URI of List-Unsubscribe (default: one at the From domain)")
	printOnly := fs.Bool("print", false, "print the message instead of sending it (for domain check --sending --message -)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" || *server == "" && !*printOnly || fs.NArg() != 0 || (*keyPath != "") != (*selector != "") || *bulk && *keyPath == "" {
		fmt.Fprintln(stderr, "usage: mailwall send-test --from ADDR --to ADDR --server HOST:PORT [--source-ip IP] [--helo NAME] [--sign-domain D --selector S --key FILE] [--subject S] [--bulk] [--print]")
		return errUsage
	}
	opts := sendtest.Options{Server: *server, Helo: *helo, InsecureTLS: *insecure, NoTLS: *noTLS, Timeout: *timeout}
	if *source != "" {
		ip, err := netip.ParseAddr(*source)
		if err != nil {
			return fmt.Errorf("--source-ip: %w", err)
		}
		opts.SourceIP = ip
	}
	m := sendtest.Message{From: *from, To: *to, Subject: *subject, Body: *body, Bulk: *bulk, Unsubscribe: *unsub}
	if *keyPath != "" {
		key, err := dkim.LoadPrivateKey(*keyPath)
		if err != nil {
			return err
		}
		m.Key, m.Selector, m.Domain = key, *selector, *signDomain
		if m.Domain == "" {
			m.Domain = (*from)[strings.LastIndexByte(*from, '@')+1:]
		}
	}
	msg, err := sendtest.Build(m)
	if err != nil {
		return err
	}
	if *printOnly {
		_, err := io.WriteString(stdout, msg)
		return err
	}
	res, err := sendtest.Send(ctx, opts, *from, *to, msg)
	if *asJSON && res != nil {
		if jerr := writeJSON(stdout, res); jerr != nil {
			return jerr
		}
	} else if res != nil {
		for _, l := range res.Dialogue {
			fmt.Fprintf(stdout, "%s: %s\n", l.From, l.Text)
		}
	}
	if err != nil {
		return err
	}
	if !res.Accepted() {
		if !*asJSON {
			fmt.Fprintf(stdout, "refused: %d %s\n", res.Code, res.Reply)
		}
		return errRefused
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "accepted: %d %s\n", res.Code, res.Reply)
	}
	return nil
}
