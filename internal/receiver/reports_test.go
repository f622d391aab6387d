package receiver_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/report"
	"mailwall/internal/sendtest"
	"mailwall/internal/store"
)

// reportMail is a report about rcpt.test in a message from from, with
// extra header fields on top.
func reportMail(from, id, extra string) string {
	var xml bytes.Buffer
	zw := gzip.NewWriter(&xml)
	fmt.Fprintf(zw, `<feedback><report_metadata><org_name>Google Inc.</org_name><email>%s</email><report_id>%s</report_id>
<date_range><begin>1763596800</begin><end>1763683199</end></date_range></report_metadata>
<policy_published><domain>rcpt.test</domain><p>none</p></policy_published>
<record><row><source_ip>203.0.113.66</source_ip><count>1000000</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
<identifiers><header_from>rcpt.test</header_from></identifiers></record></feedback>`, from, id)
	zw.Close()
	return extra + "From: " + from + "\r\nTo: dmarc@rcpt.test\r\nSubject: Report Domain: rcpt.test Report-ID: " + id + "\r\nMessage-ID: <" + id + "@x>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: application/gzip; name=r.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(xml.Bytes()) + "\r\n"
}

// TestReportsThroughTheMX: reports the receiver delivers into its
// Maildir are believed on import when the receiver's own
// Authentication-Results say they passed DMARC, and not when a sender
// wrote that field himself (the receiver removes it, RFC 8601 §5).
func TestReportsThroughTheMX(t *testing.T) {
	s, maildir, _, _ := lab(t)
	forgedAR := "Authentication-Results: mx.rcpt.test; dmarc=pass header.from=forger.test\r\n"
	for _, m := range []struct{ src, helo, from, id, extra string }{
		{"127.0.0.2", "mail.example.test", "dmarc@example.test", "genuine", ""},
		{"127.0.0.3", "mx.forger.test", "dmarc@forger.test", "forged", forgedAR},
	} {
		r, err := sendtest.Send(context.Background(), sendtest.Options{Server: s.Addr(), SourceIP: netip.MustParseAddr(m.src), Helo: m.helo, Timeout: 10 * time.Second},
			m.from, "dmarc@rcpt.test", reportMail(m.from, m.id, m.extra))
		if err != nil || !r.Accepted() {
			t.Fatalf("%s: %v %+v", m.id, err, r)
		}
	}
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in := &report.Inbound{Store: st, Domains: []string{"rcpt.test"}, AuthServID: "mx.rcpt.test"}
	res, err := in.ImportMaildir(context.Background(), maildir, false, time.Now())
	if err != nil || res.Reports != 2 || res.Unauthenticated != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	rs, _ := st.ReceivedReports(context.Background(), "rcpt.test", 0)
	for _, r := range rs {
		if r.Authenticated != (r.ReportID == "genuine") {
			t.Errorf("%s: authenticated %v (%s)", r.ReportID, r.Authenticated, r.Auth)
		}
		if r.ReportID == "forged" && !strings.Contains(r.Auth, "dmarc=none") {
			t.Errorf("forged: %s", r.Auth)
		}
	}
	if pic, err := st.Picture(context.Background(), "rcpt.test", time.Unix(0, 0)); err != nil || pic.Messages != 1000000 || pic.Unauthenticated != 1 {
		t.Errorf("picture %v %+v", err, pic)
	}
}
