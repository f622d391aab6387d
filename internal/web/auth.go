package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Session lifetimes: an idle session ends after SessionIdle, any session
// after SessionMax.
const (
	SessionIdle = 2 * time.Hour
	SessionMax  = 12 * time.Hour
	cookieName  = "mailwall_session"
)

// Login throttling: after maxFailures wrong passwords from one address
// within failureWindow, that address is refused until the window ends.
const (
	maxFailures   = 5
	failureWindow = 15 * time.Minute
)

// Auth checks the dashboard's one account and keeps its sessions in
// memory: a restart logs everyone out, which is what a single admin
// expects of a loopback tool.
type Auth struct {
	user string
	hash []byte
	now  func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
	failures map[string]*failures
}

type session struct {
	csrf              string
	created, lastUsed time.Time
}

// ended reports whether the session is over at now: idle too long, or
// too old.
func (s *session) ended(now time.Time) bool {
	return now.Sub(s.lastUsed) > SessionIdle || now.Sub(s.created) > SessionMax
}

type failures struct {
	n     int
	first time.Time
}

// NewAuth checks logins against user and a bcrypt hash of the password.
func NewAuth(user, bcryptHash string, now func() time.Time) (*Auth, error) {
	if user == "" {
		return nil, fmt.Errorf("web: no user name")
	}
	if _, err := bcrypt.Cost([]byte(bcryptHash)); err != nil {
		return nil, fmt.Errorf("web: password hash: %w (make one with: mailwall web password-hash)", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Auth{user: user, hash: []byte(bcryptHash), now: now, sessions: map[string]*session{}, failures: map[string]*failures{}}, nil
}

// HashPassword makes the bcrypt hash kept in web.password_hash.
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", fmt.Errorf("web: a password needs at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// NewPassword is a random password for the first run: 16 characters of
// base64, 96 bits.
func NewPassword() string { return randomToken(12) }

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// errThrottled is returned by login while an address is refused.
var errThrottled = fmt.Errorf("too many failed logins from this address: wait %v", failureWindow)

// login checks a user and password from addr and returns a new session
// token when they are right.
func (a *Auth) login(addr, user, password string) (string, error) {
	now := a.now()
	a.mu.Lock()
	f := a.failures[addr]
	if f != nil && now.Sub(f.first) > failureWindow {
		delete(a.failures, addr)
		f = nil
	}
	throttled := f != nil && f.n >= maxFailures
	a.mu.Unlock()
	if throttled {
		return "", errThrottled
	}
	// bcrypt runs whatever the user name, so timing does not tell
	// whether the name was right.
	passOK := bcrypt.CompareHashAndPassword(a.hash, []byte(password)) == nil
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) == 1
	a.mu.Lock()
	defer a.mu.Unlock()
	if !passOK || !userOK {
		if f = a.failures[addr]; f == nil {
			f = &failures{first: now}
			a.failures[addr] = f
		}
		f.n++
		return "", fmt.Errorf("wrong user name or password")
	}
	delete(a.failures, addr)
	token := randomToken(32)
	a.sessions[token] = &session{csrf: randomToken(24), created: now, lastUsed: now}
	a.expire(now)
	return token, nil
}

// expire drops ended sessions; a.mu is held.
func (a *Auth) expire(now time.Time) {
	for t, s := range a.sessions {
		if s.ended(now) {
			delete(a.sessions, t)
		}
	}
}

// session returns the request's live session, refreshing its idle time.
func (a *Auth) session(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[c.Value]
	if s == nil {
		return nil
	}
	if s.ended(now) {
		delete(a.sessions, c.Value)
		return nil
	}
	s.lastUsed = now
	return s
}

func (a *Auth) logout(r *http.Request) {
	if c, err := r.Cookie(cookieName); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
}

// sessionCookie is Secure when the browser came over TLS: to us, or to a
// TLS proxy in front that says so (a forged header only makes the
// cookie stricter).
func sessionCookie(r *http.Request, token string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: token, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")}
}

// clientAddr is the address throttling counts: the peer, without port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// sameOrigin rejects cross-site form posts (login CSRF included, which
// SameSite cookies do not cover). Browsers send Sec-Fetch-Site, which a
// page cannot set; older ones at least Origin with every POST.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none" // none: typed by the user
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser: nothing to forge
	}
	u, err := url.Parse(origin)
	// The host alone is compared: behind a TLS proxy the scheme differs.
	return err == nil && u.Host == r.Host
}
