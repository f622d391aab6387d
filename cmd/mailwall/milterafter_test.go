package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/milter"
	"mailwall/internal/spf"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// TestMilterAfterReplyLine: the "message" line whole (its time left
// out), with and without the store's record, whose DKIM summary and
// client address it takes, for a client's address plain, IPv4-mapped
// and absent: the lines here are the ones the line made before it took
// them from the record (2026-12).
func TestMilterAfterReplyLine(t *testing.T) {
	rec := afterRecorder(t)
	r := verdict.Result{Action: verdict.Quarantine, Stage: "phish", Verdict: "fail", Reasons: []string{"phish: look-alike", "dnsbl: listed"},
		SPF:      spf.Outcome{Result: spf.Pass, Domain: "sender.example", Mechanism: "ip4:198.51.100.7"},
		DMARC:    dmarc.Result{Result: dmarc.Pass, HeaderFrom: "sender.example"},
		DKIM:     []dkim.Result{{Status: dkim.Pass, Domain: "sender.example", Selector: "s1"}, {Status: dkim.Fail, Domain: "esp.example", Selector: "s2"}},
		Analyses: []verdict.Analysis{{Name: "phish", Result: analysis.Result{Hits: []analysis.Hit{{Rule: "lookalike", Weight: 6}, {Rule: "fresh_domain", Weight: 3}}}}},
		Headers:  []verdict.HeaderField{{Name: "Authentication-Results", Value: " mx.example;\r\n\tspf=pass smtp.mailfrom=a@sender.example"}}}
	r.Hits = r.Analyses[0].Hits
	r.IPRev.Result = "pass"
	r.ARC.Result = "none"
	const tail = ` helo=mail.sender.example from=a@sender.example action=quarantine stage=phish verdict=fail spf=pass dmarc=pass` +
		` dkim="pass:sender.example fail:esp.example" iprev=pass arc=none score=9 rules="lookalike=6,fresh_domain=3"` +
		` reasons="phish: look-alike; dnsbl: listed" header_from=sender.example message_id=<m1@sender.example> size=108 duration=12ms signed_with=""` + "\n"
	for _, c := range []struct {
		name   string
		client netip.Addr
		rec    *store.Recorder
		want   string
	}{
		{"recorded", netip.MustParseAddr("198.51.100.7"), rec, `level=INFO msg=message queue_id=Q1 client=198.51.100.7` + tail},
		{"not recorded", netip.MustParseAddr("198.51.100.7"), nil, `level=INFO msg=message queue_id=Q1 client=198.51.100.7` + tail},
		{"mapped recorded", netip.MustParseAddr("::ffff:198.51.100.7"), rec, `level=INFO msg=message queue_id=Q1 client=::ffff:198.51.100.7` + tail},
		{"mapped", netip.MustParseAddr("::ffff:198.51.100.7"), nil, `level=INFO msg=message queue_id=Q1 client=::ffff:198.51.100.7` + tail},
		{"v6 recorded", netip.MustParseAddr("2001:db8::7"), rec, `level=INFO msg=message queue_id=Q1 client=2001:db8::7` + tail},
		{"local recorded", netip.Addr{}, rec, `level=INFO msg=message queue_id=Q1 client="invalid IP"` + tail},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			noTime := func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}
			f := &milterFilter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime})), rec: c.rec, node: "mx"}
			afterMessage(f, c.client, "mail.sender.example", "a@sender.example",
				[][2]string{{"From", " Someone <a@Sender.example>"}, {"Message-ID", " <m1@sender.example>"}, {"Subject", " =?UTF-8?Q?caf=C3=A9?="}},
				&r, 12*time.Millisecond)
			if got := buf.String(); got != c.want {
				t.Errorf("line\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// afterRecorder is a recorder on a new SQLite store, its own log
// discarded, closed with the test.
func afterRecorder(t *testing.T) *store.Recorder {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "mailwall.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := st.NewRecorder(slog.New(slog.DiscardHandler), 16, func(int) {})
	t.Cleanup(rec.Close)
	return rec
}

// afterMessage passes f one message (a connection from client named
// mail.sender.example, HELO helo, MAIL FROM <from>, queue ID Q1, the
// header fields, "hello" as its body) and runs the work after the reply
// for r, the message having taken took.
func afterMessage(f *milterFilter, client netip.Addr, helo, from string, fields [][2]string, r *verdict.Result, took time.Duration) {
	var m milter.Macros
	f.Connect(milter.Conn{Hostname: "mail.sender.example", Addr: client}, &m)
	f.helo = helo // Helo would check it
	f.MailFrom("<"+from+">", nil, &m)
	f.env.QueueID = "Q1"
	for _, h := range fields {
		f.Header(h[0], h[1])
	}
	f.Body([]byte("hello\r\n"))
	f.afterwards(r, took)()
}
