package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/labtest"
	"mailwall/internal/store"
)

type testSite struct {
	*httptest.Server
	st    *store.Store
	cache *dnsx.Cache
	now   time.Time
}

func newSite(t *testing.T, opts ...func(*Dashboard)) *testSite {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "mailwall.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lab := labtest.Lab(t)
	cache := dnsx.NewCache(&dnsx.Client{Servers: []string{lab}, Timeout: time.Second}, dnsx.CacheOptions{})
	hash, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	site := &testSite{st: st, cache: cache, now: time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC)}
	auth, err := NewAuth("admin", hash, func() time.Time { return site.now })
	if err != nil {
		t.Fatal(err)
	}
	d := &Dashboard{Store: st, Cache: cache, Auth: auth, Config: []byte("hostname: mx.rcpt.test\n"), Now: func() time.Time { return site.now }}
	for _, o := range opts {
		o(d)
	}
	h, err := d.Handler()
	if err != nil {
		t.Fatal(err)
	}
	site.Server = httptest.NewServer((&Server{Dashboard: h}).Handler())
	t.Cleanup(site.Close)
	return site
}

// client is a browser-like client: cookies kept, redirects followed,
// Origin sent with posts.
func (s *testSite) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: originTransport{s.URL}}
}

type originTransport struct{ origin string }

func (o originTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Header.Get("Origin") == "" {
		r.Header.Set("Origin", o.origin)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string, *url.URL) {
	t.Helper()
	var (
		resp *http.Response
		err  error
	)
	if method == http.MethodPost {
		resp, err = c.PostForm(u, form)
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Request.URL
}

func (s *testSite) login(t *testing.T, c *http.Client) {
	t.Helper()
	code, body, at := fetch(t, c, "POST", s.URL+"/login", url.Values{"user": {"admin"}, "password": {"correct horse"}, "next": {"/"}})
	if code != http.StatusOK || at.Path != "/" || !strings.Contains(body, "Results per stage") {
		t.Fatalf("login: %d at %s\n%s", code, at, body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestLoginRequired(t *testing.T) {
	s := newSite(t)
	c := s.client()
	for _, path := range []string{"/", "/verdicts", "/verdicts/1", "/dmarc", "/dmarc/example.test", "/dns", "/config"} {
		code, body, at := fetch(t, c, "GET", s.URL+path, nil)
		if at.Path != "/login" || at.Query().Get("next") != path || code != http.StatusOK || !strings.Contains(body, `name="password"`) ||
			strings.Contains(body, "mx.rcpt.test") {
			t.Errorf("%s without a session: %d at %s", path, code, at)
		}
	}
	if code, _, _ := fetch(t, c, "POST", s.URL+"/dns/flush", url.Values{}); code != http.StatusOK {
		// The redirect to the login page is followed as a GET.
		t.Errorf("flush without a session: %d", code)
	}

	code, body, _ := fetch(t, c, "POST", s.URL+"/login", url.Values{"user": {"admin"}, "password": {"wrong horse"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "wrong user name or password") {
		t.Errorf("wrong password: %d", code)
	}
	code, _, _ = fetch(t, c, "POST", s.URL+"/login", url.Values{"user": {"root"}, "password": {"correct horse"}})
	if code != http.StatusUnauthorized {
		t.Errorf("wrong user: %d", code)
	}
	// A login posted from another site is refused even with the password.
	req, _ := http.NewRequest("POST", s.URL+"/login", strings.NewReader("user=admin&password=correct+horse"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site login: %v %v", resp.StatusCode, err)
	}

	s.login(t, c)
	u, _ := url.Parse(s.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == cookieName && ck.Value == "" {
			t.Error("empty session cookie")
		}
	}
	// Behind a TLS proxy the cookie is Secure.
	req, _ = http.NewRequest("POST", s.URL+"/login", strings.NewReader("user=admin&password=correct+horse"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie behind a TLS proxy: %+v", cs)
	}
	// An open redirect after login is not followed off the site.
	c2 := s.client()
	_, _, at := fetch(t, c2, "POST", s.URL+"/login", url.Values{"user": {"admin"}, "password": {"correct horse"}, "next": {"//evil.example/x"}})
	if at.Host != u.Host || at.Path != "/" {
		t.Errorf("next=//evil.example led to %s", at)
	}

	// Logout ends the session; the session's token is needed to post it.
	_, body, _ = fetch(t, c, "GET", s.URL+"/config", nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, "mx.rcpt.test") {
		t.Fatalf("config page:\n%s", body)
	}
	if code, _, _ := fetch(t, c, "POST", s.URL+"/logout", url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("logout with a wrong token: %d", code)
	}
	fetch(t, c, "POST", s.URL+"/logout", url.Values{"csrf": {m[1]}})
	if _, _, at := fetch(t, c, "GET", s.URL+"/config", nil); at.Path != "/login" {
		t.Errorf("after logout: at %s", at)
	}

	// Sessions end after their idle time.
	s.login(t, c)
	s.now = s.now.Add(SessionIdle + time.Minute)
	if _, _, at := fetch(t, c, "GET", s.URL+"/", nil); at.Path != "/login" {
		t.Errorf("idle session still valid: at %s", at)
	}
}

func TestLoginThrottled(t *testing.T) {
	s := newSite(t)
	c := s.client()
	for i := range maxFailures {
		if code, _, _ := fetch(t, c, "POST", s.URL+"/login", url.Values{"user": {"admin"}, "password": {"guess"}}); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	code, body, _ := fetch(t, c, "POST", s.URL+"/login", url.Values{"user": {"admin"}, "password": {"correct horse"}})
	if code != http.StatusTooManyRequests || !strings.Contains(body, "too many failed logins") {
		t.Errorf("right password after %d failures: %d", maxFailures, code)
	}
	s.now = s.now.Add(failureWindow + time.Second)
	s.login(t, c)
}

func TestPages(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	v := store.Verdict{At: s.now.Add(-90 * time.Minute), Node: "mx1", QueueID: "4XyZ1", ClientIP: "192.0.2.7", ClientName: "mail.bank.test",
		Helo: "mail.bank.test", MailFrom: "a@bank.test", FromDomain: "bank.test", Rcpts: []string{"bob@rcpt.test"}, Action: "reject",
		Stage: "dmarc", Verdict: "fail", IPRev: "pass", SPF: "fail", DKIM: "fail:bank.test", DMARC: "fail", ARC: "none",
		Reasons: []string{"dmarc: p=reject <script>alert(1)</script>"}}
	w := v
	w.At, w.QueueID, w.Action, w.SPF, w.DKIM, w.DMARC, w.Reasons = s.now.Add(-10*time.Minute), "4XyZ2", "accept", "pass", "pass:bank.test", "pass", nil
	if err := s.st.InsertVerdicts(ctx, []store.Verdict{v, w}); err != nil {
		t.Fatal(err)
	}
	c := s.client()
	s.login(t, c)

	_, body, _ := fetch(t, c, "GET", s.URL+"/", nil)
	for _, want := range []string{`data-action="reject"><a href="/verdicts?action=reject">1</a>`, `data-action="all">2<`,
		`id="chart-spf"`, `data-pass="1" data-fail="1" data-other="0" data-none="0"`, `<b class="rate">50%</b>`,
		`data-start="2026-11-22 14:00:00" data-pass="0" data-fail="1"`, `href="/verdicts?domain=bank.test">bank.test</a></td><td>2</td><td>50%</td><td>1</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	if n := strings.Count(body, `<g class="bar"`); n != 5*24 {
		t.Errorf("%d bars, want 24 for each of 5 stages", n)
	}

	_, body, _ = fetch(t, c, "GET", s.URL+"/verdicts?action=reject", nil)
	if !strings.Contains(body, `data-queue-id="4XyZ1"`) || strings.Contains(body, "4XyZ2") {
		t.Errorf("filtered list:\n%s", body)
	}
	_, body, _ = fetch(t, c, "GET", s.URL+"/verdicts?hours=1", nil)
	if strings.Contains(body, "4XyZ1") || !strings.Contains(body, "4XyZ2") {
		t.Errorf("last hour:\n%s", body)
	}
	code, body, _ := fetch(t, c, "GET", s.URL+"/verdicts/1", nil)
	if code != http.StatusOK || !strings.Contains(body, "dmarc: p=reject &lt;script&gt;") || strings.Contains(body, "<script>") {
		t.Errorf("verdict page (escaped reasons): %d\n%s", code, body)
	}
	if code, _, _ := fetch(t, c, "GET", s.URL+"/verdicts/999", nil); code != http.StatusNotFound {
		t.Errorf("missing verdict: %d", code)
	}

	// DNS: what the cache holds is listed, and a flush empties it.
	dnsx.TXT(ctx, s.cache, "_dmarc.example.test")
	s.cache.Query(ctx, "nx.example.test", dns.TypeA)
	_, body, _ = fetch(t, c, "GET", s.URL+"/dns", nil)
	if !strings.Contains(body, "_dmarc.example.test.") || !strings.Contains(body, "NXDOMAIN, no records") || !strings.Contains(body, "v=DMARC1") {
		t.Errorf("dns page:\n%s", body)
	}
	token := csrfField.FindStringSubmatch(body)[1]
	if code, _, _ := fetch(t, c, "POST", s.URL+"/dns/flush", url.Values{"name": {"nx.example.test"}}); code != http.StatusForbidden {
		t.Errorf("flush without the token: %d", code)
	}
	if _, _, ok := s.cache.Peek("nx.example.test", dns.TypeA); !ok {
		t.Fatal("a refused flush flushed")
	}
	_, body, _ = fetch(t, c, "POST", s.URL+"/dns/flush", url.Values{"csrf": {token}, "name": {"nx.example.test"}})
	if !strings.Contains(body, "Flushed: nx.example.test (1 answers)") {
		t.Errorf("after flush:\n%s", body)
	}
	if _, _, ok := s.cache.Peek("nx.example.test", dns.TypeA); ok {
		t.Error("name still cached after flush")
	}
	fetch(t, c, "POST", s.URL+"/dns/flush", url.Values{"csrf": {token}})
	if n := s.cache.Stats().Entries; n != 0 {
		t.Errorf("%d entries after a full flush", n)
	}

	for _, path := range []string{"/dmarc", "/dmarc/bank.test", "/config", "/static/style.css"} {
		if code, _, _ := fetch(t, c, "GET", s.URL+path, nil); code != http.StatusOK {
			t.Errorf("%s: %d", path, code)
		}
	}
	resp, err := c.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", resp.Header)
	}
}
