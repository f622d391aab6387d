package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
	"mailwall/internal/store"
)

//go:embed templates/*.html static/*
var files embed.FS

// Dashboard is the web UI: server-rendered pages, no script, behind a
// login. Every page reads the store when it is asked for; nothing is
// cached, so what it shows is what the store holds.
type Dashboard struct {
	Store  *store.Store // nil: the pages say so
	Cache  *dnsx.Cache  // nil: no DNS page
	Config []byte       // the configuration in effect, secrets masked
	Auth   *Auth
	Log    *slog.Logger
	Now    func() time.Time // default time.Now
	// TrustedProxies are reverse proxies whose X-Forwarded-For names
	// the client that login throttling counts.
	TrustedProxies []netip.Prefix
	// Location is the time zone pages show and read times in
	// (web.timezone); nil: the system's.
	Location *time.Location
	// Postsuper is the command that releases (-H ID) or deletes (-d ID)
	// a held message (web.postsuper, split); nil: the page gives the
	// command to run by hand.
	Postsuper []string
	// Node is this host's name (hostname), as verdicts name the MX host
	// that decided: a held message of another host is not touched here.
	Node string
	// Feedback, when set, hears of each "spam" / "not spam" click (class
	// "spam", "ham", "" to forget; prev what the verdict's feedback was
	// before), for reputation.
	Feedback func(ctx context.Context, v *store.Verdict, prev, class string) error
	// Running, when set, is the configuration in effect now (after any
	// reload) and the reloads so far; it takes Config's place.
	Running func() Running

	pages map[string]*template.Template
}

// actions are the verdicts' actions, in the order pages list them.
var actions = []string{"accept", "tag", "quarantine", "reject", "tempfail"}

// Handler serves the dashboard.
func (d *Dashboard) Handler() (http.Handler, error) {
	if d.Auth == nil {
		return nil, errors.New("web: dashboard without a login")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.pages = map[string]*template.Template{}
	for _, p := range []string{"login", "overview", "verdicts", "verdict", "dmarc", "domain", "dns", "config", "error", "acted", "deliveries", "lists"} {
		t, err := template.New(p).Funcs(funcs).Funcs(actionFuncs).ParseFS(files, "templates/base.html", "templates/actions.html", "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		d.pages[p] = t
	}
	mux := http.NewServeMux()
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /static/", staticOnly(http.StripPrefix("/static/", http.FileServerFS(static))))
	mux.HandleFunc("GET /login", d.loginPage)
	mux.HandleFunc("POST /login", d.loginPost)
	mux.HandleFunc("POST /logout", d.authed(d.logout))
	mux.HandleFunc("GET /{$}", d.authed(d.overview))
	mux.HandleFunc("GET /verdicts", d.authed(d.verdicts))
	mux.HandleFunc("GET /verdicts/{id}", d.authed(d.verdict))
	mux.HandleFunc("GET /dmarc", d.authed(d.dmarc))
	mux.HandleFunc("GET /dmarc/{domain}", d.authed(d.domain))
	mux.HandleFunc("GET /dns", d.authed(d.dns))
	mux.HandleFunc("POST /dns/flush", d.authed(d.dnsFlush))
	mux.HandleFunc("GET /config", d.authed(d.config))
	mux.HandleFunc("POST /verdicts/{id}/list", d.authed(d.verdictList))
	mux.HandleFunc("POST /verdicts/{id}/learn", d.authed(d.verdictLearn))
	mux.HandleFunc("POST /verdicts/{id}/queue", d.authed(d.verdictQueue))
	mux.HandleFunc("GET /deliveries", d.authed(d.deliveries))
	mux.HandleFunc("POST /deliveries/{id}/resend", d.authed(d.resend))
	mux.HandleFunc("GET /lists", d.authed(d.lists))
	mux.HandleFunc("POST /lists", d.authed(d.listAdd))
	mux.HandleFunc("POST /lists/{id}/remove", d.authed(d.listRemove))
	return securityHeaders(limitBody(mux)), nil
}

// maxBody bounds a request body: the dashboard's forms are a few short
// fields. Past it, form parsing fails and the request gets 400.
const maxBody = 64 << 10

func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		if r.Method == http.MethodPost {
			// Parsed here, so a form cut short is refused, not read as
			// empty fields (a login with no password, counted as a
			// failure).
			if err := r.ParseForm(); err != nil {
				code := http.StatusBadRequest
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					code = http.StatusRequestEntityTooLarge
				}
				http.Error(w, "bad form", code)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// staticOnly refuses /static/ paths that could leave the static files
// (dot segments, escaped or not; escaped slashes or backslashes) before
// they reach the file server, which serves only the static directory
// anyway (fs.Sub): the templates beside it are not for the public.
func staticOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := strings.ToLower(r.URL.EscapedPath())
		if strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%2e") ||
			strings.Contains(r.URL.Path, "..") || strings.Contains(r.URL.Path, "\\") {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// securityHeaders: no script runs, nothing frames the pages, and
// nothing of them is cached or leaks in a Referer to another site.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: under no-referrer a browser sends
		// "Origin: null" with form posts, which sameOrigin must refuse.
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

type page struct {
	Title   string
	Nav     string // the menu entry to highlight
	CSRF    string // empty when logged out
	User    string
	Error   string
	Notice  string
	Content any
}

// authed sends visitors without a session to the login page, and checks
// the CSRF token of every POST.
func (d *Dashboard) authed(h func(http.ResponseWriter, *http.Request, *page)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := d.Auth.session(r)
		if s == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && (!sameOrigin(r) || r.PostFormValue("csrf") != s.csrf) {
			d.fail(w, r, http.StatusForbidden, "the form is stale or came from another site: reload the page and try again")
			return
		}
		h(w, r, &page{CSRF: s.csrf, User: d.Auth.user})
	}
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page) {
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "base", p); err != nil {
		d.Log.Error("web: template", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	d.render(w, r, code, "error", &page{Title: http.StatusText(code), Error: msg})
}

// storeError logs a failed query and shows its error.
func (d *Dashboard) storeError(w http.ResponseWriter, r *http.Request, err error) {
	d.Log.Error("web: store", "path", r.URL.Path, "err", err)
	d.fail(w, r, http.StatusServiceUnavailable, "the store did not answer: "+err.Error())
}

func (d *Dashboard) noStore(w http.ResponseWriter, r *http.Request, p *page) bool {
	if d.Store != nil {
		return false
	}
	p.Title, p.Error = "No store", "mailwall runs without a store (store.dsn is empty or the database did not open): nothing is recorded."
	d.render(w, r, http.StatusOK, "error", p)
	return true
}

// safeNext keeps a post-login redirect on this site: a path with
// exactly one leading slash, no scheme, no host, no backslash and no
// control character (browsers drop tabs and newlines from a Location,
// so "/\t/evil.test" would become "//evil.test"), else "/".
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || strings.ContainsRune(next, '\\') ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.IsSpace(r) }) {
		return "/"
	}
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.ContainsRune(u.Path, '\\') {
		return "/"
	}
	return next
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if d.Auth.session(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "login", &page{Title: "Log in", Content: safeNext(r.URL.Query().Get("next"))})
}

func (d *Dashboard) loginPost(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	addr := clientAddr(r, d.TrustedProxies)
	if !sameOrigin(r) {
		d.Log.Warn("web: login form from another site refused", "client", addr, "origin", r.Header.Get("Origin"), "fetch_site", r.Header.Get("Sec-Fetch-Site"))
		d.fail(w, r, http.StatusForbidden, "login form from another site")
		return
	}
	token, err := d.Auth.login(r.Context(), addr, r.PostFormValue("user"), r.PostFormValue("password"))
	if err != nil {
		code, level := http.StatusUnauthorized, slog.LevelWarn
		switch {
		case errors.Is(err, errThrottled), errors.Is(err, errSlowed):
			code = http.StatusTooManyRequests
		case errors.Is(err, errBusy):
			code = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		if code != http.StatusUnauthorized {
			// Refused unchecked: under a flood, one line per attempt
			// would bury the failures that matter (those checked).
			level = slog.LevelDebug
		}
		d.Log.Log(r.Context(), level, "web: login failed", "client", addr, "user", r.PostFormValue("user"), "err", err)
		d.render(w, r, code, "login", &page{Title: "Log in", Error: err.Error(), Content: next})
		return
	}
	d.Log.Info("web: login", "client", addr, "user", d.Auth.user)
	http.SetCookie(w, sessionCookie(r, token, int(SessionMax/time.Second)))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ *page) {
	d.Auth.logout(r)
	http.SetCookie(w, sessionCookie(r, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type dmarcData struct {
	Domains []string
	Sent    []store.ReportOut
}

func (d *Dashboard) dmarc(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	domains, err := d.Store.ReportedDomains(r.Context())
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	sent, err := d.Store.Reports(r.Context(), store.ReportFilter{Limit: 50})
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	p.Title, p.Nav, p.Content = "DMARC", "dmarc", dmarcData{Domains: domains, Sent: sent}
	d.render(w, r, http.StatusOK, "dmarc", p)
}

type domainData struct {
	Days     int
	Picture  *store.DomainPicture
	Received []store.ReceivedReport
}

func (d *Dashboard) domain(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	days, _ := strconv.Atoi(r.URL.Query().Get("days"))
	if days <= 0 || days > 400 {
		days = 30
	}
	domain := strings.ToLower(r.PathValue("domain"))
	pic, err := d.Store.Picture(r.Context(), domain, d.Now().AddDate(0, 0, -days))
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	received, err := d.Store.ReceivedReports(r.Context(), domain, 100)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	p.Title, p.Nav, p.Content = "DMARC: "+domain, "dmarc", domainData{Days: days, Picture: pic, Received: received}
	d.render(w, r, http.StatusOK, "domain", p)
}

type dnsData struct {
	Query   string
	Stats   dnsx.CacheStats
	Entries []dnsx.CacheEntry
}

const dnsListLimit = 500

func (d *Dashboard) dns(w http.ResponseWriter, r *http.Request, p *page) {
	if d.Cache == nil {
		d.fail(w, r, http.StatusNotFound, "no DNS cache in this process")
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	p.Title, p.Nav = "DNS cache", "dns"
	p.Notice = r.URL.Query().Get("flushed")
	if p.Notice != "" {
		p.Notice = "Flushed: " + p.Notice
	}
	p.Content = dnsData{Query: q, Stats: d.Cache.Stats(), Entries: d.Cache.Entries(q, dnsListLimit)}
	d.render(w, r, http.StatusOK, "dns", p)
}

func (d *Dashboard) dnsFlush(w http.ResponseWriter, r *http.Request, _ *page) {
	if d.Cache == nil {
		d.fail(w, r, http.StatusNotFound, "no DNS cache in this process")
		return
	}
	var what string
	if name := strings.TrimSpace(r.PostFormValue("name")); name != "" {
		n := d.Cache.FlushName(name)
		what = name + " (" + strconv.Itoa(n) + " answers)"
	} else {
		n := d.Cache.Stats().Entries
		d.Cache.Flush()
		what = "everything (" + strconv.Itoa(n) + " answers)"
	}
	d.Log.Info("web: DNS cache flushed", "what", what, "user", d.Auth.user)
	http.Redirect(w, r, "/dns?flushed="+url.QueryEscape(what), http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"day":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"join":   strings.Join,
	"rrtype": func(t uint16) string { return dns.TypeToString[t] },
	"rcode":  func(c int) string { return dns.RcodeToString[c] },
	"left":   func(d time.Duration) string { return d.Round(time.Second).String() },
	"mean":   func(sum, n int64) string { return strconv.FormatFloat(float64(sum)/float64(max(n, 1)), 'f', 0, 64) },
	"pct": func(n, of int64) string {
		if of == 0 {
			return "–"
		}
		return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 0, 64) + "%"
	},
	// query builds a query string; its values are escaped here, so the
	// template may take it as a URL part.
	"query": func(kv ...string) template.URL {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return template.URL(v.Encode())
	},
	// The verdict pages' (verdicts.go).
	"local":       localTime,
	"decidedBy":   decidedBy,
	"actionsPage": actionsPage,
}
