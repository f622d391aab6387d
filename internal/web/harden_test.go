package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fastAuth is an Auth with a cheap hash and a clock the test moves.
func fastAuth(t *testing.T, now *time.Time) *Auth {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuth("admin", string(h), func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Before: the failure count was read before bcrypt and raised after, so
// 300 concurrent guesses were all checked and the right one logged in.
func TestConcurrentLoginsReservedBeforeHashing(t *testing.T) {
	for _, rightAt := range []int{0, 150, 299} {
		t.Run(fmt.Sprint(rightAt), func(t *testing.T) {
			now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
			a := fastAuth(t, &now)
			var wg sync.WaitGroup
			start := make(chan struct{})
			var mu sync.Mutex
			codes := map[error]int{}
			rightOK := false
			wrongBeforeRight := 0 // wrong guesses checked before the login
			for i := range 300 {
				pw := "guess"
				if i == rightAt {
					pw = "correct horse"
				}
				wg.Go(func() {
					<-start
					_, err := a.login(context.Background(), "192.0.2.7", "admin", pw)
					mu.Lock()
					codes[err]++
					if err == nil {
						rightOK = true
						wrongBeforeRight = codes[errWrong]
					}
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			st := a.Stats()
			// What bounds guessing: at most maxFailures wrong passwords
			// checked, whatever the order; the right one is one more.
			if codes[errWrong] > maxFailures {
				t.Errorf("%d wrong passwords checked, want at most %d (%v)", codes[errWrong], maxFailures, codes)
			}
			if st.Checks != uint64(codes[errWrong]+codes[nil]) || st.Checks > maxFailures+1 {
				t.Errorf("%d passwords checked, outcomes %v", st.Checks, codes)
			}
			if st.Checks+st.Refused != 300 {
				t.Errorf("checks %d + refused %d != 300", st.Checks, st.Refused)
			}
			if rightOK && wrongBeforeRight >= maxFailures {
				t.Errorf("logged in after %d failures", wrongBeforeRight)
			}
		})
	}
}

// Failures from many addresses slow the account, they do not lock it:
// the admin's address, which has not failed, still logs in.
func TestAccountSlowedNotLocked(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	a := fastAuth(t, &now)
	ctx := context.Background()
	for i := range accountSlowAfter {
		if _, err := a.login(ctx, fmt.Sprintf("198.51.100.%d", i), "admin", "guess"); !errors.Is(err, errWrong) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// Slowed: an address that failed may not try again for the account
	// even below its own limit; a new one gets one check per second.
	if _, err := a.login(ctx, "198.51.100.1", "admin", "correct horse"); !errors.Is(err, errSlowed) {
		t.Errorf("failed address: %v, want errSlowed", err)
	}
	if _, err := a.login(ctx, "203.0.113.1", "admin", "guess"); !errors.Is(err, errWrong) {
		t.Errorf("new address: %v, want a check", err)
	}
	if _, err := a.login(ctx, "203.0.113.9", "admin", "correct horse"); !errors.Is(err, errSlowed) {
		t.Errorf("second check within a second: %v, want errSlowed", err)
	}
	now = now.Add(accountSlowEvery)
	if _, err := a.login(ctx, "203.0.113.9", "admin", "correct horse"); err != nil {
		t.Errorf("admin from a clean address: %v", err)
	}
	// Other user names are not slowed by the account's failures.
	if _, err := a.login(ctx, "198.51.100.1", "root", "guess"); !errors.Is(err, errWrong) {
		t.Errorf("other name: %v", err)
	}
	// The window ends.
	now = now.Add(failureWindow + time.Second)
	if _, err := a.login(ctx, "198.51.100.1", "admin", "correct horse"); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestBcryptBounded(t *testing.T) {
	now := time.Now()
	a := fastAuth(t, &now)
	for range cap(a.hashing) {
		a.hashing <- struct{}{} // every turn taken
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.login(ctx, "192.0.2.1", "admin", "correct horse"); !errors.Is(err, errBusy) {
		t.Fatalf("%v, want errBusy", err)
	}
	if st := a.Stats(); st.Checks != 0 {
		t.Errorf("stats %+v", st)
	}
	// The refused attempt gave its reservation back.
	if f := a.failures["192.0.2.1"]; f != nil && (f.pending != 0 || f.n != 0) {
		t.Errorf("reservation kept: %+v", f)
	}
}

func TestIPv6CountedBy64(t *testing.T) {
	now := time.Now()
	a := fastAuth(t, &now)
	for i := range maxFailures {
		a.login(context.Background(), fmt.Sprintf("2001:db8:1:2::%x", i+1), "x", "guess")
	}
	if _, err := a.login(context.Background(), "2001:db8:1:2:ffff::1", "admin", "correct horse"); !errors.Is(err, errThrottled) {
		t.Errorf("same /64: %v, want errThrottled", err)
	}
	if _, err := a.login(context.Background(), "2001:db8:1:3::1", "admin", "correct horse"); err != nil {
		t.Errorf("other /64: %v", err)
	}
}

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"no proxy configured: header ignored", "127.0.0.1:5000", []string{"203.0.113.5"}, nil, "127.0.0.1"},
		{"untrusted peer: header ignored", "192.0.2.9:5000", []string{"203.0.113.5"}, proxies, "192.0.2.9"},
		{"trusted proxy", "127.0.0.1:5000", []string{"203.0.113.5"}, proxies, "203.0.113.5"},
		{"forged left part skipped", "127.0.0.1:5000", []string{"1.2.3.4, 203.0.113.5"}, proxies, "203.0.113.5"},
		{"chain of proxies", "127.0.0.1:5000", []string{"198.51.100.1, 203.0.113.5, 10.1.1.1"}, proxies, "203.0.113.5"},
		{"several headers", "127.0.0.1:5000", []string{"9.9.9.9", "203.0.113.5"}, proxies, "203.0.113.5"},
		{"mapped", "127.0.0.1:5000", []string{"::ffff:203.0.113.5"}, proxies, "203.0.113.5"},
		{"garbage from proxy", "127.0.0.1:5000", []string{"unknown"}, proxies, "127.0.0.1"},
		{"no header", "127.0.0.1:5000", nil, proxies, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/login", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tc.trusted); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// One attacker behind the trusted proxy locks out only itself.
func TestProxiedAttackerDoesNotLockOutAdmin(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	a := fastAuth(t, &now)
	d := &Dashboard{Auth: a, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	h, err := d.Handler()
	if err != nil {
		t.Fatal(err)
	}
	post := func(from, pw string) int {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"user": {"admin"}, "password": {pw}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = "127.0.0.1:4000"
		r.Header.Set("X-Forwarded-For", from)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	for range 50 {
		post("203.0.113.66", "guess")
	}
	if code := post("203.0.113.66", "correct horse"); code != http.StatusTooManyRequests {
		t.Errorf("attacker with the password: %d, want 429", code)
	}
	if code := post("198.51.100.20", "correct horse"); code != http.StatusSeeOther {
		t.Errorf("admin: %d, want the redirect after login", code)
	}
	if st := a.Stats(); st.Checks > maxFailures+1 {
		t.Errorf("%d checks", st.Checks)
	}
}

func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/verdicts?action=reject", "/verdicts?action=reject"},
		{"/dmarc/example.test", "/dmarc/example.test"},
		{"/", "/"},
		{"", "/"},
		{"//evil.test/", "/"},
		{"/\\evil.test", "/"},
		{"\\/evil.test", "/"},
		{"/\t/evil.test", "/"}, // /login?next=/%09/host: browsers drop the tab
		{"/\n/evil.test", "/"},
		{"/\r/evil.test", "/"},
		{"/ /evil.test", "/"},
		{"/%2F/evil.test", "/"}, // decodes to //evil.test: refused to be sure
		{"https://evil.test/", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.test", "/"},
		{"/x\u0085/y", "/"},
		{"/" + strings.Repeat("a", 3000), "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Through the handler: the decoded %09 never reaches a Location.
func TestLoginNextTab(t *testing.T) {
	s := newSite(t)
	c := s.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(s.URL+"/login", url.Values{"user": {"admin"}, "password": {"correct horse"}, "next": {"/\t/evil.test"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("Location %q, want /", loc)
	}
}

func TestStaticStaysInStaticDir(t *testing.T) {
	s := newSite(t)
	for _, p := range []string{
		"/static/%2e%2e/templates/base.html",
		"/static/%2E%2E/templates/login.html",
		"/static/..%2ftemplates/base.html",
		"/static/%2e%2e%2ftemplates%2fbase.html",
		"/static/%2e%2e%5ctemplates%5cbase.html",
		"/static/../templates/base.html",
		"/static/templates/base.html",
		"/static/",
	} {
		// A raw request line: clients would clean the path first.
		resp, body := rawGet(t, s.URL, p)
		if strings.Contains(body, "{{") {
			t.Errorf("%s: %d, a template served:\n%.200s", p, resp, body)
		}
	}
	if code, body := rawGet(t, s.URL, "/static/style.css"); code != http.StatusOK || body == "" {
		t.Errorf("style.css: %d", code)
	}
}

func rawGet(t *testing.T, base, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path // sent as written
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBodyLimit(t *testing.T) {
	s := newSite(t)
	big := "user=admin&password=" + strings.Repeat("x", 2*maxBody)
	req, _ := http.NewRequest("POST", s.URL+"/login", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("%d, want 413", resp.StatusCode)
	}
}

// A slow client is cut off: headers that never end, a body that never
// comes. Before, only ReadHeaderTimeout was set and a POST body could
// trickle for ever, each holding a descriptor.
func TestSlowClientsCut(t *testing.T) {
	now := time.Now()
	d := &Dashboard{Auth: fastAuth(t, &now)}
	h, err := d.Handler()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dashboard: h, readFor: 300 * time.Millisecond, MaxConns: 100, MaxPerPeer: 4, Log: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	for _, tc := range []struct{ name, send string }{
		{"headers", "POST /login HTTP/1.1\r\nHost: x\r\n"},
		{"body", "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nuser=admin&pa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.send)
			start := time.Now()
			c.SetReadDeadline(start.Add(5 * time.Second))
			io.ReadAll(c) // until the server closes
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("still open after %v", took)
			}
		})
	}
	// Past MaxPerPeer, a connection is closed at once. (The slow ones'
	// slots are given back just after the client sees them closed.)
	for deadline := time.Now().Add(2 * time.Second); s.guard.Stats().Open > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	var held []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// Read all at once: a Read past its deadline does not look for EOF.
	var refused atomic.Int32
	var wg sync.WaitGroup
	for _, c := range held {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(150 * time.Millisecond)) // before readFor closes them all
			if _, err := c.Read(make([]byte, 1)); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() != 1 {
		t.Errorf("%d of 5 connections closed at once, want 1 (stats %+v)", refused.Load(), s.guard.Stats())
	}
}
