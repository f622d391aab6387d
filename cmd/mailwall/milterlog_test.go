package main

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/milter"
	"mailwall/internal/verdict"
)

// TestMilterVerdictLogLine: the "message" line carries the header From
// domain, the Message-ID, the size, the check's duration and, for mail
// signed here, the key (d=, s=, a=), so one grep of mail.log finds a
// message and says how it went.
func TestMilterVerdictLogLine(t *testing.T) {
	const body = "hello\r\n"
	for _, tc := range []struct {
		name string
		r    verdict.Result
		want []string
	}{
		{"received", verdict.Result{Action: verdict.Accept, DMARC: dmarc.Result{HeaderFrom: "sender.example"}},
			[]string{"header_from=sender.example", "message_id=<m1@sender.example>", "duration=12ms", `signed_with=""`}},
		{"signed", verdict.Result{Action: verdict.Accept, Internal: true, Signed: true,
			Headers: []verdict.HeaderField{{Name: "DKIM-Signature", Value: " v=1; a=ed25519-sha256; c=relaxed/relaxed; d=ours.example;\n\ts=sel2026; t=1; h=from; bh=x; b=y"}}},
			[]string{"header_from=ours.example", `signed_with="d=ours.example s=sel2026 a=ed25519-sha256"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			f := &milterFilter{log: slog.New(slog.NewTextHandler(&buf, nil))}
			var m milter.Macros
			f.MailFrom("<a@sender.example>", nil, &m)
			var size int
			for _, h := range [][2]string{{"From", " Someone <a@Ours.example>"}, {"Message-ID", " <m1@sender.example>"}} {
				f.Header(h[0], h[1])
				size += len(h[0]) + len(h[1]) + 3
			}
			f.Body([]byte(body))
			size += 2 + len(body)
			f.afterwards(&tc.r, 12*time.Millisecond)()
			line := buf.String()
			for _, want := range append(tc.want, "size="+strconv.Itoa(size)) {
				if !strings.Contains(line, " "+want) {
					t.Errorf("log line lacks %s:\n%s", want, line)
				}
			}
		})
	}
	if got := milterFromDomain(&verdict.Result{}, []dkim.Field{dkim.NewField("From", " a@b.example")}); got != "b.example" {
		t.Errorf("bare From: %q", got)
	}
}
