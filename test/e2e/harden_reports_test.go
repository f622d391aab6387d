package e2e

// Issue 23 items 4, 6 and 9 against the real binary: DMARC aggregate
// reports mailed to the report address through serve's milter (the
// memory a hostile report may take, which reports are believed, counts
// that overflowed), and "mailwall report import/list" printing what a
// report's sender chose.

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"mailwall/internal/labtest"
	"mailwall/internal/milter"
	"mailwall/internal/store"
)

const rpPassword = "correct horse battery"

// rpStart starts serve with reports to dmarc@rcpt.test read as reports
// about rcpt.test, and a dashboard login of admin / rpPassword.
func rpStart(t *testing.T) (*daemon, string) {
	t.Helper()
	root, bin := e2eRoot(t, "mailwall-rp-")
	hash, err := bcrypt.GenerateFromPassword([]byte(rpPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// extra follows "web:\n  listen: ...": its first lines go on with
	// the web section.
	extra := fmt.Sprintf(`  user: admin
  password_hash: %q
reports:
  inbound:
    addresses: [dmarc@rcpt.test]
    domains: [rcpt.test]
`, hash)
	return startDaemon(t, bin, filepath.Join(root, "serve"), daemonSetup{dns: labtest.Lab(t), extra: extra}), bin
}

// rpSender is who a report message comes from, as Postfix tells the
// milter.
type rpSender struct {
	client   netip.Addr
	name     string // the client's host name ("unknown" without PTR)
	helo     string
	mailFrom string
	from     string // the From field
}

// rpReporter passes DMARC: example.test's SPF allows 127.0.0.2, and its
// DMARC record is p=reject.
var rpReporter = rpSender{netip.MustParseAddr("127.0.0.2"), "mail.example.test", "mail.example.test", "dmarc@example.test", "DMARC Reports <dmarc@example.test>"}

// rpForger has no SPF, no DKIM and no PTR; its report says it is Google.
var rpForger = rpSender{netip.MustParseAddr("127.0.0.3"), "unknown", "mx.forger.test", "dmarc@reports.forger.test", "DMARC <dmarc@reports.forger.test>"}

// rpMail mails one report (gzip) to dmarc@rcpt.test through serve's
// milter and returns the reply at the end of the message.
func rpMail(addr, queueID string, s rpSender, filename string, gz []byte) (milter.Reply, error) {
	c, err := milter.Dial("tcp", addr, 30*time.Second)
	if err != nil {
		return milter.Reply{}, err
	}
	defer c.Close()
	step := func(what string) func(milter.Reply, error) error {
		return func(r milter.Reply, err error) error {
			if err != nil || r.Code != 'c' {
				return fmt.Errorf("%s: %v %v", what, r, err)
			}
			return nil
		}
	}
	if err := step("connect")(c.Connect(s.name, s.client, 40000)); err != nil {
		return milter.Reply{}, err
	}
	if err := step("helo")(c.Helo(s.helo)); err != nil {
		return milter.Reply{}, err
	}
	c.Macro('M', "i", queueID)
	if err := step("mail")(c.Mail("<" + s.mailFrom + ">")); err != nil {
		return milter.Reply{}, err
	}
	if err := step("rcpt")(c.Rcpt("<dmarc@rcpt.test>")); err != nil {
		return milter.Reply{}, err
	}
	for _, h := range [][2]string{{"From", s.from}, {"To", "dmarc@rcpt.test"}, {"Subject", "Report Domain: rcpt.test Submitter: " + s.helo + " Report-ID: " + queueID},
		{"Date", time.Now().UTC().Format(time.RFC1123Z)}, {"Message-ID", "<" + queueID + "@" + s.helo + ">"}, {"MIME-Version", "1.0"},
		{"Content-Type", `multipart/mixed; boundary="rp"`}} {
		if _, err := c.Header(h[0], h[1]); err != nil {
			return milter.Reply{}, err
		}
	}
	if _, err := c.EndOfHeaders(); err != nil {
		return milter.Reply{}, err
	}
	var body bytes.Buffer
	fmt.Fprintf(&body, "--rp\r\nContent-Type: text/plain\r\n\r\nA DMARC aggregate report.\r\n--rp\r\nContent-Type: application/gzip; name=%q\r\n"+
		"Content-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n", filename, filename)
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n--rp--\r\n")
	if _, err := c.Body(body.Bytes()); err != nil {
		return milter.Reply{}, err
	}
	_, r, err := c.EndOfMessage()
	return r, err
}

func rpGzip(write func(w io.Writer)) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	write(zw)
	zw.Close()
	return buf.Bytes()
}

// rpNestedBomb is issue 23's 65 KB gzip of 9.6 million nested unknown
// elements (just under the 64 MB of XML the old parser read); tag makes
// each one's bytes different.
func rpNestedBomb(tag string) []byte {
	const n = 9_580_000
	return rpGzip(func(w io.Writer) {
		io.WriteString(w, "<feedback><!--"+tag+"-->")
		for _, el := range []string{"<a>", "</a>"} {
			chunk := []byte(strings.Repeat(el, 4096))
			for range n / 4096 {
				w.Write(chunk)
			}
			io.WriteString(w, strings.Repeat(el, n%4096))
		}
		io.WriteString(w, "</feedback>")
	})
}

// rpReport is a valid-looking report about rcpt.test from org with the
// given record counts (as written), all from 203.0.113.66 and aligned.
func rpReport(org, id string, counts ...string) []byte {
	return rpGzip(func(w io.Writer) {
		fmt.Fprintf(w, `<?xml version="1.0"?><feedback><report_metadata><org_name>%s</org_name><email>noreply@%s</email><report_id>%s</report_id>
<date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
<policy_published><domain>rcpt.test</domain><adkim>r</adkim><aspf>r</aspf><p>none</p></policy_published>
`, org, org, id, time.Now().Add(-24*time.Hour).Unix(), time.Now().Unix())
		// Large reports leave auth_results out, so that 205,000 records
		// stay under the 64 MB of XML the old parser read, as in the issue.
		auth := "<auth_results><spf><domain>rcpt.test</domain><result>pass</result></spf></auth_results>"
		if len(counts) > 1000 {
			auth = ""
		}
		for i, c := range counts {
			ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			if i == 0 {
				ip = "203.0.113.66"
			}
			fmt.Fprintf(w, `<record><row><source_ip>%s</source_ip><count>%s</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
<identifiers><header_from>rcpt.test</header_from></identifiers>%s</record>
`, ip, c, auth)
		}
		io.WriteString(w, "</feedback>")
	})
}

// rpWaitReports waits until the metric of received reports with outcome
// reaches want.
func rpWaitReports(t *testing.T, d *daemon, outcome string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := d.metric(t, `mailwall_dmarc_reports_total{outcome="`+outcome+`"}`)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v reports %s after %s, want %v\n%s", got, outcome, within, want, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rpCPU is serve's user and system CPU time so far.
func rpCPU(t *testing.T, d *daemon) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name in parentheses; utime and stime are
	// the 14th and 15th of the line.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100
}

// TestReportNestedBombThroughMilter mails the nested-element bomb to the
// report address once, then twice at once: it took serve from 28 MB to
// 1.56 GB (3.9 GB for two). Each message is accepted, its report stored
// flagged with the reason, and serve grows under 64 MB.
func TestReportNestedBombThroughMilter(t *testing.T) {
	d, _ := rpStart(t)
	bomb := rpNestedBomb("1")
	t.Logf("bomb: %d octets of gzip", len(bomb))
	base := d.peakRSS(t)
	if r, err := rpMail(d.milter, "BOMB1", rpReporter, "example.test!rcpt.test!1!2.xml.gz", bomb); err != nil || !accepted(r) {
		t.Fatalf("bomb: %v %v", r, err)
	}
	rpWaitReports(t, d, "malformed", 1, 30*time.Second)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if r, err := rpMail(d.milter, fmt.Sprint("BOMB", i+2), rpReporter, fmt.Sprintf("example.test!rcpt.test!%d!2.xml.gz", i+2), rpNestedBomb(fmt.Sprint(i+2))); err != nil || !accepted(r) {
				t.Errorf("bomb %d: %v %v", i+2, r, err)
			}
		})
	}
	wg.Wait()
	rpWaitReports(t, d, "malformed", 3, 30*time.Second)
	d.alive(t)
	grew := d.peakRSS(t) - base
	t.Logf("peak RSS %d MB before, grew %d MB", base>>20, grew>>20)
	if grew > 64<<20 {
		t.Errorf("serve grew %d MB on three nested bombs, want under 64", grew>>20)
	}
	st, err := store.Open(context.Background(), "sqlite", d.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, err := st.ReceivedReports(context.Background(), "", 0)
	if err != nil || len(rs) != 3 {
		t.Fatalf("%v %+v", err, rs)
	}
	for _, r := range rs {
		if !strings.Contains(r.Error, "nested more than 32 deep") {
			t.Errorf("stored with error %q", r.Error)
		}
	}
	if !strings.Contains(d.log(), "nested more than 32 deep") {
		t.Errorf("no reason logged:\n%s", d.log())
	}
}

// TestReportManyRecordsThroughMilter mails a valid-looking report of
// 205,000 records (385 MB and 19 s of CPU before): refused at the
// 20,001st record, stored flagged without records, in bounded memory and
// CPU.
func TestReportManyRecordsThroughMilter(t *testing.T) {
	d, _ := rpStart(t)
	counts := make([]string, 205_000)
	for i := range counts {
		counts[i] = "1"
	}
	big := rpReport("example.test", "many", counts...)
	t.Logf("205,000 records: %d octets of gzip", len(big))
	base, cpu := d.peakRSS(t), rpCPU(t, d)
	if r, err := rpMail(d.milter, "MANY1", rpReporter, "example.test!rcpt.test!1!2.xml.gz", big); err != nil || !accepted(r) {
		t.Fatalf("%v %v", r, err)
	}
	rpWaitReports(t, d, "malformed", 1, 60*time.Second)
	used, grew := rpCPU(t, d)-cpu, d.peakRSS(t)-base
	t.Logf("CPU %s, peak RSS grew %d MB", used, grew>>20)
	if grew > 64<<20 {
		t.Errorf("serve grew %d MB, want under 64", grew>>20)
	}
	if used > 2*time.Second {
		t.Errorf("CPU %s, want under 2 s", used)
	}
	st, err := store.Open(context.Background(), "sqlite", d.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, _ := st.ReceivedReports(context.Background(), "rcpt.test", 0)
	if len(rs) != 1 || !strings.Contains(rs[0].Error, "more than 20000 records") || rs[0].Messages != 0 {
		t.Errorf("stored %+v", rs)
	}
}

// rpDomainPage logs in to the dashboard and fetches /dmarc/rcpt.test.
func rpDomainPage(t *testing.T, d *daemon) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.PostForm("http://"+d.web+"/login", url.Values{"user": {"admin"}, "password": {rpPassword}, "next": {"/dmarc/rcpt.test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Request.URL.Path != "/dmarc/rcpt.test" {
		t.Fatalf("login went to %s (%d):\n%s", resp.Request.URL, resp.StatusCode, b)
	}
	return resp.StatusCode, string(b)
}

// TestReportForgedNotCounted: a "Google Inc." report of 1,000,000
// aligned messages from 203.0.113.66, mailed from a host with no SPF,
// DKIM or PTR, was stored and shown as the truth; two reports with a
// count of 2^63-1 made the domain page answer 503. Now the forged one is
// stored marked unauthenticated and left out of the picture, the counts
// of 2^63-1 are refused, and the page answers 200 with only the
// authenticated report counted.
func TestReportForgedNotCounted(t *testing.T) {
	d, _ := rpStart(t)
	if r, err := rpMail(d.milter, "FORGED1", rpForger, "google.com!rcpt.test!1!2.xml.gz", rpReport("Google Inc.", "forged", "1000000")); err != nil || !accepted(r) {
		t.Fatalf("forged: %v %v", r, err)
	}
	rpWaitReports(t, d, "received_unauthenticated", 1, 30*time.Second)
	for i := range 2 {
		id := fmt.Sprint("MAX", i)
		if r, err := rpMail(d.milter, id, rpReporter, "example.test!rcpt.test!"+id+".xml.gz", rpReport("example.test", id, "9223372036854775807")); err != nil || !accepted(r) {
			t.Fatalf("count 2^63-1: %v %v", r, err)
		}
	}
	rpWaitReports(t, d, "malformed", 2, 30*time.Second)
	if r, err := rpMail(d.milter, "GOOD1", rpReporter, "example.test!rcpt.test!good.xml.gz", rpReport("example.test", "good", "5", "7")); err != nil || !accepted(r) {
		t.Fatalf("good: %v %v", r, err)
	}
	rpWaitReports(t, d, "received", 1, 30*time.Second)

	code, page := rpDomainPage(t, d)
	if code != http.StatusOK {
		t.Fatalf("domain page %d:\n%s", code, page)
	}
	if !strings.Contains(page, `<b id="picture-messages">12</b> messages in <b>1</b> reports`) {
		t.Errorf("the picture counts more than the authenticated report:\n%s", page)
	}
	if !strings.Contains(page, `<span id="unauthenticated">1 unauthenticated reports are not counted`) {
		t.Errorf("the forged report is not shown as unauthenticated:\n%s", page)
	}
	st, err := store.Open(context.Background(), "sqlite", d.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, _ := st.ReceivedReports(context.Background(), "rcpt.test", 0)
	var forged *store.ReceivedReport
	for i, r := range rs {
		if r.ReportID == "forged" {
			forged = &rs[i]
		}
	}
	if forged == nil || forged.Authenticated || !strings.HasPrefix(forged.Auth, "dmarc=none") || forged.Messages != 1000000 {
		t.Errorf("forged report stored as %+v", forged)
	}
	pic, err := st.Picture(context.Background(), "rcpt.test", time.Now().Add(-30*24*time.Hour))
	if err != nil || pic.Messages != 12 || pic.Reports != 1 || pic.Unauthenticated != 1 {
		t.Errorf("picture %v %+v", err, pic)
	}
	d.alive(t)
}

// TestReportImportEscapes: a zip member name and a MIME file name with
// terminal escape sequences reached the terminal raw in "report import"
// and "report list" errors. Now they are printed quoted.
func TestReportImportEscapes(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-rp-")
	cfg := filepath.Join(root, "mailwall.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("hostname: mx.rcpt.test\nstore:\n  dsn: %q\nreports:\n  inbound:\n    domains: [rcpt.test]\n", filepath.Join(root, "m.db"))), 0o600)
	evil := "\x1b]0;owned\x07\x1b[2J\u009b31m\u202egpj.xml"
	zipFile := filepath.Join(root, "report.zip")
	os.WriteFile(zipFile, rpBadZip(evil, "<feedback/>"), 0o600)
	// And a message whose attachment's file name is the same.
	msg := "From: x@evil.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename*=utf-8''" +
		url.PathEscape(evil) + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(rpBadZip(evil, "<feedback></feedback>")) + "\r\n--b--\r\n"
	msgFile := filepath.Join(root, "report.eml")
	os.WriteFile(msgFile, []byte(msg), 0o600)

	for _, args := range [][]string{{"report", "import", "--config", cfg, zipFile, msgFile}, {"report", "list", "--received", "--config", cfg}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		t.Logf("%v:\n%s", args, out)
		if bytes.ContainsAny(out, "\x1b\x07") || strings.ContainsAny(string(out), "\u009b\u202e") {
			t.Errorf("%v printed control characters: %q", args, out)
		}
		if !strings.Contains(string(out), `\x1b]0;owned\a`) {
			t.Errorf("%v does not show the name quoted: %q", args, out)
		}
	}
}

// rpBadZip is a zip of one member, named name, compressed by a method
// archive/zip cannot undo: opening it fails, with its name in the error.
func rpBadZip(name, content string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(99, func(w io.Writer) (io.WriteCloser, error) { return rpNopCloser{w}, nil })
	f, _ := zw.CreateHeader(&zip.FileHeader{Name: name, Method: 99})
	f.Write([]byte(content))
	zw.Close()
	return buf.Bytes()
}

type rpNopCloser struct{ io.Writer }

func (rpNopCloser) Close() error { return nil }
