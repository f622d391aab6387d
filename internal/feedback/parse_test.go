package feedback

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rfc7489Report is an old-style report (no namespace, pct, RFC 7489
// §7.2's sampled_out), as most receivers still send.
const rfc7489Report = `<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <report_id>15798312374961744393</report_id>
    <date_range><begin>1763596800</begin><end>1763683199</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>our.test</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.10</source_ip><count>12</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><header_from>our.test</header_from></identifiers>
    <auth_results>
      <dkim><domain>our.test</domain><result>pass</result><selector>s1</selector></dkim>
      <spf><domain>our.test</domain><result>pass</result></spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>203.0.113.5</source_ip><count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf>
        <reason><type>sampled_out</type></reason></policy_evaluated>
    </row>
    <identifiers><header_from>our.test</header_from></identifiers>
    <auth_results><spf><domain>spoof.example</domain><result>softfail</result></spf></auth_results>
  </record>
</feedback>`

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zipped(name string, b []byte) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	f, _ := w.Create(name)
	f.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestParseFormats(t *testing.T) {
	for name, data := range map[string][]byte{
		"plain": []byte(rfc7489Report), "gzip": gz([]byte(rfc7489Report)), "zip": zipped("google.com!our.test!1763596800!1763683199.xml", []byte(rfc7489Report)),
		"bom": append([]byte("\ufeff"), rfc7489Report...),
	} {
		f, err := Parse(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if f.Metadata.OrgName != "google.com" || f.PolicyPublished.Domain != "our.test" || f.Messages() != 15 || len(f.Records) != 2 ||
			f.Records[1].Row.PolicyEvaluated.Reasons[0].Type != "sampled_out" || f.PolicyPublished.Pct != "100" {
			t.Errorf("%s: %+v", name, f)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	good := rfc7489Report
	for name, c := range map[string]struct {
		data    []byte
		partial bool // something was read and can be kept
	}{
		"empty":          {nil, false},
		"text":           {[]byte("hello, this is not a report"), false},
		"html root":      {[]byte("<html><body>hi</body></html>"), false},
		"truncated":      {[]byte(good[:len(good)/2]), false},
		"truncated gzip": {gz([]byte(good))[:40], false},
		"zip no xml":     {zipped("readme.txt", []byte(good)), false},
		"no records":     {[]byte(strings.Split(good, "<record>")[0] + "</feedback>"), true},
		"bad ip":         {[]byte(strings.Replace(good, "192.0.2.10", "999.1.1.1", 1)), true},
		"bad disp":       {[]byte(strings.Replace(good, "<disposition>none</disposition>", "<disposition>maybe</disposition>", 1)), true},
		"no org":         {[]byte(strings.Replace(good, "<org_name>google.com</org_name>", "", 1)), true},
		"entity bomb": {[]byte(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<feedback><report_metadata><org_name>&lol2;</org_name></report_metadata></feedback>`), false},
	} {
		f, err := Parse(c.data)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if (f != nil) != c.partial {
			t.Errorf("%s: partial result %v, want %v (%v)", name, f != nil, c.partial, err)
		}
	}
}

func TestParseGzipBomb(t *testing.T) {
	// 100 MB in about 100 KB: stopped at the limit, not read whole. The
	// comments are well-formed tokens, each under the token limit.
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write([]byte("<feedback>"))
	comment := []byte("<!--" + strings.Repeat("a", 32<<10) + "-->")
	for range 100 << 20 / len(comment) {
		w.Write(comment)
	}
	w.Close()
	f, n, err := parse(buf.Bytes(), defaultLimits())
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "more than") || n > MaxXMLSize {
		t.Errorf("gzip bomb: %v after %d octets", err, n)
	}
	if f == nil || len(f.Records) != 0 {
		t.Errorf("gzip bomb: %+v", f)
	}
}

// nestedBomb is the attack of issue 23: millions of nested unknown
// elements inside <feedback>, tens of MB that gzip to some tens of KB.
func nestedBomb(depth int) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write([]byte("<feedback>"))
	chunk := []byte(strings.Repeat("<a>", 4096))
	for range depth / 4096 {
		w.Write(chunk)
	}
	chunk = []byte(strings.Repeat("</a>", 4096))
	for range depth / 4096 {
		w.Write(chunk)
	}
	w.Write([]byte("</feedback>"))
	w.Close()
	return buf.Bytes()
}

// allocated is what fn allocates on the heap, in bytes.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// peakHeap is the most fn's live heap grew while it ran, sampled every
// millisecond.
func peakHeap(fn func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			if v := read(); v > base && v-base > peak.Load() {
				peak.Store(v - base)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	fn()
	close(done)
	<-stopped
	return peak.Load()
}

// manyRecords is a valid-looking report with n records.
func manyRecords(n int) []byte {
	head, _, _ := strings.Cut(rfc7489Report, "<record>")
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		fmt.Fprintf(&b, `<record><row><source_ip>10.%d.%d.%d</source_ip><count>1</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
<identifiers><header_from>our.test</header_from></identifiers><auth_results><dkim><domain>our.test</domain><selector>s</selector><result>pass</result></dkim><spf><domain>our.test</domain><result>pass</result></spf></auth_results></record>
`, i>>16&255, i>>8&255, i&255)
	}
	b.WriteString("</feedback>")
	return gz([]byte(b.String()))
}

// TestParseLimits checks each bound of issue 23 item 4 against the
// report that reaches it: refused with ErrLimit, metadata kept, no
// records (a part would be counted as the whole).
func TestParseLimits(t *testing.T) {
	head, _, _ := strings.Cut(rfc7489Report, "<record>")
	record := "<record>" + strings.SplitN(strings.SplitN(rfc7489Report, "<record>", 2)[1], "</record>", 2)[0] + "</record>"
	small := defaultLimits()
	small.records, small.elements = 3, 200
	for name, c := range map[string]struct {
		data []byte
		lim  limits
		want string
	}{
		"nested unknown":     {[]byte(head + strings.Repeat("<x>", 40) + strings.Repeat("</x>", 40) + "</feedback>"), defaultLimits(), "nested more than 32"},
		"nested in record":   {[]byte(head + "<record>" + strings.Repeat("<x>", 31) + strings.Repeat("</x>", 31) + "</record></feedback>"), defaultLimits(), "nested more than 32"},
		"records":            {[]byte(head + strings.Repeat(record, 4) + "</feedback>"), small, "more than 3 records"},
		"elements":           {[]byte(head + strings.Repeat("<x/>", 201) + "</feedback>"), small, "more than 200 elements"},
		"elements in record": {[]byte(head + "<record>" + strings.Repeat("<x/>", MaxRecordElements+1) + "</record></feedback>"), defaultLimits(), "more than 1024 elements in one"},
		"dkim results":       {[]byte(head + "<record><auth_results>" + strings.Repeat("<dkim/>", MaxRecordElements) + "</auth_results></record></feedback>"), defaultLimits(), "elements in one"},
		"long token":         {[]byte(head + "<x a=\"" + strings.Repeat("b", MaxToken) + "\"/></feedback>"), defaultLimits(), "token longer than"},
		"many attributes":    {[]byte(head + "<x" + strings.Repeat(" a=\"\"", MaxToken/5) + "/></feedback>"), defaultLimits(), "token longer than"},
		"zip members":        {zipMany(MaxZipFiles + 1), defaultLimits(), "more than 16 members"},
	} {
		f, _, err := parse(c.data, c.lim)
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
			continue
		}
		if f != nil && (len(f.Records) != 0 || f.Metadata.OrgName != "google.com") {
			t.Errorf("%s: kept %d records, metadata %+v", name, len(f.Records), f.Metadata)
		}
	}
	// At the limits, a report is read.
	if f, _, err := parse([]byte(head+strings.Repeat(record, 3)+"</feedback>"), small); err != nil || len(f.Records) != 3 {
		t.Errorf("3 records at a limit of 3: %v", err)
	}
	// DKIM results past MaxDKIMResults are counted, not kept.
	many := head + "<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated><disposition>none</disposition></policy_evaluated></row>" +
		"<identifiers><header_from>our.test</header_from></identifiers><auth_results>" + strings.Repeat("<dkim><domain>d.test</domain><result>pass</result></dkim>", 100) +
		"<spf><domain>our.test</domain><result>pass</result></spf></auth_results></record></feedback>"
	if f, err := Parse([]byte(many)); err != nil || len(f.Records[0].AuthResults.DKIM) != MaxDKIMResults || f.Records[0].AuthResults.MoreDKIM != 100-MaxDKIMResults ||
		f.Records[0].AuthResults.SPF == nil || f.Records[0].AuthResults.DKIM[0].Domain != "d.test" {
		t.Errorf("100 DKIM results: %v %+v", err, f)
	}
	if _, err := Parse(zipMany(MaxZipFiles)); err != nil {
		t.Errorf("%d zip members: %v", MaxZipFiles, err)
	}
}

func zipMany(n int) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for i := range n {
		f, _ := w.Create(fmt.Sprintf("r%d.xml", i))
		f.Write([]byte(rfc7489Report))
	}
	w.Close()
	return buf.Bytes()
}

// TestParseNestedBomb is issue 23's 65 KB gzip of 9.6 million nested
// unknown elements, which took the daemon from 28 MB to 1.56 GB: now
// refused at depth 32 having allocated under 1 MB.
func TestParseNestedBomb(t *testing.T) {
	bomb := nestedBomb(9_600_000 / 4096 * 4096)
	t.Logf("bomb: %d octets of gzip", len(bomb))
	var err error
	if n := allocated(func() { _, err = Parse(bomb) }); n > 1<<20 {
		t.Errorf("allocated %d bytes", n)
	}
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "nested") {
		t.Errorf("nested bomb: %v", err)
	}
}

// TestParseManyRecords is issue 23's valid-looking report of 205,000
// records (385 MB and 19 s before): refused at the 20,001st record,
// within bounded memory.
func TestParseManyRecords(t *testing.T) {
	data := manyRecords(205_000)
	var (
		f   *Feedback
		err error
	)
	start := time.Now()
	n := peakHeap(func() { f, err = Parse(data) })
	t.Logf("205,000 records: %d octets of gzip, heap grew at most %d bytes, %s", len(data), n, time.Since(start))
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "more than 20000 records") || f == nil || len(f.Records) != 0 {
		t.Fatalf("%v", err)
	}
	if n > 64<<20 {
		t.Errorf("heap grew %d bytes", n)
	}
	// The largest report read: all its records.
	if f, err := Parse(manyRecords(MaxRecords)); err != nil || len(f.Records) != MaxRecords {
		t.Errorf("%d records: %v", MaxRecords, err)
	}
}

func TestParseCounts(t *testing.T) {
	huge := strings.Replace(rfc7489Report, "<count>12</count>", "<count>9223372036854775807</count>", 1)
	f, err := Parse([]byte(huge))
	if err == nil || !strings.Contains(err.Error(), "count 9223372036854775807 not in") {
		t.Errorf("count 2^63-1: %v", err)
	}
	if f.Messages() != MaxCount+3 {
		t.Errorf("messages %d", f.Messages())
	}
	f.Records = append(f.Records, f.Records...)
	for i := range f.Records {
		f.Records[i].Row.Count = math.MaxInt64
	}
	if f.Messages() != 4*MaxCount {
		t.Errorf("messages %d", f.Messages())
	}
}

// TestMessageBudget: one message's attachments share one budget.
func TestMessageBudget(t *testing.T) {
	b := MessageBudget()
	big := gz([]byte(rfc7489Report + "<!--" + strings.Repeat("a", 60<<10) + "-->"))
	parsed := 0
	for range 400 {
		if _, err := b.Parse(big); err != nil {
			if !errors.Is(err, ErrLimit) {
				t.Fatal(err)
			}
			break
		}
		parsed++
	}
	if parsed != MaxAttachments {
		t.Errorf("%d documents parsed, want %d", parsed, MaxAttachments)
	}
	b = Budget{XML: int64(len(rfc7489Report)) + 100, Attachments: 10}
	if _, err := b.Parse([]byte(rfc7489Report)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Parse([]byte(rfc7489Report)); !errors.Is(err, ErrLimit) {
		t.Errorf("second report over the octet budget: %v", err)
	}
	// A message with more report parts than that: the rest not read.
	var parts []byte
	for i := range MaxAttachments + 2 {
		parts = append(parts, fmt.Sprintf("--b\r\nContent-Type: text/xml; name=\"%d.xml\"\r\n\r\n%s\r\n", i, rfc7489Report)...)
	}
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + string(parts) + "--b--\r\n"
	atts, err := Attachments(strings.NewReader(msg))
	if len(atts) != MaxAttachments || !errors.Is(err, ErrLimit) {
		t.Errorf("%d attachments, %v", len(atts), err)
	}
	// A header section without end.
	if _, err := Attachments(strings.NewReader(strings.Repeat("X-A: b\r\n", maxHeader/8+1))); !errors.Is(err, ErrLimit) {
		t.Errorf("endless header: %v", err)
	}
}

// reportMail wraps a report as receivers send it.
func reportMail(filename, mediaType string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: noreply-dmarc-support@google.com\r\nTo: dmarc@our.test\r\nSubject: Report Domain: our.test Submitter: google.com Report-ID: <1>\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThis is a report.\r\n")
	b.WriteString("--b1\r\nContent-Type: " + mediaType + "; name=\"" + filename + "\"\r\nContent-Disposition: attachment; filename=\"" + filename + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := []byte(b64(data))
	for len(enc) > 76 {
		b.Write(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.Write(enc)
	b.WriteString("\r\n--b1--\r\n")
	return b.Bytes()
}

// fuzzLimits are small, so that the fuzzer reaches them (and decompressing
// 20 MB under instrumentation would take seconds).
var fuzzLimits = limits{xml: 1 << 20, records: 8, depth: 8, elements: 200, recordElements: 32, token: 1024, files: 4}

func FuzzParse(f *testing.F) {
	f.Add([]byte(rfc7489Report))
	f.Add(gz([]byte(rfc7489Report)))
	f.Add(zipped("a.xml", []byte(rfc7489Report)))
	f.Add([]byte("<feedback><record><row><count>-1</count></row></record></feedback>"))
	f.Add([]byte("<feedback>" + strings.Repeat("<a>", 20) + "</feedback>"))
	f.Add([]byte("<feedback>" + strings.Repeat("<record/>", 20) + "</feedback>"))
	f.Add(gz([]byte("<feedback><record>" + strings.Repeat("<x/>", 100) + "</record></feedback>")))
	f.Fuzz(func(t *testing.T, data []byte) {
		fb, n, err := parse(data, fuzzLimits)
		if n > fuzzLimits.xml {
			t.Fatalf("read %d octets of XML, limit %d", n, fuzzLimits.xml)
		}
		if fb != nil && len(fb.Records) > fuzzLimits.records {
			t.Fatalf("%d records kept, limit %d", len(fb.Records), fuzzLimits.records)
		}
		if err == nil {
			// Whatever parses cleanly validates and re-marshals.
			if fb.Validate() != nil {
				t.Fatal("Parse accepted what Validate refuses")
			}
			if _, err := Marshal(fb); err != nil {
				t.Fatalf("re-marshal: %v", err)
			}
		}
	})
}

func FuzzAttachments(f *testing.F) {
	f.Add(reportMail("r.xml.gz", "application/gzip", gz([]byte(rfc7489Report))))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\n\r\n--y--\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		atts, _ := Attachments(bytes.NewReader(msg))
		if len(atts) > MaxAttachments {
			t.Fatalf("%d attachments", len(atts))
		}
		for _, a := range atts {
			parse(a.Data, fuzzLimits)
		}
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestAttachments(t *testing.T) {
	msg := reportMail("google.com!our.test!1763596800!1763683199.zip", "application/zip", zipped("r.xml", []byte(rfc7489Report)))
	atts, err := Attachments(bytes.NewReader(msg))
	if err != nil || len(atts) != 1 || atts[0].Filename != "google.com!our.test!1763596800!1763683199.zip" {
		t.Fatalf("%v %+v", err, atts)
	}
	if f, err := Parse(atts[0].Data); err != nil || f.Messages() != 15 {
		t.Errorf("attached report: %v", err)
	}
	// A bare XML body and a text-only message.
	bare := "Content-Type: text/xml\r\n\r\n" + rfc7489Report
	if atts, err := Attachments(strings.NewReader(bare)); err != nil || len(atts) != 1 {
		t.Errorf("bare XML: %v %d", err, len(atts))
	}
	if atts, err := Attachments(strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil || len(atts) != 0 {
		t.Errorf("text message: %v %d", err, len(atts))
	}
}

// TestFuzzLimitsReached: FuzzParse's seeds reach its small limits, so
// that the fuzzer explores the code past them from the start.
func TestFuzzLimitsReached(t *testing.T) {
	for _, c := range []struct {
		seed []byte
		want string
	}{
		{[]byte("<feedback>" + strings.Repeat("<a>", 20) + "</feedback>"), "nested more than 8"},
		{[]byte("<feedback>" + strings.Repeat("<record/>", 20) + "</feedback>"), "more than 8 records"},
		{gz([]byte("<feedback><record>" + strings.Repeat("<x/>", 100) + "</record></feedback>")), "more than 32 elements in one"},
	} {
		if _, _, err := parse(c.seed, fuzzLimits); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.40q: %v, want %q", c.seed, err, c.want)
		}
	}
}
