package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slogTextLine is the line slog's own TextHandler writes for the record.
func slogTextLine(t time.Time, level slog.Level, msg string, attrs []slog.Attr) string {
	var buf bytes.Buffer
	rec := slog.NewRecord(t, level, msg, 0)
	rec.AddAttrs(attrs...)
	_ = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(context.Background(), rec)
	return buf.String()
}

// textLineStrings are values TextHandler quotes or not for different
// reasons: empty, white space, '=', quotes, backslashes, controls, DEL,
// non-ASCII letters and spaces, U+FFFD, invalid UTF-8, unprintables.
var textLineStrings = []string{
	"", " ", "a", "abc", "a b", "a=b", "=", `"`, `a"b`, `\`, `a\b`, `\"`, "\t", "a\nb", "\r\n", "\x00", "\x1f", "\x7f",
	"é", "naïve", "日本語", "a\u00a0b", "\u2028", "\u3000", "\ufffd", "\xff", "a\xc3", "\xc3\x28", "\xed\xa0\x80",
	"\u200b", "\u00ad", "\U0001F600", "\U0010FFFF", "~!@#$%^&*()_+-{}[]|;:',.<>/?`", "4Xyz12AbC", "203.0.113.7",
	"2001:db8::1", "spf: fail; dmarc: reject", "rule_a,rule_b", "<id@example.test>", "d=example.test s=sel a=ed25519-sha256",
	strings.Repeat("x", 300), strings.Repeat("a b", 100),
}

func TestTextLineAsSlog(t *testing.T) {
	at := time.Date(2026, 12, 6, 15, 4, 5, 999_999_999, time.FixedZone("x", 3600))
	type tc struct {
		name  string
		t     time.Time
		level slog.Level
		msg   string
		attrs []slog.Attr
	}
	cases := []tc{
		{"message line", time.Now(), slog.LevelInfo, "message", []slog.Attr{slog.String("queue_id", "4Xyz12AbC"), slog.String("client", "203.0.113.7"),
			slog.String("helo", ""), slog.Int("score", -3), slog.String("reasons", "spf: fail; dmarc: reject"), slog.Int64("size", 1<<20),
			slog.Duration("duration", 1234567*time.Nanosecond), slog.String("signed_with", "")}},
		{"zero time", time.Time{}, slog.LevelWarn, "w", nil},
		{"nanoseconds 999", at, slog.LevelError + 2, "a message", nil},
		{"utc", at.UTC(), slog.LevelDebug - 1, "", nil},
		{"numbers", at, slog.LevelInfo, "n", []slog.Attr{slog.Int64("min", math.MinInt64), slog.Uint64("max", math.MaxUint64),
			slog.Float64("f", 1.5e-7), slog.Float64("nan", math.NaN()), slog.Float64("inf", math.Inf(-1)), slog.Bool("t", true), slog.Bool("f", false)}},
		{"keys", at, slog.LevelInfo, "k", []slog.Attr{slog.String("a b", "x"), slog.String("é", "y"), slog.String("a=b", "z")}},
	}
	for _, d := range []time.Duration{0, 1, 999, time.Microsecond, 1500 * time.Microsecond, time.Second, 61 * time.Minute, -time.Hour - 1, math.MinInt64, math.MaxInt64} {
		cases = append(cases, tc{"duration " + d.String(), at, slog.LevelInfo, "d", []slog.Attr{slog.Duration("duration", d)}})
	}
	for _, s := range textLineStrings {
		cases = append(cases, tc{"string " + strconvQuoteShort(s), at, slog.LevelInfo, s, []slog.Attr{slog.String("v", s), slog.String("w", s+s)}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := appendTextLine(nil, c.t, c.level, c.msg, c.attrs)
			if !ok {
				t.Fatal("not formatted")
			}
			if want := slogTextLine(c.t, c.level, c.msg, c.attrs); string(got) != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func strconvQuoteShort(s string) string {
	if len(s) > 20 {
		s = s[:20]
	}
	return strings.ToValidUTF8(s, "?")
}

// TestTextLineLeavesToSlog: kinds appendTextLine does not format, and a
// key that is empty, go to the TextHandler through writeLine, the line
// still slog's.
func TestTextLineLeavesToSlog(t *testing.T) {
	at := time.Date(2026, 12, 6, 15, 4, 5, 0, time.UTC)
	for _, attrs := range [][]slog.Attr{
		{slog.Any("err", errors.New("a b"))},
		{slog.Time("t", at)},
		{slog.Group("g", slog.String("a", "b"))},
		{slog.String("", "v")},
		{slog.String("a", "b"), slog.Any("list", []string{"x", "y"})},
	} {
		if _, ok := appendTextLine(nil, at, slog.LevelInfo, "m", attrs); ok {
			t.Errorf("%v: formatted, want left to slog", attrs)
		}
		var buf bytes.Buffer
		h := newTextLog(&buf, nil)
		if err := h.writeLine(at, slog.LevelInfo, "m", attrs); err != nil {
			t.Fatal(err)
		}
		if want := slogTextLine(at, slog.LevelInfo, "m", attrs); buf.String() != want {
			t.Errorf("got  %q\nwant %q", buf.String(), want)
		}
	}
}

// TestTextLogAsTextHandler: newLogger's text handler writes the fast
// line and its own lines to the one writer, and a logger With
// attributes still prints them.
func TestTextLogAsTextHandler(t *testing.T) {
	var buf bytes.Buffer
	h := newTextLog(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})
	log := slog.New(h)
	at := time.Date(2026, 12, 6, 15, 4, 5, 0, time.UTC)
	if err := h.writeLine(at, slog.LevelInfo, "message", []slog.Attr{slog.String("queue_id", "Q1")}); err != nil {
		t.Fatal(err)
	}
	log.With("via", "milter").Info("hello", "n", 1)
	log.Debug("filtered")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q, want 2", lines)
	}
	if want := "time=2026-12-06T15:04:05.000Z level=INFO msg=message queue_id=Q1"; lines[0] != want {
		t.Errorf("fast line %q, want %q", lines[0], want)
	}
	if !strings.HasSuffix(lines[1], " level=INFO msg=hello via=milter n=1") {
		t.Errorf("handler's line %q", lines[1])
	}
}

// FuzzTextLine holds appendTextLine to slog's TextHandler on any message,
// key, string value, number and duration.
func FuzzTextLine(f *testing.F) {
	for _, s := range textLineStrings {
		f.Add(s, "key", s, int64(len(s)), int64(len(s))*1e5, int64(1765033445123456789))
	}
	f.Fuzz(func(t *testing.T, msg, key, val string, n, d, unixNano int64) {
		if key == "" {
			key = "k"
		}
		at := time.Unix(0, unixNano).UTC()
		attrs := []slog.Attr{slog.String(key, val), slog.Int64("n", n), slog.Duration("d", time.Duration(d)), slog.String("v2", msg+val)}
		got, ok := appendTextLine(nil, at, slog.LevelInfo, msg, attrs)
		if !ok {
			t.Fatal("not formatted")
		}
		if want := slogTextLine(at, slog.LevelInfo, msg, attrs); string(got) != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
}

func TestAppendQuotedAsStrconv(t *testing.T) {
	for _, s := range textLineStrings {
		for _, v := range []string{s, "a" + s + "b", s + "\x80" + s, `"` + s + `\`} {
			if got, want := string(appendQuoted([]byte("x"), v)), "x"+strconv.Quote(v); got != want {
				t.Errorf("appendQuoted(%q) = %s, want %s", v, got, want)
			}
		}
	}
}

// FuzzAppendQuoted holds appendQuoted to strconv.Quote.
func FuzzAppendQuoted(f *testing.F) {
	for _, s := range textLineStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendQuoted(nil, s)), strconv.Quote(s); got != want {
			t.Errorf("appendQuoted(%q) = %s, want %s", s, got, want)
		}
	})
}

// FuzzTextNeedsQuoting holds textNeedsQuoting (eight bytes at a time)
// to slog's rule byte by byte and rune by rune, at every offset.
func FuzzTextNeedsQuoting(f *testing.F) {
	for _, s := range textLineStrings {
		f.Add(s)
	}
	f.Add("abcdefgh=abcdefgh")
	f.Add("abcdefghabcdefg\x7f\x80")
	f.Fuzz(func(t *testing.T, s string) {
		for i := range min(len(s), 9) {
			if got, want := textNeedsQuoting(s[i:]), slogNeedsQuoting(s[i:]); got != want {
				t.Errorf("textNeedsQuoting(%q) = %v, want %v", s[i:], got, want)
			}
		}
	})
}

// slogNeedsQuoting is whether log/slog's own TextHandler quotes s as a
// value: a value it leaves as it is is written as s, a quoted one never.
func slogNeedsQuoting(s string) bool {
	return slogTextLine(time.Time{}, slog.LevelInfo, "m", []slog.Attr{slog.String("v", s)}) != "level=INFO msg=m v="+s+"\n"
}

func TestTextNeedsQuotingEveryByte(t *testing.T) {
	for c := range 256 {
		for pos := range 9 {
			b := []byte("abcdefghijklmnop")
			b[pos] = byte(c)
			s := string(b)
			if got, want := textNeedsQuoting(s), slogNeedsQuoting(s); got != want {
				t.Errorf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
}

// TestTextLogOptionsToSlog: a text handler with ReplaceAttr or
// AddSource writes the milter's line through slog, in its form.
func TestTextLogOptionsToSlog(t *testing.T) {
	at := time.Date(2026, 12, 6, 15, 4, 5, 0, time.UTC)
	upper := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == "queue_id" {
			a.Value = slog.StringValue(strings.ToUpper(a.Value.String()))
		}
		return a
	}
	for _, opts := range []*slog.HandlerOptions{{ReplaceAttr: upper}, {AddSource: true}} {
		var buf, want bytes.Buffer
		attrs := []slog.Attr{slog.String("queue_id", "q1")}
		if err := newTextLog(&buf, opts).writeLine(at, slog.LevelInfo, "message", attrs); err != nil {
			t.Fatal(err)
		}
		rec := slog.NewRecord(at, slog.LevelInfo, "message", 0)
		rec.AddAttrs(attrs...)
		_ = slog.NewTextHandler(&want, opts).Handle(context.Background(), rec)
		if buf.String() != want.String() {
			t.Errorf("got  %q\nwant %q", buf.String(), want.String())
		}
	}
}
