package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// textLog is the handler newLogger makes for the text format: slog's
// TextHandler, writing through a lock it shares with writeLine, so that
// a line formatted without a slog.Record (the milter's "message" line,
// one a message: slog's Record and handler state were a third of the
// work after the reply) goes out whole, between the handler's lines as
// the handler's own would. A logger made from it (With, WithGroup) gets
// the TextHandler's own: the fast line has no place for their
// attributes.
type textLog struct {
	*slog.TextHandler
	out  *lockedWriter
	fast bool      // no ReplaceAttr, no AddSource: appendTextLine is the handler's form
	bufs sync.Pool // *[]byte, a line's buffer
}

// lockedWriter serializes its writer's Write calls.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newTextLog(w io.Writer, opts *slog.HandlerOptions) *textLog {
	out := &lockedWriter{w: w}
	fast := opts == nil || (opts.ReplaceAttr == nil && !opts.AddSource)
	return &textLog{TextHandler: slog.NewTextHandler(out, opts), out: out, fast: fast}
}

// maxPooledLine is the largest line buffer kept for the next line: a
// line with a huge value (a long list of reasons) must not pin its
// buffer.
const maxPooledLine = 16 << 10

// writeLine writes the line TextHandler's Handle writes for a record of
// t, level, msg and attrs, formatted here (appendTextLine); when an
// attribute is of a kind appendTextLine leaves to slog, or the handler
// has options that change the form, it hands the record to the
// TextHandler. The caller checks Enabled first, as
// slog.Logger does.
func (h *textLog) writeLine(t time.Time, level slog.Level, msg string, attrs []slog.Attr) error {
	bp, _ := h.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b, ok := (*bp)[:0], false
	if h.fast {
		b, ok = appendTextLine(b, t, level, msg, attrs)
	}
	var err error
	if ok {
		_, err = h.out.Write(b)
	} else {
		rec := slog.NewRecord(t, level, msg, 0)
		rec.AddAttrs(attrs...)
		err = h.Handle(context.Background(), rec)
	}
	if cap(b) <= maxPooledLine {
		*bp = b
		h.bufs.Put(bp)
	}
	return err
}

// appendTextLine appends to b the line slog's TextHandler writes (with
// no ReplaceAttr, no AddSource, no attributes or groups of its own) for
// a record of t, level, msg and attrs, the newline included. It knows
// the string, integer, float, bool and duration kinds; ok is false (and
// b of no use) when an attribute is of another kind or has no key, for
// the TextHandler to format.
func appendTextLine(b []byte, t time.Time, level slog.Level, msg string, attrs []slog.Attr) (_ []byte, ok bool) {
	// handler.go's commonHandler.handle: time (unless zero), level,
	// message, then the record's attributes, space separated.
	sep := ""
	if !t.IsZero() {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, t.Round(0))
		sep = " "
	}
	b = append(b, sep...)
	b = append(b, "level="...)
	b = appendTextString(b, level.String())
	b = append(b, " msg="...)
	b = appendTextString(b, msg)
	for _, a := range attrs {
		if a.Key == "" {
			return b, false
		}
		b = append(b, ' ')
		b = appendTextString(b, a.Key)
		b = append(b, '=')
		// text_handler.go's appendTextValue: strings quoted as needed,
		// the rest as Value.append writes them, never quoted.
		v := a.Value
		switch v.Kind() {
		case slog.KindString:
			b = appendTextString(b, v.String())
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindUint64:
			b = strconv.AppendUint(b, v.Uint64(), 10)
		case slog.KindFloat64:
			b = strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
		case slog.KindBool:
			b = strconv.AppendBool(b, v.Bool())
		case slog.KindDuration:
			b = append(b, v.Duration().String()...)
		default:
			return b, false
		}
	}
	return append(b, '\n'), true
}

// appendRFC3339Millis is slog's: RFC 3339 with exactly three digits of
// the second's fraction, truncated.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...) // drop the 4th digit
}

// appendTextString appends s as TextHandler does: as it is, or quoted
// (strconv.Quote) when textNeedsQuoting.
func appendTextString(b []byte, s string) []byte {
	if textNeedsQuoting(s) {
		return appendQuoted(b, s)
	}
	return append(b, s...)
}

// swarMarked is whether a byte of x is under 0x21 (controls and the
// space), '=', '"', or 0x80 and over. Each test is exact for "any byte":
// a borrow only runs on from a byte that is itself marked.
func swarMarked(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := (x - ones*0x21) &^ x // a byte under 0x21 sets its high bit
	ve := x ^ (ones * '=')       // a byte '=' is zero here
	eq := (ve - ones) &^ ve
	vq := x ^ (ones * '"')
	qu := (vq - ones) &^ vq
	return (less|eq|qu|x)&highs != 0
}

// appendQuoted is strconv.AppendQuote(b, s), the runs of printable ASCII
// that stand as they are copied whole: strconv looks at each rune
// (IsPrint, the escapes), a tenth of the after-reply's work on a
// message's reasons. The other runs go to strconv, their quotes
// dropped: its quoting is rune by rune and an ASCII byte always starts
// one, so the pieces make the whole's.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && quotesAsIs(s[j]) {
			j++
		}
		b = append(b, s[i:j]...)
		if j == len(s) {
			break
		}
		k := j + 1
		for k < len(s) && !quotesAsIs(s[k]) {
			k++
		}
		n := len(b)
		b = strconv.AppendQuote(b, s[j:k])
		b = append(b[:n], b[n+1:len(b)-1]...)
		i = k
	}
	return append(b, '"')
}

// quotesAsIs is whether strconv.Quote writes c as it is: printable
// ASCII but the quote and the backslash.
func quotesAsIs(c byte) bool {
	return c >= ' ' && c < 0x7f && c != '"' && c != '\\'
}

// textNeedsQuoting is text_handler.go's needsQuoting: empty; an ASCII
// byte JSON would escape (a control character or '"', but not '\'), a
// space or '='; invalid UTF-8, U+FFFD, or a rune that is white space or
// not printable.
func textNeedsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	// Eight bytes at a time while they are all ASCII that stands as it
	// is (SWAR: a byte under 0x21, '=' or '"', or one with its high bit
	// set, marks the word); the rest, and a marked word, byte by byte.
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if swarMarked(x) {
			break
		}
	}
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			// json_handler.go's safeSet: all of ' ' to DEL but '"' and '\'.
			if c <= ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
