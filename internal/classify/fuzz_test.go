package classify

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"mailwall/internal/phish"
)

// FuzzExtract: any message gives at most MaxFeatures features, each hash
// once, each with a name, without a panic; a trained model predicts a
// probability for it.
func FuzzExtract(f *testing.F) {
	f.Add("From: Amazon <amozon@x.test>\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=Shift_JIS\r\nContent-Transfer-Encoding: base64\r\n\r\nPGEgaHJlZj0iaHR0cDovL3guZXhhbXBsZS8iPnd3dy5hbWF6b24uY28uanA8L2E+\r\n--b--\r\n")
	f.Add("From: Microsoft account team ,_<no-reply@x.test>\r\nReply-To: =?ISO-2022-JP?B?GyRCM1g5OxsoQg==?= <b@c.test>\r\n\r\nお客様のアカウント http://www.yahoo.co:jp@h.test/ phishing@pot pa\u200bypal\r\n")
	f.Add("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Disposition: attachment; filename=\"x.pdf.exe\"\r\n\r\n--a--\r\n")
	f.Add("no header at all")
	m := NewBayes(minBits)
	x := NewExtractor()
	m.Learn(x.Extract(parse("Subject: a\n\nspam words\n")).Clone(), true)
	m.Learn(x.Extract(parse("Subject: b\n\nham words\n")).Clone(), false)
	f.Fuzz(func(t *testing.T, raw string) {
		fields, body := ParseMessage([]byte(raw))
		v := x.Extract(&Message{Fields: fields, Body: body, Recipients: []string{"phishing@pot"}, Extra: []string{raw[:min(len(raw), 10)]}})
		if len(v.Hashes) > MaxFeatures || len(v.ends) != len(v.Hashes) {
			t.Fatalf("%d features, %d names", len(v.Hashes), len(v.ends))
		}
		seen := map[uint64]bool{}
		for i, h := range v.Hashes {
			if seen[h] || h == 0 || v.Name(i) == "" {
				t.Fatalf("feature %d %q hash %x", i, v.Name(i), h)
			}
			seen[h] = true
		}
		if p := m.Predict(v, make([]float64, len(v.Hashes))); !(p >= 0 && p <= 1) {
			t.Fatalf("probability %v", p)
		}
	})
}

// FuzzDecodeCompact: any bytes either are refused or decode to a model
// that encodes back to a model of the same counts, without a panic and
// without a table larger than the encoding allows.
func FuzzDecodeCompact(f *testing.F) {
	m := NewBayes(minBits)
	x := NewExtractor()
	m.Learn(x.Extract(parse("Subject: a\n\nspam words\n")).Clone(), true)
	m.Learn(x.Extract(parse("Subject: b\n\nham words\n")).Clone(), false)
	good, err := EncodeCompact(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(compactMagic + "\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeCompact(b)
		if err != nil {
			return
		}
		got.densify() // the decoder keeps it sparse
		if len(got.table) != 1<<got.bits || got.bits < minBits || got.bits > maxBits {
			t.Fatalf("table of %d buckets, bits %d", len(got.table), got.bits)
		}
		again, err := EncodeCompact(got)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeCompact(again)
		if err == nil {
			back.densify()
		}
		if err != nil || back.nJunk != got.nJunk || back.nHam != got.nHam || !slices.Equal(back.table, got.table) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

// FuzzTokenizer: on any ASCII text without links or addresses, the
// tokenizer's features are those of its definition (tokenOracle), in
// the same order, after any text before in the same extractor.
func FuzzTokenizer(f *testing.F) {
	f.Add("The quick brown fox jumps over the lazy dog, again and again and again.\r\n", 20)
	f.Add("go stop go stop go stop www.example.test go stop 0123 abc-def", 100)
	f.Add("a b c a b c ab abc ", 1000)
	x := NewExtractor()
	f.Fuzz(func(t *testing.T, text string, times int) {
		b := []byte(text)
		for i, c := range b {
			if c >= 0x80 || c == ':' || c == '@' {
				b[i] = ' '
			}
		}
		text = strings.Repeat(string(b), min(max(times, 1), 1<<16/max(len(b), 1)))
		x.Extract(&Message{Content: &phish.Content{}})
		before := len(x.v.Hashes)
		x.tok.run(x, "word", text)
		wantH, wantN := tokenOracle("word", text, MaxFeatures-before)
		if !slices.Equal(x.v.Hashes[before:], wantH) || !slices.Equal(names(&x.v)[before:], wantN) {
			t.Fatalf("%d features, the definition's %d", len(x.v.Hashes)-before, len(wantH))
		}
	})
}

// FuzzParseKept: any bytes are refused or read as at most MaxFeatures
// hashes, each within the form's top bits, without a panic; what is
// read keeps again as a blob that reads back the same (in the newest
// form for its recipient or none).
func FuzzParseKept(f *testing.F) {
	const key = "000102030405060708090a0b0c0d0e0f"
	x := NewExtractor()
	v := x.Extract(parse("From: a@example.test\nSubject: hello\n\nverify your account now\n"))
	f.Add(Kept(key, v))
	f.Add(KeptFor(key, v, 0x1234))
	f.Add(append([]byte("mwf2"), make([]byte, 16+4*3)...))
	f.Add(append([]byte("mwf3"), make([]byte, 16+8+4)...))
	f.Add(append([]byte("mwf4"), make([]byte, 16+2)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, got, salt, err := ParseKeptFor(b)
		if err != nil {
			return
		}
		if len(got.Hashes) > MaxFeatures || len(got.ends) != len(got.Hashes) {
			t.Fatalf("%d hashes, %d names", len(got.Hashes), len(got.ends))
		}
		width := keptBits
		if salt != 0 || bytes.HasPrefix(b, keptMagic32) {
			width = keptRcptBits
		}
		for _, h := range got.Hashes {
			if h<<width != 0 {
				t.Fatalf("hash %x past its top %d bits", h, width)
			}
		}
		k2, again, salt2, err := ParseKeptFor(KeptFor(k, got, salt))
		want := slices.Clone(got.Hashes)
		if salt == 0 {
			for i := range want {
				want[i] = want[i] >> (64 - keptBits) << (64 - keptBits)
			}
		}
		slices.Sort(want)
		if err != nil || k2 != k || salt2 != salt || !slices.Equal(slices.Sorted(slices.Values(again.Hashes)), want) {
			t.Fatalf("kept again: %q %x %v", k2, salt2, err)
		}
	})
}
