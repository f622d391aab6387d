package domaincheck

import (
	"context"
	"crypto"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dkim"
	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/sendtest"
)

// sendingLab serves, on loopback, a sending domain that meets every
// requirement (good.test: SPF for 127.0.0.61, a DKIM key at s1, DMARC
// p=none, mail.good.test with forward-confirmed reverse DNS) and
// domains each missing one piece; it returns a checker on it and the
// key of s1._domainkey.good.test.
func sendingLab(t *testing.T) (*Checker, crypto.Signer) {
	t.Helper()
	key, err := dkim.GenerateKey("rsa", 2048)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := dkim.PublicKeyRecord(key)
	s := labtest.Serve(t,
		labtest.Zone(t, "test"),
		labtest.Zone(t, "good.test", `@ IN TXT "v=spf1 ip4:127.0.0.61 -all"`, `_dmarc IN TXT "v=DMARC1; p=none; rua=mailto:d@good.test"`,
			dkim.ZoneRecord("s1", "good.test", rec), `mail IN A 127.0.0.61`, `alias IN A 127.0.0.61`, `elsewhere IN A 127.0.0.99`),
		labtest.Zone(t, "nospf.test", `_dmarc IN TXT "v=DMARC1; p=reject"`, dkim.ZoneRecord("s1", "nospf.test", rec)),
		labtest.Zone(t, "nodmarc.test", `@ IN TXT "v=spf1 ip4:127.0.0.61 -all"`, dkim.ZoneRecord("s1", "nodmarc.test", rec)),
		labtest.Zone(t, "nodkim.test", `@ IN TXT "v=spf1 ip4:127.0.0.61 -all"`, `_dmarc IN TXT "v=DMARC1; p=quarantine"`),
		labtest.Zone(t, "0.0.127.in-addr.arpa", `61 IN PTR mail.good.test.`, `63 IN PTR nowhere.good.test.`),
	)
	res := dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})
	return &Checker{Resolver: res, Selectors: []string{"s1"}}, key
}

// sample builds a message from alice@domain, bulk (one-click
// unsubscribe) when asked, signed with key as d=domain s=s1 when key is
// set; edit changes the header before signing.
func sample(t *testing.T, domain string, key crypto.Signer, bulk bool, edit func(string) string) []byte {
	t.Helper()
	msg, err := sendtest.Build(sendtest.Message{From: "alice@" + domain, To: "bob@rcpt.test", Bulk: bulk, Domain: domain, Selector: "s1", Key: key,
		Date: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil && key != nil {
		return []byte(msg)
	}
	// Unsign, edit, sign again.
	if i := strings.Index(msg, "Date: "); i > 0 {
		msg = msg[i:]
	}
	if edit != nil {
		msg = edit(msg)
	}
	if key == nil {
		return []byte(msg)
	}
	sig, err := (&dkim.Signer{Domain: domain, Selector: "s1", Key: key}).Sign(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(sig + msg)
}

// TestSendingRequirements: the compliant domain, host and message pass
// every sending check; each missing piece gives its fail or warn with its
// fix; what cannot be seen (complaints, reputation, TLS) is info, never
// pass.
func TestSendingRequirements(t *testing.T) {
	c, key := sendingLab(t)
	ip61, ip62, ip63 := netip.MustParseAddr("127.0.0.61"), netip.MustParseAddr("127.0.0.62"), netip.MustParseAddr("127.0.0.63")
	type want struct {
		st        Status
		text, fix string
	}
	for _, tc := range []struct {
		name   string
		domain string
		s      Sending
		wants  []want // findings that must be there (status, text in message, text in fix)
		clean  bool   // no fail and no warn at all
	}{
		{name: "compliant", domain: "good.test", s: Sending{IP: ip61, Helo: "mail.good.test", Message: sample(t, "good.test", key, true, nil)}, clean: true,
			wants: []want{{Pass, "pass (ip4:127.0.0.61)", ""}, {Pass, "p=none", "p=quarantine"}, {Pass, "DMARC pass", ""},
				{Pass, "PTR mail.good.test", ""}, {Pass, "one-click", ""}, {Pass, "one From, one Date, a Message-ID", ""},
				{Info, "under 0.3 %", "Postmaster Tools"}, {Info, "no reputation", "warm up"}, {Info, "TLS", "smtp_tls_security_level"},
				{Info, "support.google.com/a/answer/81126", ""}}},
		{name: "no SPF record", domain: "nospf.test", s: Sending{IP: ip61, Helo: "mail.good.test", Message: sample(t, "nospf.test", key, true, nil)},
			wants: []want{{Fail, "none: no SPF record", `publish nospf.test TXT "v=spf1 ip4:127.0.0.61 -all"`},
				{Warn, "one identifier only", "MAIL FROM in nospf.test"}}},
		{name: "address not in SPF, no PTR", domain: "good.test", s: Sending{IP: ip62, Helo: "mail.good.test", Message: sample(t, "good.test", key, true, nil)},
			wants: []want{{Fail, "fail: the record does not list", "add ip4:127.0.0.62"},
				{Fail, "Gmail rejects mail from addresses without forward-confirmed reverse DNS", "set its PTR"},
				{Fail, "does not resolve to the sending address", "smtp_helo_name"}}},
		{name: "PTR name that does not resolve back", domain: "good.test", s: Sending{IP: ip63, Helo: "mail.good.test"},
			wants: []want{{Fail, "forward-confirmed", "set its PTR"}}},
		{name: "no DMARC record", domain: "nodmarc.test", s: Sending{IP: ip61, Helo: "mail.good.test", Message: sample(t, "nodmarc.test", key, true, nil)},
			wants: []want{{Fail, "no DMARC record", `publish _dmarc.nodmarc.test TXT "v=DMARC1; p=none`}}},
		{name: "no DKIM key", domain: "nodkim.test", s: Sending{IP: ip61, Helo: "mail.good.test"},
			wants: []want{{Fail, "no DKIM key found", "mailwall dkim keygen --domain nodkim.test"}, {Pass, "DMARC pass through SPF", ""},
				{Info, "give --message FILE", "send-test --bulk"}}},
		{name: "unsigned message", domain: "good.test", s: Sending{IP: ip61, Helo: "mail.good.test", Message: sample(t, "good.test", nil, false, nil)},
			wants: []want{{Fail, "no DKIM-Signature", "sign with d=good.test"}, {Warn, "no List-Unsubscribe", "List-Unsubscribe-Post"},
				{Warn, "one identifier only", "sign with d=good.test"}}},
		{name: "HELO not the PTR name", domain: "good.test", s: Sending{IP: ip61, Helo: "alias.good.test"},
			wants: []want{{Warn, "not its PTR name", "smtp_helo_name (or myhostname) in main.cf to the PTR name (mail.good.test)"}}},
		{name: "HELO elsewhere", domain: "good.test", s: Sending{IP: ip61, Helo: "elsewhere.good.test"},
			wants: []want{{Fail, "does not resolve to the sending address", "mail.good.test"}}},
		{name: "message, no IP", domain: "good.test", s: Sending{Message: sample(t, "good.test", key, true, nil)},
			wants: []want{{Pass, "DMARC pass through DKIM (d=good.test); SPF not evaluated", ""}, {Pass, "one-click", ""}}},
		{name: "no IP, no HELO", domain: "good.test", s: Sending{},
			wants: []want{{Info, "give --ip ADDRESS to evaluate it", ""}, {Info, "give --ip ADDRESS (and --helo NAME)", ""}}},
		{name: "format", domain: "good.test", s: Sending{IP: ip61, Helo: "mail.good.test", Message: sample(t, "good.test", key, true, func(m string) string {
			m = strings.Replace(m, "Message-ID:", "X-Old-Message-ID:", 1)
			return strings.Replace(m, "From: <alice@good.test>\r\n", "From: <alice@good.test>\r\nFrom: <other@good.test>\r\n", 1)
		})}, wants: []want{{Fail, "Message-ID: missing", "always_add_missing_headers"}, {Fail, "From: 2 fields", "one From"}}},
		{name: "unsubscribe over http, no Post", domain: "good.test", s: Sending{IP: ip61, Helo: "mail.good.test", Message: sample(t, "good.test", key, false, func(m string) string {
			return strings.Replace(m, "MIME-Version:", "List-Unsubscribe: <http://good.test/u>\r\nMIME-Version:", 1)
		})}, wants: []want{{Fail, "no https URI", "takes a POST"}, {Warn, "no mailto:", "mailto:unsubscribe@good.test"},
			{Fail, "List-Unsubscribe=One-Click", "add that field"}}},
		{name: "unsubscribe fields not signed", domain: "good.test", s: Sending{IP: ip61, Helo: "mail.good.test", Message: func() []byte {
			// The fields added after signing, as a list manager might.
			m := string(sample(t, "good.test", key, false, nil))
			return []byte("List-Unsubscribe: <https://good.test/u>, <mailto:u@good.test>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" + m)
		}()}, wants: []want{{Fail, "no passing DKIM signature covers", "h="}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{Domain: tc.domain}
			c.CheckSending(context.Background(), rep, tc.domain, tc.s)
			var all []string
			for _, f := range rep.Findings {
				if f.Section != SectionSending {
					t.Errorf("finding outside the sending section: %+v", f)
				}
				all = append(all, string(f.Status)+" "+f.String())
				if tc.clean && (f.Status == Fail || f.Status == Warn) {
					t.Errorf("compliant sender got %s: %s", f.Status, f)
				}
				if (f.Status == Fail || f.Status == Warn) && f.Fix == "" && f.Subject != "message" {
					t.Errorf("%s without a fix: %s", f.Status, f)
				}
			}
			for _, w := range tc.wants {
				found := false
				for _, f := range rep.Findings {
					if f.Status == w.st && strings.Contains(f.Subject+": "+f.Message, w.text) && strings.Contains(f.Fix, w.fix) {
						found = true
					}
				}
				if !found {
					t.Errorf("no %s finding with %q (fix %q)", w.st, w.text, w.fix)
				}
			}
			for _, subject := range []string{"complaints", "reputation", "tls"} {
				if !rep.Has(SectionSending, Info, subject) {
					t.Errorf("no info on %s, which cannot be seen", subject)
				}
			}
			if t.Failed() {
				t.Logf("findings:\n%s", strings.Join(all, "\n"))
			}
		})
	}
}

// TestSendingEd25519Only: a message signed with ed25519 alone passes
// here but warns: not every receiver verifies ed25519.
func TestSendingEd25519Only(t *testing.T) {
	key, _ := dkim.GenerateKey("ed25519", 0)
	rec, _ := dkim.PublicKeyRecord(key)
	s := labtest.Serve(t, labtest.Zone(t, "test"), labtest.Zone(t, "ed.test", `@ IN TXT "v=spf1 ip4:127.0.0.61 -all"`, `_dmarc IN TXT "v=DMARC1; p=none"`,
		dkim.ZoneRecord("s1", "ed.test", rec)))
	c := &Checker{Resolver: dnsx.NewCache(&dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}, dnsx.CacheOptions{})}
	rep := &Report{}
	c.CheckSending(context.Background(), rep, "ed.test", Sending{Message: sample(t, "ed.test", key, true, nil)})
	if !rep.Has(SectionSending, Warn, "ed25519 only") || !rep.Has(SectionSending, Pass, "dkim d=ed.test s=s1: pass") {
		t.Errorf("%+v", rep.Findings)
	}
}

// TestSendingSampleBounded: a sample past MaxSampleMessage is refused
// unread.
func TestSendingSampleBounded(t *testing.T) {
	c, _ := sendingLab(t)
	rep := &Report{}
	c.CheckSending(context.Background(), rep, "good.test", Sending{Message: make([]byte, MaxSampleMessage+1)})
	if !rep.Has(SectionSending, Fail, "at most") {
		t.Errorf("%+v", rep.Findings)
	}
}
