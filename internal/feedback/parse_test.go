package feedback

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"strings"
	"testing"
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
	// 100 MB of zeros in about 100 KB: stopped at the limit, not read whole.
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write([]byte("<feedback>"))
	zeros := make([]byte, 1<<20)
	for range 100 {
		w.Write(zeros)
	}
	w.Close()
	if _, err := Parse(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("gzip bomb: %v", err)
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

func FuzzParse(f *testing.F) {
	f.Add([]byte(rfc7489Report))
	f.Add(gz([]byte(rfc7489Report)))
	f.Add(zipped("a.xml", []byte(rfc7489Report)))
	f.Add([]byte("<feedback><record><row><count>-1</count></row></record></feedback>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fb, err := parse(data, 1<<20)
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
		for _, a := range atts {
			parse(a.Data, 1<<20)
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
