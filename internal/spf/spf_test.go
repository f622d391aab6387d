package spf

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
)

// RFC 7208 §7.4's examples, with <sender> strong-bad@email.example.com,
// <ip> 192.0.2.3 (and 2001:db8::cb01 for the IPv6 lines).
func TestMacroExpansionRFC7208Examples(t *testing.T) {
	env := &macroEnv{
		sender: "strong-bad@email.example.com", local: "strong-bad", senderDomain: "email.example.com",
		domain: "email.example.com", ip: netip.MustParseAddr("192.0.2.3"), helo: "mx.example.org",
		receiver: "mx.example.net", now: time.Unix(1234567890, 0),
		ptr: func() string { return "mx.example.org" },
	}
	for _, tc := range []struct{ in, want string }{
		{"%{s}", "strong-bad@email.example.com"},
		{"%{o}", "email.example.com"},
		{"%{d}", "email.example.com"},
		{"%{d4}", "email.example.com"},
		{"%{d3}", "email.example.com"},
		{"%{d2}", "example.com"},
		{"%{d1}", "com"},
		{"%{dr}", "com.example.email"},
		{"%{d2r}", "example.email"},
		{"%{l}", "strong-bad"},
		{"%{l-}", "strong.bad"},
		{"%{lr}", "strong-bad"},
		{"%{lr-}", "bad.strong"},
		{"%{l1r-}", "strong"},
		{"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
		{"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
		{"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
		{"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
		{"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
		{"%{p}.%{h}", "mx.example.org.mx.example.org"},
		{"%%%_%-", "% %20"},
		{"%{S}", "strong-bad%40email.example.com"},
	} {
		ms, err := parseMacroString(tc.in, false, 0)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := ms.expand(env); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.in, got, tc.want)
		}
	}
	env.ip = netip.MustParseAddr("2001:db8::cb01")
	ms, _ := parseMacroString("%{ir}.%{v}._spf.%{d2}", false, 0)
	if got, want := strings.ToLower(ms.expand(env)), "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"; got != want {
		t.Errorf("IPv6 %%{ir} = %q, want %q", got, want)
	}
	// c, r, t are for explanations only (§7.2).
	if _, err := parseMacroString("%{c}", false, 0); err == nil {
		t.Error("%{c} accepted outside an explanation")
	}
	ms, err := parseMacroString("%{c} %{r} %{t}", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ms.expand(env); got != "2001:db8::cb01 mx.example.net 1234567890" {
		t.Errorf("explanation macros = %q", got)
	}
}

func TestParseErrorsHavePositions(t *testing.T) {
	for _, tc := range []struct {
		rec string
		pos int
		msg string
	}{
		{"v=spf1 ip4:192.0.2.0/24 foo:bar -all", 24, "unknown mechanism"},
		{"v=spf1 a:example.com/33", 21, "invalid CIDR"},
		{"v=spf1 ip4:300.1.2.3", 11, "invalid ip4 address"},
		{"v=spf1 ip6:::/-1", 14, "invalid CIDR"},
		{"v=spf1 ip4:192.0.2.0/+8", 21, "invalid CIDR"},
		{"v=spf1 redirect=a.example redirect=b.example", 26, "appears twice"},
		{"v=spf1 include:%{x}.example.com", 15, "unknown macro letter"},
		{"v=spf1 a:example", 9, "only a top label"},
		{"v=spf1 -all\tmx", 11, "invalid character"},
	} {
		_, err := Parse(tc.rec)
		se, ok := err.(*SyntaxError)
		if !ok || se.Pos != tc.pos || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("Parse(%q) = %v, want %q at %d", tc.rec, err, tc.msg, tc.pos)
		}
	}
}

func TestReceivedSPF(t *testing.T) {
	h := HeaderInfo{ClientIP: netip.MustParseAddr("::ffff:192.0.2.2"), Helo: "mx.example.test", EnvelopeFrom: "a@example.test"}
	for _, tc := range []struct {
		o    Outcome
		want string
	}{
		{Outcome{Result: Pass, Identity: MailFrom}, "Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.2; helo=mx.example.test; envelope-from=a@example.test; receiver=<UNKNOWN>"},
		{Outcome{Result: Softfail, Identity: MailFrom}, "Softfail (mailfrom) identity=mailfrom; client-ip=192.0.2.2; helo=mx.example.test; envelope-from=a@example.test; receiver=<UNKNOWN>"},
		{Outcome{Result: PermError, Identity: MailFrom, Problem: "Void lookup limit of 2 exceeded"}, "Permerror (mailfrom: Void lookup limit of 2 exceeded) identity=mailfrom; client-ip=192.0.2.2; helo=mx.example.test; envelope-from=a@example.test; receiver=<UNKNOWN>"},
		// A DNS-supplied problem cannot break the comment or add lines.
		{Outcome{Result: TempError, Identity: Helo, Problem: "bad (name)\r\nX-Evil: 1"}, "Temperror (helo: bad 'name'  X-Evil: 1) identity=helo; client-ip=192.0.2.2; helo=mx.example.test; envelope-from=a@example.test; receiver=<UNKNOWN>"},
	} {
		if got := ReceivedSPF(tc.o, h); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	evil := HeaderInfo{ClientIP: netip.MustParseAddr("192.0.2.2"), Helo: "x;\r\nX-Evil: 1", EnvelopeFrom: "", Receiver: "r@x"}
	if got := ReceivedSPF(Outcome{Result: None, Identity: Helo}, evil); strings.ContainsAny(got, "\r\n") || !strings.Contains(got, "envelope-from=<>;") {
		t.Errorf("unsafe SMTP values: %q", got)
	}
}

// lintZone serves records under lint.example.test on loopback.
func lintZone(t *testing.T, records ...string) dnsx.Resolver {
	s := labtest.Serve(t, labtest.Zone(t, "lint.example.test", append([]string{"mx1 IN A 192.0.2.1"}, records...)...))
	return &dnsx.Client{Servers: []string{s.Addr()}, Timeout: time.Second}
}

func TestLint(t *testing.T) {
	var includes []string
	var chain []string
	for i := range 11 {
		includes = append(includes, "inc"+string(rune('a'+i))+".lint.example.test")
		chain = append(chain, `inc`+string(rune('a'+i))+` IN TXT "v=spf1 a:mx1.lint.example.test -all"`)
	}
	r := lintZone(t, append(chain,
		`plusall IN TXT "v=spf1 +all"`,
		`ptr IN TXT "v=spf1 ptr -all"`,
		`two IN TXT "v=spf1 -all"`,
		`two IN TXT "v=spf1 mx -all"`,
		`bad IN TXT "v=spf1 ip4:192.0.2.0/24 foo -all"`,
		`voids IN TXT "v=spf1 a:nx1.lint.example.test mx:nx2.lint.example.test exists:nx3.lint.example.test -all"`,
		`many IN TXT "v=spf1 include:`+strings.Join(includes[:6], " include:")+`" " include:`+strings.Join(includes[6:], " include:")+` -all"`,
		`after IN TXT "v=spf1 -all mx"`,
		`good IN TXT "v=spf1 a:mx1.lint.example.test -all"`,
		`noall IN TXT "v=spf1 a:mx1.lint.example.test"`,
	)...)
	for _, tc := range []struct {
		domain string
		sev    Severity
		msg    string
	}{
		{"plusall.lint.example.test", SevError, "+all"},
		{"ptr.lint.example.test", SevWarn, "\"ptr\""},
		{"two.lint.example.test", SevError, "2 SPF records"},
		{"bad.lint.example.test", SevError, "position 24"},
		{"voids.lint.example.test", SevError, "3 lookups return no records"},
		{"many.lint.example.test", SevError, "needs 22 DNS lookups"},
		{"after.lint.example.test", SevWarn, "never evaluated"},
		{"noall.lint.example.test", SevWarn, "no \"all\""},
		{"none.lint.example.test", SevError, "no SPF record"},
	} {
		rep := Lint(context.Background(), r, tc.domain)
		found := false
		for _, f := range rep.Findings {
			if f.Severity == tc.sev && strings.Contains(f.String(), tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no %s finding with %q in %v", tc.domain, tc.sev, tc.msg, rep.Findings)
		}
	}
	if rep := Lint(context.Background(), r, "good.lint.example.test"); len(rep.Findings) != 0 || rep.Lookups != 1 {
		t.Errorf("good record: %+v", rep)
	}
	// The include tree: the top record with its one lookup per include,
	// then each include at depth 1 with its own "a".
	rep := Lint(context.Background(), r, "many.lint.example.test")
	if len(rep.Tree) != 12 || rep.Tree[0].Lookups != 11 || rep.Tree[0].Depth != 0 {
		t.Fatalf("tree %+v", rep.Tree)
	}
	for i, n := range rep.Tree[1:] {
		if n.Depth != 1 || n.Via != "include" || n.Domain != includes[i] || n.Lookups != 1 || !strings.HasPrefix(n.Record, "v=spf1 a:") {
			t.Errorf("node %d: %+v", i+1, n)
		}
	}
}

func TestTimeoutIsTempError(t *testing.T) {
	// The record is served, the "a" target's server never answers within
	// the deadline: temperror, never a silent pass or fail.
	r := lintZone(t, `@ IN TXT "v=spf1 a:slow.example.org -all"`)
	c := &Checker{Resolver: r}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o := c.CheckHost(ctx, netip.MustParseAddr("192.0.2.1"), "lint.example.test", "a@lint.example.test", "x")
	// example.org is not served by this lab server: REFUSED, a server
	// failure, so temperror.
	if o.Result != TempError || o.Problem == "" {
		t.Errorf("got %+v, want temperror with a problem", o)
	}
}

func TestEvaluationTimeLimit(t *testing.T) {
	r := lintZone(t, `@ IN TXT "v=spf1 a:mx1.lint.example.test -all"`)
	ip := netip.MustParseAddr("192.0.2.1")
	if o := (&Checker{Resolver: r, Timeout: time.Minute}).CheckHost(context.Background(), ip, "lint.example.test", "a@lint.example.test", "x"); o.Result != Pass {
		t.Fatalf("within the limit: %+v", o)
	}
	o := (&Checker{Resolver: r, Timeout: time.Nanosecond}).CheckHost(context.Background(), ip, "lint.example.test", "a@lint.example.test", "x")
	if o.Result != TempError || !strings.Contains(o.Problem, "time limit") {
		t.Errorf("past the limit: %+v, want temperror naming the time limit", o)
	}
}
