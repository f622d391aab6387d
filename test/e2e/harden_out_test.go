package e2e

// Issue 23, the outward-facing items: what mailwall sends (reports), the
// header fields it writes through the milter, and what lab-dns answers.
// Helpers here are prefixed "ho".

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/authres"
	"mailwall/internal/dmarc"
	"mailwall/internal/labtest"
	"mailwall/internal/milter"
	"mailwall/internal/store"
)

// hoWaitRcpt waits for an RCPT TO line holding want at the sink.
func hoWaitRcpt(t *testing.T, s *labtest.LineSink, want string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		for _, l := range s.Rcpts() {
			if strings.Contains(l, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no RCPT TO %s at the sink within %s; it has %q", want, within, s.Rcpts())
		}
	}
}

// hoDeliver runs one milter session from 127.0.0.2 with the given
// envelope sender, header fields and body.
func hoDeliver(addr, queueID, mailFrom string, headers [][2]string, body string) ([]milter.Modification, milter.Reply, error) {
	c, err := milter.Dial("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, milter.Reply{}, err
	}
	defer c.Close()
	step := func(r milter.Reply, err error) error {
		if err != nil || r.Code != 'c' {
			return fmt.Errorf("milter: %v %v", r, err)
		}
		return nil
	}
	if err := step(c.Connect("mail.sender.test", netip.MustParseAddr("127.0.0.2"), 40000)); err != nil {
		return nil, milter.Reply{}, err
	}
	if err := step(c.Helo("mail.sender.test")); err != nil {
		return nil, milter.Reply{}, err
	}
	c.Macro('M', "i", queueID)
	if err := step(c.Mail("<" + mailFrom + ">")); err != nil {
		return nil, milter.Reply{}, err
	}
	if err := step(c.Rcpt("<bob@rcpt.test>")); err != nil {
		return nil, milter.Reply{}, err
	}
	for _, h := range headers {
		if _, err := c.Header(h[0], h[1]); err != nil {
			return nil, milter.Reply{}, err
		}
	}
	if _, err := c.EndOfHeaders(); err != nil {
		return nil, milter.Reply{}, err
	}
	if _, err := c.Body([]byte(body)); err != nil {
		return nil, milter.Reply{}, err
	}
	return c.EndOfMessage()
}

// hoSmuggled is issue 23's report address: as written its host is
// evil.test, which consents to reports for anyone; %-decoded it is
// "victim@victim.test> ORCPT=rfc822;x@evil.test".
const hoSmuggled = "mailto:victim%40victim.test%3E%20ORCPT%3Drfc822%3Bx@evil.test"

// TestHardenReportAddressSmuggling sends a message through the real
// milter from a domain whose DMARC record asks for aggregate and failure
// reports at the smuggled address and at an address of its own; then it
// makes yesterday's reports with "mailwall report send-now", after also
// planting a stored delivery to the smuggled address (as a version
// before the fix stored them). At the relay: reports for the domain's
// own addresses, and no RCPT TO victim.test, no ORCPT, nothing else.
// Before issue 23's fix both the failure report and the aggregate report
// went to RCPT TO:<victim@victim.test> ORCPT=rfc822;x@evil.test>.
func TestHardenReportAddressSmuggling(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-ho-rua-")
	lab := labtest.Serve(t, labtest.Zone(t, "test"),
		labtest.Zone(t, "attacker.test", `@ IN TXT "v=spf1 -all"`,
			`_dmarc IN TXT "v=DMARC1; p=none; fo=1; rua=`+hoSmuggled+`,mailto:agg@attacker.test; ruf=`+hoSmuggled+`,mailto:fail@attacker.test"`),
		labtest.Zone(t, "evil.test", `*._report._dmarc IN TXT "v=DMARC1"`),
		labtest.Zone(t, "victim.test", `@ IN A 192.0.2.9`))
	sink := labtest.NewLineSink(t)
	d := startDaemon(t, bin, root, daemonSetup{dns: lab.Addr(), extra: fmt.Sprintf(`reports:
  send: true
  relay: %q
  every: 1h
  failure:
    send: true
`, sink.Addr())})

	mods, r, err := hoDeliver(d.milter, "HOQ1", "x@attacker.test", [][2]string{{"From", "x@attacker.test"}, {"To", "bob@rcpt.test"},
		{"Subject", "report smuggling"}, {"Message-ID", "<ho1@attacker.test>"}}, "hello\r\n")
	if err != nil || !accepted(r) {
		t.Fatalf("milter: %v %v", r, err)
	}
	if ar := header(mods, "Authentication-Results"); !strings.Contains(ar, "dmarc=fail") {
		t.Fatalf("Authentication-Results %q", ar)
	}
	hoWaitRcpt(t, sink, "<fail@attacker.test>", 20*time.Second) // the failure report
	waitStored(t, d.db, []string{"HOQ1"}, 10*time.Second)
	d.cmd.Process.Kill()
	d.cmd.Wait()

	// Yesterday's mail now: its report is due.
	db, err := sql.Open("sqlite", d.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE dmarc_rows SET at = at - 2*86400`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// And a delivery to the smuggled address as an older version stored it.
	st, err := store.Open(context.Background(), "sqlite", d.db)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Truncate(24 * time.Hour).Add(-72 * time.Hour)
	if _, err := st.SaveReport(context.Background(), &store.ReportOut{PolicyDomain: "attacker.test", Begin: old, End: old.Add(24*time.Hour - time.Second),
		ReportID: "old.attacker.test@mx.rcpt.test", Filename: "old.xml.gz", Created: time.Now(), GZ: []byte{0x1f, 0x8b}},
		[]dmarc.URI{{URI: hoSmuggled}}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, err := exec.Command(bin, "report", "send-now", "--config", d.cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("send-now: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "made 1 reports; sent 1") || !strings.Contains(string(out), "dropped 1") {
		t.Errorf("send-now: %s", out)
	}
	hoWaitRcpt(t, sink, "<agg@attacker.test>", 5*time.Second)
	got := sink.Rcpts()
	for _, l := range got {
		if strings.Contains(strings.ToLower(l), "victim") || strings.Contains(strings.ToUpper(l), "ORCPT") {
			t.Errorf("the relay was asked for %q", l)
		}
	}
	if len(got) != 2 {
		t.Errorf("RCPT TO lines %q, want the failure report's and the aggregate report's", got)
	}
}

// TestHardenMilterHeaders sends through the real milter a message with
// 900 junk DKIM-Signature fields (under the milter's field limit), a
// forged Authentication-Results with our authserv-id and a trailing dot,
// and a folded Subject, from a host without reverse DNS (tagged, so the
// Subject is rewritten). Our Authentication-Results stays a few hundred
// octets with spf= and dmarc= first; the forged field is deleted; the new
// Subject has no CR (the milter protocol's line end is LF alone). Before
// issue 23: 900 dkim= lines (about 50 kB), the forged field kept, and
// "\r\n" sent in the Subject, which Postfix stored as a bare CR.
func TestHardenMilterHeaders(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-ho-ar-")
	lab := labtest.Serve(t, labtest.Zone(t, "test"),
		labtest.Zone(t, "sender.test", `@ IN TXT "v=spf1 ip4:127.0.0.2 -all"`, `_dmarc IN TXT "v=DMARC1; p=none"`))
	d := startDaemon(t, bin, root, daemonSetup{dns: lab.Addr(), extra: "checks:\n  subject_tag: \"[SUSPICIOUS]\"\n"})
	headers := [][2]string{{"Authentication-Results", " mx.rcpt.test.; dmarc=pass header.from=bank.test"}}
	for i := range 900 {
		headers = append(headers, [2]string{"DKIM-Signature", fmt.Sprintf(" v=1; a=rsa-sha256; d=junk%d.test; s=x; h=from; bh=; b=", i)})
	}
	headers = append(headers, [2]string{"From", "alice@sender.test"}, [2]string{"To", "bob@rcpt.test"},
		[2]string{"Subject", " first line\n second line"}, [2]string{"Message-ID", "<ho2@sender.test>"})
	mods, r, err := hoDeliver(d.milter, "HOQ2", "alice@sender.test", headers, "hello\r\n")
	if err != nil || !accepted(r) {
		t.Fatalf("milter: %v %v\n%s", r, err, d.log())
	}
	ar := header(mods, "Authentication-Results")
	t.Logf("Authentication-Results: %d octets", len(ar))
	if len(ar) > 2000 {
		t.Errorf("Authentication-Results is %d octets", len(ar))
	}
	h, err := authres.Parse(ar)
	if err != nil || len(h.Results) < 3 || h.Results[0].Method != "spf" || h.Results[1].Method != "dmarc" {
		t.Errorf("Authentication-Results %v:\n%s", err, ar)
	}
	deleted, subject := false, ""
	for _, m := range mods {
		if m.Kind == 'm' && strings.EqualFold(m.Name, "Authentication-Results") && m.Index == 1 && m.Value == "" {
			deleted = true
		}
		if m.Kind == 'm' && strings.EqualFold(m.Name, "Subject") {
			subject = m.Value
		}
	}
	if !deleted {
		t.Errorf("the forged Authentication-Results (trailing dot) was not deleted: %+v", mods)
	}
	if !strings.HasPrefix(subject, " [SUSPICIOUS] first line\n") || strings.Contains(subject, "\r") {
		t.Errorf("Subject sent as %q", subject)
	}
}

// TestHardenLabDNSAny asks the real lab-dns ANY over UDP with an EDNS
// buffer of 4096 for a name with 12 long TXT records: the answer is one
// RRset (RFC 8482) well under 1232 octets, and a TXT query's answer is
// at most 1232 octets with TC set. Before issue 23: 3,900 octets for a
// 40-octet query.
func TestHardenLabDNSAny(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-ho-dns-")
	var b strings.Builder
	b.WriteString("$ORIGIN amp.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nbig IN A 127.0.0.9\n")
	for i := range 12 {
		fmt.Fprintf(&b, "big IN TXT \"%02d%s\"\n", i, strings.Repeat("x", 250))
	}
	zone := filepath.Join(root, "amp.test.zone")
	if err := os.WriteFile(zone, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _ := startLabDNS(t, bin, zone)
	ask := func(qtype uint16) (*dns.Msg, int) {
		m := new(dns.Msg)
		m.SetQuestion("big.amp.test.", qtype)
		m.SetEdns0(4096, false)
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second, UDPSize: 65535}
		resp, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		packed, _ := resp.Pack()
		return resp, len(packed)
	}
	resp, n := ask(dns.TypeANY)
	t.Logf("ANY: %d octets, %d records", n, len(resp.Answer))
	if n > 200 || len(resp.Answer) != 1 {
		t.Errorf("ANY over UDP: %d octets, %d records", n, len(resp.Answer))
	}
	resp, n = ask(dns.TypeTXT)
	t.Logf("TXT: %d octets, truncated %v", n, resp.Truncated)
	if n > 1232 || !resp.Truncated {
		t.Errorf("TXT over UDP: %d octets, truncated %v", n, resp.Truncated)
	}
}

// TestHardenLabSymlinks runs the real "mailwall lab run" over a lab
// directory where another user planted symlinks: a zone file pointing at
// a file of ours, and (in a second directory) the key directory pointing
// elsewhere. The zone file's target is untouched (the link replaced);
// the key directory is refused and nothing is written through it.
// Before issue 23 both were written through.
func TestHardenLabSymlinks(t *testing.T) {
	root, bin := e2eRoot(t, "mailwall-ho-lab-")
	labFile := filepath.Join(root, "lab.yaml")
	os.WriteFile(labFile, []byte(`mx: {name: mx.rcpt.test, domain: rcpt.test, ip: 127.0.0.1}
domains:
  - name: example.test
    spf: "v=spf1 ip4:127.0.0.2 -all"
    dkim: [{selector: s1, algorithm: ed25519}]
    hosts: [{name: mail, ip: 127.0.0.2, sign: true}]
`), 0o644)
	precious := filepath.Join(root, "precious")
	os.WriteFile(precious, []byte("precious\n"), 0o644)
	run := func(dir string) ([]byte, error) {
		return exec.Command(bin, "lab", "run", labFile, "--dir", dir, "--dns", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--mx-port", "0").CombinedOutput()
	}

	dir := filepath.Join(root, "lab1")
	os.MkdirAll(filepath.Join(dir, "zones"), 0o700)
	os.Chmod(dir, 0o700)
	if err := os.Symlink(precious, filepath.Join(dir, "zones", "example.test.zone")); err != nil {
		t.Fatal(err)
	}
	if out, err := run(dir); err != nil {
		t.Fatalf("lab run: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(precious); string(b) != "precious\n" {
		t.Errorf("the zone file's symlink was written through: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "zones", "example.test.zone")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("zone file: %v %v", fi, err)
	}

	dir = filepath.Join(root, "lab2")
	elsewhere := filepath.Join(root, "elsewhere")
	os.MkdirAll(elsewhere, 0o700)
	os.MkdirAll(dir, 0o700)
	os.Symlink(elsewhere, filepath.Join(dir, "keys"))
	out, err := run(dir)
	if err == nil || !strings.Contains(string(out), "symbolic link") {
		t.Errorf("lab run with keys/ a symlink: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("written through the keys/ symlink: %v", ents)
	}
}
