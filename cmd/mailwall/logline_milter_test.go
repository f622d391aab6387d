package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/spf"
	"mailwall/internal/store"
	"mailwall/internal/verdict"
)

// TestMilterLineFastAsSlog: the milter's "message" line through
// newLogger's text handler (formatted by appendTextLine) is slog's
// TextHandler's, but for the time, for values that are quoted or not
// (an empty HELO, spaces, quotes, '=', non-ASCII, invalid UTF-8, a
// control character), recorded or not.
func TestMilterLineFastAsSlog(t *testing.T) {
	rec := afterRecorder(t)
	timeField := regexp.MustCompile(`^time=\S+ `)
	for _, c := range []struct {
		name, helo, from, reason, msgID string
		rec                             *store.Recorder
	}{
		{"plain", "mail.sender.example", "a@sender.example", "phish: look-alike", "<m1@sender.example>", rec},
		{"not recorded", "mail.sender.example", "a@sender.example", "phish: look-alike", "<m1@sender.example>", nil},
		{"empty", "", "", "", "", rec},
		{"quotes and equals", `he"lo`, "a=b@sender.example", `say "hi"`, "<a=b@x>", rec},
		{"non-ASCII", "mäil.example", "jörg@example.test", "naïve\u00a0space", "<é@x>", rec},
		{"invalid UTF-8 and controls", "a\xffb", "x\x01y@example.test", "tab\there", "<\x7f>", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := verdict.Result{Action: verdict.Quarantine, Stage: "phish", Verdict: "fail", Reasons: []string{c.reason, "dnsbl: listed"},
				SPF:      spf.Outcome{Result: spf.Pass, Domain: "sender.example", Mechanism: "ip4:198.51.100.7"},
				DMARC:    dmarc.Result{Result: dmarc.Pass, HeaderFrom: "sender.example"},
				DKIM:     []dkim.Result{{Status: dkim.Pass, Domain: "sender.example", Selector: "s1"}},
				Analyses: []verdict.Analysis{{Name: "phish", Result: analysis.Result{Hits: []analysis.Hit{{Rule: "lookalike", Weight: 6}, {Rule: "fresh", Weight: -3}}}}}}
			r.Hits = r.Analyses[0].Hits
			line := func(log *slog.Logger, buf *bytes.Buffer) string {
				f := &milterFilter{log: log, rec: c.rec, node: "mx"}
				afterMessage(f, netip.MustParseAddr("198.51.100.7"), c.helo, c.from, [][2]string{{"Message-ID", " " + c.msgID}}, &r, 1500*time.Microsecond)
				return timeField.ReplaceAllString(buf.String(), "")
			}
			var fast, slow bytes.Buffer
			h := newTextLog(&fast, nil)
			got := line(slog.New(h), &fast)
			want := line(slog.New(slog.NewTextHandler(&slow, nil)), &slow)
			if got != want || got == "" {
				t.Errorf("newLogger's line\n%q\nslog's\n%q", got, want)
			}
		})
	}
}
