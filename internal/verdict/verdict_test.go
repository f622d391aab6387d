package verdict

import (
	"bufio"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/conncheck"
	"mailwall/internal/dkim"
	"mailwall/internal/dmarc"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/phish"
	"mailwall/internal/spf"
)

// world serves example.test (SPF for 192.0.2.10, a DKIM key, p=reject),
// desctrl.test (p=none) and reverse DNS for 192.0.2.10, and returns a
// checker with default policy and the signer for example.test.
func world(t testing.TB) (*Checker, *dkim.Signer) {
	key, err := dkim.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.PublicKeyRecord(key)
	s := labtest.Serve(t,
		labtest.Zone(t, "test"),
		labtest.Zone(t, "example.test",
			`@ IN TXT "v=spf1 ip4:192.0.2.10 -all"`, `mail IN A 192.0.2.10`,
			`_dmarc IN TXT "v=DMARC1; p=reject"`, dkim.ZoneRecord("sel", "example.test", rec)),
		labtest.Zone(t, "desctrl.test", `@ IN TXT "v=spf1 ip4:192.0.2.20 -all"`, `_dmarc IN TXT "v=DMARC1; p=none"`),
		labtest.Zone(t, "2.0.192.in-addr.arpa", `10 IN PTR mail.example.test.`),
	)
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})
	return newChecker(res), &dkim.Signer{Domain: "example.test", Selector: "sel", Key: key}
}

func newChecker(res dnsx.Resolver) *Checker {
	tab, _ := conncheck.ParseRegexpTable(strings.NewReader(`/^(.+\.)?desctrl\.com$/ REJECT`+"\n"), "helo_checks")
	s25r, _ := conncheck.NewS25R(nil, nil, nil)
	c := New(res, "mx.rcpt.test")
	c.S25R, c.HeloTables = s25r, []*conncheck.RegexpTable{tab}
	c.Internal = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	return c
}

const msg = "From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: lunch\r\nMessage-ID: <1@example.test>\r\n\r\nHi Bob.\r\n"

func check(t *testing.T, c *Checker, env Envelope, m string) Result {
	t.Helper()
	r, _, err := c.CheckMessage(context.Background(), env, strings.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func header(r Result, name string) string {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

func TestSignedAlignedMessagePasses(t *testing.T) {
	c, signer := world(t)
	sig, err := signer.Sign(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}
	r := check(t, c, env, sig+msg)
	if r.Action != Accept || r.Verdict != "pass" || r.DMARC.Result != dmarc.Pass || r.IPRev.Result != "pass" {
		t.Fatalf("%+v", r)
	}
	ar := header(r, "Authentication-Results")
	for _, want := range []string{"mx.rcpt.test;", "iprev=pass", "spf=pass smtp.mailfrom=alice@example.test", "dkim=pass header.d=example.test header.s=sel header.a=ed25519-sha256", "dmarc=pass (p=reject dis=none) header.from=example.test"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results lacks %q:\n%s", want, ar)
		}
	}
	if v := header(r, "X-Mailwall-Verdict"); v != " pass (action=accept; stage=none)" {
		t.Errorf("verdict header %q", v)
	}
}

func TestSpoofedRejectDomainIsRejected(t *testing.T) {
	c, _ := world(t)
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.66"), Helo: "host.example.org", MailFrom: "alice@example.test"}
	r := check(t, c, env, msg)
	if r.Action != Reject || r.Stage != "dmarc" || !strings.HasPrefix(r.Reply, "550 5.7.1") || r.Verdict != "fail" {
		t.Fatalf("%+v", r)
	}
	if r.SPF.Result != spf.Fail || r.DMARC.Disposition != dmarc.PolicyReject {
		t.Errorf("spf %s dmarc %+v", r.SPF.Result, r.DMARC)
	}
}

func TestPhishFromPNoneDomainIsTaggedNotRejected(t *testing.T) {
	c, _ := world(t)
	// desctrl.test passes SPF with p=none: authentication says who sent it,
	// not whether to trust it. The dynamic-looking HELO-less client is tagged.
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.20"), Helo: "mx.desctrl.test", MailFrom: "amozonjp-update-account@desctrl.test"}
	r := check(t, c, env, strings.Replace(msg, "alice@example.test", "amozonjp-update-account@desctrl.test", 1))
	if r.Action != Tag || r.DMARC.Result != dmarc.Pass || r.Verdict != "suspicious" {
		t.Fatalf("%+v", r)
	}
	if r.IPRev.Result != "permerror" || r.S25R == "" {
		t.Errorf("iprev %+v s25r %q", r.IPRev, r.S25R)
	}
}

// TestLargeBodiesShareNoBuffer checks the pooled body buffers: a body
// past 64 KB moves to one, and the next message, given the same buffer,
// sees its own links only.
func TestLargeBodiesShareNoBuffer(t *testing.T) {
	c, _ := world(t)
	p, err := phish.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Analyzers = []analysis.Analyzer{p}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}
	// 45 KB: links after it are within the 50,000 octets of text that
	// phish.Extract searches; two of it make a body past 64 KB.
	filler := strings.Repeat("a line of filler text to make the body long\r\n", 1000)
	for _, tc := range []struct{ body, want string }{
		{"http://first.example/\r\n" + filler + "http://late-one.example/\r\n" + filler, "http://first.example/ http://late-one.example/"},
		{filler + "http://late-two.example/\r\n" + filler, "http://late-two.example/"},
		{"short http://short.example/\r\n", "http://short.example/"},
	} {
		r := check(t, c, env, strings.Replace(msg, "Hi Bob.\r\n", tc.body, 1))
		if r.Phish == nil {
			t.Fatal("no phishing report")
		}
		var got []string
		for _, l := range r.Phish.Content.Links {
			got = append(got, l.Href)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("links %q, want %q", got, tc.want)
		}
	}
}

func TestHeloTable(t *testing.T) {
	c, _ := world(t)
	act, reply, why := c.CheckHelo("mail.desctrl.com")
	if act != Reject || reply != "554 5.7.1 <mail.desctrl.com>: Helo command rejected: Access denied" || !strings.Contains(why, "helo_checks") {
		t.Errorf("%s %q %q", act, reply, why)
	}
	if act, _, _ := c.CheckHelo("mail.example.test"); act != Accept {
		t.Errorf("clean HELO: %s", act)
	}
	if act, reply, _ := c.CheckHelo("bad..name"); act != Reject || !strings.HasPrefix(reply, "501 5.5.2") {
		t.Errorf("invalid HELO: %s %q", act, reply)
	}
}

func TestInternalMailIsSigned(t *testing.T) {
	c, signer := world(t)
	c.Signers = map[string]*dkim.Signer{"example.test": signer}
	for _, env := range []Envelope{
		{ClientIP: netip.MustParseAddr("10.1.2.3"), Helo: "laptop", MailFrom: "alice@example.test"},
		{ClientIP: netip.MustParseAddr("198.51.100.9"), Helo: "laptop", MailFrom: "alice@example.test", AuthUser: "alice"},
		{Local: true, MailFrom: "alice@example.test"}, // sendmail(1), through non_smtpd_milters
	} {
		r := check(t, c, env, msg)
		sig := header(r, "DKIM-Signature")
		if !r.Internal || !r.Signed || sig == "" || r.Action != Accept {
			t.Fatalf("%+v", r)
		}
		// The signature verifies for the receiver.
		res, err := c.DKIM.Verify(context.Background(), strings.NewReader("DKIM-Signature:"+sig+"\r\n"+msg))
		if err != nil || len(res) != 1 || res[0].Status != dkim.Pass {
			t.Errorf("signature of internal mail: %+v %v", res, err)
		}
	}
}

func TestForgedAuthenticationResultsRemoved(t *testing.T) {
	c, _ := world(t)
	forged := "Authentication-Results: other.test; spf=pass\r\nAuthentication-Results: MX.rcpt.test; dmarc=pass header.from=bank.test\r\n" + msg
	r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, forged)
	if len(r.Remove) != 1 || r.Remove[0].Index != 2 {
		t.Errorf("remove %+v, want the second Authentication-Results field", r.Remove)
	}
}

func TestDNSDownTempFails(t *testing.T) {
	c := newChecker(&dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 30 * time.Millisecond, Attempts: 1})
	r := check(t, c, Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test"}, msg)
	if r.Action != TempFail || !strings.HasPrefix(r.Reply, "451 4.7.") {
		t.Errorf("%s %q %v", r.Action, r.Reply, r.Reasons)
	}
}

func TestFromDomains(t *testing.T) {
	for _, tc := range []struct {
		from []string
		want string
	}{
		{[]string{"Alice <alice@Example.TEST>"}, "example.test"},
		{[]string{"a@one.test, b@two.test"}, "one.test,two.test"},
		{[]string{"a@one.test", "b@two.test"}, "one.test,two.test"},
		{[]string{"broken <<a@evil.test"}, "evil.test"},
		{[]string{"x@bücher.test"}, "xn--bcher-kva.test"},
		{[]string{"undisclosed"}, ""},
	} {
		var fields []dkim.Field
		for _, f := range tc.from {
			fields = append(fields, dkim.NewField("From", " "+f))
		}
		_, doms := parseFrom(fields)
		if got := strings.Join(doms, ","); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.from, got, tc.want)
		}
	}
}

// BenchmarkMessage runs the whole pipeline on a signed, aligned message
// with a 2 KB body, DNS answers cached, fed as the milter feeds it (field
// by field, then the body): the checks' own cost per message, without the
// protocol around them.
func BenchmarkMessage(b *testing.B) {
	c, signer := world(b)
	benchMessage(b, c, signer)
}

// benchMessage is BenchmarkMessage's loop on checker c.
func benchMessage(b *testing.B, c *Checker, signer *dkim.Signer) {
	body := strings.Repeat("The quick brown fox jumps over the lazy dog, again and again and again.\r\n", 28)
	m := "From: Alice <alice@example.test>\r\nTo: bob@rcpt.test\r\nSubject: lunch\r\nMessage-ID: <1@example.test>\r\n\r\n" + body
	sig, err := signer.Sign(strings.NewReader(m))
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(strings.NewReader(sig + m))
	fields, err := dkim.ReadHeader(br)
	if err != nil {
		b.Fatal(err)
	}
	env := Envelope{ClientIP: netip.MustParseAddr("192.0.2.10"), Helo: "mail.example.test", MailFrom: "alice@example.test", Rcpts: []string{"bob@rcpt.test"}}
	bodyBytes := []byte(body)
	b.ReportAllocs()
	for b.Loop() {
		msg := c.Start(context.Background(), env)
		for _, f := range fields {
			msg.Header(f)
		}
		msg.EndOfHeaders()
		msg.Write(bodyBytes)
		if r := msg.Finish(); r.Action != Accept {
			b.Fatal(r.Action, r.Reasons)
		}
	}
}

// TestHeloCanRefuse: only a HELO rule that can answer reject or tempfail
// makes the milter wait at HELO.
func TestHeloCanRefuse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		invalid Action
		table   string // "" for none
		want    bool
	}{
		{"default: invalid HELO refused", Reject, "", true},
		{"invalid HELO deferred", TempFail, "", true},
		{"invalid HELO tagged, no table", Tag, "", false},
		{"table that rejects", Tag, "/^x$/ REJECT\n", true},
		{"table with an SMTP code", Tag, "/^x$/ 554 5.7.1 go away\n", true},
		{"table that defers if permitted", Accept, "/^x$/ DEFER_IF_PERMIT\n", true},
		{"table whose action comes from the match", Tag, "/^(REJECT|OK)-x$/ $1\n", true},
		{"rule inside an if block", Tag, "if /x/\n/^x$/ 450 later\nendif\n", true},
		{"table that only holds, accepts or passes", Tag, "/^a$/ HOLD\n/^b$/ OK\n/^c$/ DUNNO\n/^d$/ WARN odd\n", false},
	} {
		c := New(nil, "mx.rcpt.test")
		c.Policy.HeloInvalid = tc.invalid
		if tc.table != "" {
			tab, err := conncheck.ParseRegexpTable(strings.NewReader(tc.table), "helo_checks")
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			c.HeloTables = []*conncheck.RegexpTable{tab}
		}
		if got := c.HeloCanRefuse(); got != tc.want {
			t.Errorf("%s: HeloCanRefuse = %v, want %v", tc.name, got, tc.want)
		}
	}
}
