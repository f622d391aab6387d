package policyd

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/spf"
)

// quiet drops the servers' logs in tests; what matters is asserted.
var quiet = slog.New(slog.DiscardHandler)

func labDNS(t testing.TB) string { return labtest.Lab(t) }

func startPolicyd(t testing.TB, resolver dnsx.Resolver, opts Options) string {
	t.Helper()
	srv := New(&spf.Checker{Resolver: resolver}, opts, 100, quiet)
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

type client struct {
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, network, addr string) *client {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c, bufio.NewReader(c)}
}

// ask sends one request (attribute lines) and returns the action line.
func (c *client) ask(t *testing.T, attrs string) string {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s\n\n", strings.TrimSpace(attrs)); err != nil {
		t.Fatal(err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if blank, _ := c.r.ReadString('\n'); blank != "\n" {
		t.Fatalf("answer not followed by an empty line: %q", blank)
	}
	return strings.TrimSuffix(line, "\n")
}

func request(ip, helo, sender, instance string) string {
	return fmt.Sprintf(`request=smtpd_access_policy
protocol_state=RCPT
protocol_name=ESMTP
helo_name=%s
queue_id=
sender=%s
recipient=rcpt@rcpt.test
client_address=%s
client_name=unknown
instance=%s`, helo, sender, ip, instance)
}

func labResolver(t *testing.T) dnsx.Resolver {
	return dnsx.NewCache(&dnsx.Client{Servers: []string{labDNS(t)}, Timeout: 200 * time.Millisecond, Attempts: 1}, dnsx.CacheOptions{})
}

func TestAnswers(t *testing.T) {
	res := labResolver(t)
	defaults := Options{HideReceiver: true}
	for _, tc := range []struct {
		name   string
		opts   Options
		ip     string
		helo   string
		sender string
		want   string
	}{
		{"pass", defaults, "127.0.0.2", "mail.example.test", "a@example.test",
			"action=PREPEND Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=127.0.0.2; helo=mail.example.test; envelope-from=a@example.test; receiver=<UNKNOWN>"},
		{"fail rejected", defaults, "127.0.0.3", "stranger.test", "a@example.test",
			"action=550 5.7.23 Message rejected due to: SPF fail - not authorized."},
		{"softfail prepended under Fail", defaults, "127.0.0.3", "stranger.test", "a@soft.example.test",
			"action=PREPEND Received-SPF: Softfail (mailfrom) identity=mailfrom; client-ip=127.0.0.3; helo=stranger.test; envelope-from=a@soft.example.test; receiver=<UNKNOWN>"},
		{"softfail rejected under Softfail", Options{MailFromReject: RejectSoftfail, HideReceiver: true}, "127.0.0.3", "stranger.test", "a@soft.example.test",
			"action=550 5.7.23 Message rejected due to: SPF Softfail."},
		{"fail only prepended under False", Options{MailFromReject: RejectNever, HideReceiver: true}, "127.0.0.3", "stranger.test", "a@example.test",
			"action=PREPEND Received-SPF: Fail (mailfrom) identity=mailfrom; client-ip=127.0.0.3; helo=stranger.test; envelope-from=a@example.test; receiver=<UNKNOWN>"},
		{"permerror prepended", defaults, "127.0.0.2", "stranger.test", "a@voids.example.test",
			"action=PREPEND Received-SPF: Permerror (mailfrom: Void lookup limit of 2 exceeded) identity=mailfrom; client-ip=127.0.0.2; helo=stranger.test; envelope-from=a@voids.example.test; receiver=<UNKNOWN>"},
		{"permerror rejected", Options{PermErrorReject: true, HideReceiver: true}, "127.0.0.2", "stranger.test", "a@voids.example.test",
			"action=550 5.7.24 Message rejected due to: SPF Permerror (Void lookup limit of 2 exceeded)."},
		{"HELO fail rejects first", defaults, "127.0.0.3", "mail.example.test", "a@elsewhere.test",
			"action=550 5.7.23 Message rejected due to: SPF fail - not authorized."},
		{"bounce checked by HELO", defaults, "127.0.0.2", "mail.example.test", "",
			"action=PREPEND Received-SPF: Pass (helo) identity=helo; client-ip=127.0.0.2; helo=mail.example.test; envelope-from=<>; receiver=<UNKNOWN>"},
		{"receiver shown", Options{}, "127.0.0.2", "mail.example.test", "a@example.test",
			"action=PREPEND Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=127.0.0.2; helo=mail.example.test; envelope-from=a@example.test; receiver=rcpt@rcpt.test"},
		{"skip address", Options{SkipAddresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "127.0.0.3", "stranger.test", "a@example.test",
			"action=PREPEND X-Comment: SPF check N/A for local connections - client-ip=127.0.0.3; helo=stranger.test; envelope-from=a@example.test; receiver=rcpt@rcpt.test"},
		{"allowed domain", Options{AllowDomains: []string{"mail.example.test"}, HideReceiver: true}, "127.0.0.2", "x.test", "a@example.org",
			"action=PREPEND X-Comment: SPF skipped for whitelisted relay domain - client-ip=127.0.0.2; helo=x.test; envelope-from=a@example.org; receiver=<UNKNOWN>"},
		{"no sender, no helo", defaults, "127.0.0.2", "", "", "action=DUNNO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, "tcp", startPolicyd(t, res, tc.opts))
			if got := c.ask(t, request(tc.ip, tc.helo, tc.sender, "1.1")); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestTempErrorDefer(t *testing.T) {
	// A DNS server that never answers: SPF temperror.
	res := &dnsx.Client{Servers: []string{labtest.Silent(t)}, Timeout: 50 * time.Millisecond, Attempts: 1}
	c := dial(t, "tcp", startPolicyd(t, res, Options{TempErrorDefer: true, HeloReject: RejectNoCheck}))
	got := c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "1.1"))
	if !strings.HasPrefix(got, "action=DEFER_IF_PERMIT 4.7.24 Message deferred due to: SPF Temperror") {
		t.Errorf("got %s", got)
	}
	c = dial(t, "tcp", startPolicyd(t, res, Options{HeloReject: RejectNoCheck, HideReceiver: true}))
	got = c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "1.1"))
	if !strings.HasPrefix(got, "action=PREPEND Received-SPF: Temperror (mailfrom: dns: example.test TXT:") {
		t.Errorf("without TempError_Defer: %s", got)
	}
}

func TestOneAnswerPerMessage(t *testing.T) {
	c := dial(t, "tcp", startPolicyd(t, labResolver(t), Options{}))
	if got := c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "7.1")); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Fatalf("first recipient: %s", got)
	}
	if got := c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "7.1")); got != "action=DUNNO" {
		t.Errorf("second recipient of the same message: %s, want DUNNO (header added once)", got)
	}
	reject := c.ask(t, request("127.0.0.3", "x.test", "a@example.test", "7.2"))
	if again := c.ask(t, request("127.0.0.3", "x.test", "a@example.test", "7.2")); again != reject || !strings.HasPrefix(again, "action=550") {
		t.Errorf("rejection not repeated for the next recipient: %s then %s", reject, again)
	}
}

func TestMalformedRequestsGetDunno(t *testing.T) {
	c := dial(t, "tcp", startPolicyd(t, labResolver(t), Options{}))
	for _, bad := range []string{
		"this is not a policy request",
		"request=smtpd_access_policy\nnovalue\nclient_address=127.0.0.2",
		"request=something_else\nclient_address=127.0.0.2",
		"request=smtpd_access_policy\nclient_address=not-an-ip\nsender=a@example.test",
		"request=smtpd_access_policy\nclient_address=127.0.0.2\nsender=a@example.test\nhelo_name=\x00\xff",
	} {
		if got := c.ask(t, bad); got != "action=DUNNO" && !strings.HasPrefix(got, "action=PREPEND") {
			t.Errorf("%q: %s", bad, got)
		}
	}
	// The connection survives and answers real requests.
	if got := c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "9.1")); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
		t.Errorf("after malformed requests: %s", got)
	}
	// An over-long line ends the connection, not the server.
	c.conn.Write([]byte(strings.Repeat("x", 20000) + "\n\n"))
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Error("over-long line answered instead of closing")
	}
}

func TestConcurrentClientsAndUnixSocket(t *testing.T) {
	res := labResolver(t)
	srv := New(&spf.Checker{Resolver: res}, Options{}, 100, quiet)
	sock := filepath.Join(t.TempDir(), "policy.sock")
	ln, err := Listen("unix:"+sock, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, "unix", sock)
			for j := range 4 {
				got := c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", fmt.Sprintf("%d.%d", i, j)))
				if !strings.HasPrefix(got, "action=PREPEND Received-SPF: Pass") {
					errs <- got
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st := srv.Stats(); st.Requests != 64 {
		t.Errorf("%d requests counted, want 64", st.Requests)
	}
}

// panicResolver stands for a bug inside mailwall: the checks blow up.
type panicResolver struct{}

func (panicResolver) Query(context.Context, string, uint16) (*dnsx.Answer, error) {
	panic("resolver bug")
}

func TestInternalFailureFollowsOnError(t *testing.T) {
	for _, tc := range []struct {
		deferOnError bool
		want         string
	}{{false, "action=DUNNO"}, {true, "action=DEFER_IF_PERMIT 4.7.24 temporary failure in the SPF check"}} {
		c := dial(t, "tcp", startPolicyd(t, panicResolver{}, Options{DeferOnError: tc.deferOnError}))
		if got := c.ask(t, request("127.0.0.2", "mail.example.test", "a@example.test", "1.1")); got != tc.want {
			t.Errorf("on_error defer=%v: %s, want %s", tc.deferOnError, got, tc.want)
		}
	}
}

func TestReloadChangesLaterAnswers(t *testing.T) {
	res := labResolver(t)
	srv := New(&spf.Checker{Resolver: res}, Options{HideReceiver: true}, 10, quiet)
	ln, err := Listen("inet:127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c := dial(t, "tcp", ln.Addr().String())
	if got := c.ask(t, request("127.0.0.3", "stranger.test", "a@example.test", "1.1")); !strings.HasPrefix(got, "action=550") {
		t.Fatalf("before the reload: %s, want a rejection", got)
	}
	srv.Reload(&spf.Checker{Resolver: res}, Options{MailFromReject: RejectNever, HideReceiver: true})
	// The same connection: Postfix keeps policy connections open across
	// reloads, so the new rules must apply to it too.
	if got := c.ask(t, request("127.0.0.3", "stranger.test", "a@example.test", "1.2")); !strings.HasPrefix(got, "action=PREPEND Received-SPF: Fail") {
		t.Errorf("after the reload to Mail_From_reject False: %s", got)
	}
}
