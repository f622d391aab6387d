package classify

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// pinMessages are messages whose features TestFeaturesPinned pins,
// besides testdata/handwritten: the tokenizer's and the decoders' less
// travelled paths.
var pinMessages = map[string]string{
	"cjk": "From: =?UTF-8?B?5qW95aSp?= <info@rakuten-card.example>\nSubject: =?UTF-8?B?44CQ6YeN6KaB44CR44Kr44O844OJ44Gu44GU5Yip55So56K66KqN?=\nDate: Mon, 1 Dec 2026 10:00:00 +0900\nMessage-ID: <a@x>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" +
		"お客様のアカウントを確認してください。ＡＢＣ１２３ 楽天カード株式会社 https://rakuten-card.example.co.jp/login?id=1\n",
	"html": "From: \"PayPal\" <service@paypa1.test>\nReply-To: x@other.test\nSubject: Your account is limited!!!\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=zz\n\n--zz\nContent-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n" +
		"<html><body><p style=3D\"display:none\">hidden</p><a href=3D\"http://192.0.2.7/p?u=3D1\">www.paypal.com</a> &amp; caf=E9 &#x41;&#66; pa&#8203;ypal</body></html>\n--zz\n" +
		"Content-Type: application/pdf; name=\"inv.pdf\"\nContent-Disposition: attachment; filename=\"inv.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--zz--\n",
	"malformed": "From: Microsoft account team ,_<no-reply@x.test>\nTo: undisclosed-recipients:;\nSubject: a\nX-Mailer: PHPMailer 6.0\n\nWin $1,000,000 now!!! Click http://bit.ly/abc and www.example.test/x\n",
	"empty":     "Subject: \n\n",
}

// pinDigest is a digest of the features of msg as a multiset (their
// order in the vector aside).
func pinDigest(x *Extractor, msg *Message) (string, int) {
	v := x.Extract(msg)
	hs := slices.Clone(v.Hashes)
	slices.Sort(hs)
	h := sha256.New()
	for _, x := range hs {
		h.Write(binary.BigEndian.AppendUint64(nil, x))
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), len(hs)
}

// TestFeaturesPinned: the features extracted from a few messages are
// pinned by a digest of their hashes, so that work on the extractor's
// speed cannot change what a model learnt from them means without this
// failing (a change made on purpose updates the digests, and the
// starter model: make model).
func TestFeaturesPinned(t *testing.T) {
	want := map[string]string{
		"cjk":        "915b521589f92622", // 58 features
		"empty":      "c1f696cc3d300f5c", // 10 features
		"ham-1.eml":  "25457b243238c253", // 156 features
		"ham-2.eml":  "1adb2f2f35e3390d", // 161 features
		"ham-3.eml":  "c132672941b60dca", // 160 features
		"ham-4.eml":  "beeaab2c4b471118", // 143 features
		"html":       "aaf8e288e5a237fa", // 43 features
		"malformed":  "9abceba23d2e1950", // 45 features
		"spam-1.eml": "6c0d51c764ee51fb", // 192 features
		"spam-2.eml": "1e8279c7d02aeaf7", // 194 features
		"spam-3.eml": "eba416cc1e2da55f", // 183 features
		"spam-4.eml": "9ab53aa7808dc684", // 185 features
	}
	msgs := map[string]*Message{}
	files, _ := filepath.Glob(filepath.Join("testdata", "handwritten", "*.eml"))
	if len(files) == 0 {
		t.Fatal("no testdata/handwritten messages")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fields, body := ParseMessage(raw)
		msgs[filepath.Base(f)] = &Message{Fields: fields, Body: body, Recipients: []string{"bob@rcpt.test"}}
	}
	for name, raw := range pinMessages {
		msgs[name] = parse(raw, "bob@rcpt.test")
	}
	x := NewExtractor()
	for _, name := range slices.Sorted(maps.Keys(msgs)) {
		got, n := pinDigest(x, msgs[name])
		// Twice: the extractor's reused buffers must not carry over.
		if again, _ := pinDigest(x, msgs[name]); again != got {
			t.Errorf("%s: %s then %s from one extractor", name, got, again)
		}
		if got != want[name] {
			t.Errorf("%s: features digest %s (%d features), pinned %s", name, got, n, want[name])
		}
	}
}

// TestFeaturesPinnedCorpus: the same over 300 messages of the corpus's
// train split (every class, real mail's odd encodings), one digest of
// all; skipped without the corpus.
func TestFeaturesPinnedCorpus(t *testing.T) {
	msgs, _ := benchMessages(t, 300)
	x := NewExtractor()
	h := sha256.New()
	n := 0
	for _, m := range msgs {
		d, k := pinDigest(x, m)
		h.Write([]byte(d))
		n += k
	}
	const want = "8cacb3b1cd7dd492" // 240 messages, 193761 features
	if got := hex.EncodeToString(h.Sum(nil)[:8]); got != want {
		t.Errorf("features of %d corpus messages: digest %s (%d features), pinned %s", len(msgs), got, n, want)
	}
}
