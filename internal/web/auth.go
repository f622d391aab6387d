package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// Login throttling. Each attempt is counted before its password is
// hashed, so concurrent guesses cannot all slip in under the limit.
//
//   - Per client address (an IPv6 address by its /64): after maxFailures
//     wrong passwords within failureWindow the address is refused until
//     the window ends.
//   - Per account, over all addresses: past accountSlowAfter failures
//     within failureWindow the account is slowed, not locked: only
//     addresses with no failure of their own in the window may try, one
//     password check per accountSlowEvery. Many addresses then get one
//     guess each, no faster than that, while the admin, from an address
//     that has not failed, still logs in. (A hard lock per user name
//     would let anyone lock the admin out.)
//   - At most maxHashing bcrypt comparisons run at once (bcrypt is meant
//     to be slow; unbounded, logins would take the CPU the mail checks
//     need); a login waits up to hashWait for its turn, then gets 503.
//
// Behind a reverse proxy every request comes from the proxy's address:
// list it in web.trusted_proxies so that the client address is taken
// from X-Forwarded-For, or one attacker locks everyone out.
const (
	maxFailures      = 5
	failureWindow    = 15 * time.Minute
	accountSlowAfter = 20
	accountSlowEvery = time.Second
	hashWait         = 3 * time.Second
	// maxTracked bounds the addresses remembered; past it the expired
	// are dropped, then any.
	maxTracked = 100_000
)

// maxHashing is half the CPUs, at least one: logins never take all of
// them from the mail checks.
var maxHashing = max(1, runtime.NumCPU()/2)

// Auth checks the dashboard's one account and keeps its sessions in
// memory: a restart logs everyone out, which is what a single admin
// expects of a loopback tool.
type Auth struct {
	user string
	hash atomic.Pointer[[]byte] // SetHash replaces it
	now  func() time.Time
	// hashing holds a token per bcrypt comparison running.
	hashing chan struct{}

	mu       sync.Mutex
	sessions map[string]*session
	failures map[string]*failures
	account  accountFailures

	checks, refused atomic.Uint64
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

// failures are one address's: n failed, pending being checked.
type failures struct {
	n, pending int
	first      time.Time
}

// accountFailures are the account's failures from all addresses.
type accountFailures struct {
	n     int
	first time.Time
	next  time.Time // slowed: the next check may start then
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
	a := &Auth{user: user, now: now, hashing: make(chan struct{}, maxHashing),
		sessions: map[string]*session{}, failures: map[string]*failures{}}
	h := []byte(bcryptHash)
	a.hash.Store(&h)
	return a, nil
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

// Refusals of login, before any password is checked.
var (
	errThrottled = fmt.Errorf("too many failed logins from this address: wait %v", failureWindow)
	errSlowed    = errors.New("too many failed logins for this user: try again in a moment, from an address without failed logins")
	errBusy      = errors.New("too many logins at once: try again in a moment")
	errWrong     = errors.New("wrong user name or password")
)

// LoginStats count password checks (bcrypt comparisons) and logins
// refused before one.
type LoginStats struct{ Checks, Refused uint64 }

// Stats returns the login counters.
func (a *Auth) Stats() LoginStats {
	return LoginStats{Checks: a.checks.Load(), Refused: a.refused.Load()}
}

// throttleKey is what an address is counted as: an IPv6 address by its
// /64, which one host usually has all of.
func throttleKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// login checks a user and password from addr and returns a new session
// token when they are right.
func (a *Auth) login(ctx context.Context, addr, user, password string) (string, error) {
	key := throttleKey(addr)
	// Compared in constant time, and bcrypt runs whatever the name, so
	// timing does not tell whether the name was right.
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) == 1
	f, err := a.reserve(key, userOK)
	if err != nil {
		a.refused.Add(1)
		return "", err
	}
	wait, cancel := context.WithTimeout(ctx, hashWait)
	defer cancel()
	select {
	case a.hashing <- struct{}{}:
	case <-wait.Done():
		a.mu.Lock()
		f.pending--
		a.mu.Unlock()
		a.refused.Add(1)
		return "", errBusy
	}
	a.checks.Add(1)
	passOK := bcrypt.CompareHashAndPassword(*a.hash.Load(), []byte(password)) == nil
	<-a.hashing
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	f.pending--
	if !passOK || !userOK {
		f.n++
		if userOK {
			if a.account.n == 0 || now.Sub(a.account.first) > failureWindow {
				a.account = accountFailures{first: now}
			}
			a.account.n++
		}
		return "", errWrong
	}
	// A login does not clear the address's failures: they expire with
	// their window. Clearing them would let a burst of concurrent guesses
	// that holds the right password get more than maxFailures checks
	// (those reserved after the login finished), and the one who logged
	// in has a session and no need of more tries. The login's own slot
	// is freed: a wrong guess reserved after it is still one of the
	// address's maxFailures (what bounds guessing is wrong passwords
	// checked), and an admin who mistyped once may log in again.
	token := randomToken(32)
	a.sessions[token] = &session{csrf: randomToken(24), created: now, lastUsed: now}
	a.expire(now)
	return token, nil
}

// reserve counts an attempt from key before its password is checked,
// or refuses it. account says the name is the account's.
func (a *Auth) reserve(key string, account bool) (*failures, error) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.failures[key]
	if f != nil && f.pending == 0 && now.Sub(f.first) > failureWindow {
		delete(a.failures, key)
		f = nil
	}
	if f != nil && f.n+f.pending >= maxFailures {
		return nil, errThrottled
	}
	if account && a.account.n >= accountSlowAfter && now.Sub(a.account.first) <= failureWindow {
		if f != nil && f.n > 0 || now.Before(a.account.next) {
			return nil, errSlowed
		}
		a.account.next = now.Add(accountSlowEvery)
	}
	if f == nil {
		if len(a.failures) >= maxTracked {
			a.forget(now)
		}
		f = &failures{first: now}
		a.failures[key] = f
	}
	f.pending++
	return f, nil
}

// forget makes room in a.failures: the expired entries go, and if that
// is not enough, a tenth of the rest (a flood of addresses then buys a
// few of them more tries; the account's own limit still holds).
func (a *Auth) forget(now time.Time) {
	for k, f := range a.failures {
		if f.pending == 0 && now.Sub(f.first) > failureWindow {
			delete(a.failures, k)
		}
	}
	drop := maxTracked / 10
	for k, f := range a.failures {
		if len(a.failures) < maxTracked-drop {
			break
		}
		if f.pending == 0 {
			delete(a.failures, k)
		}
	}
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

// clientAddr is the address throttling counts: the peer's, or, when the
// peer is a trusted proxy, the last address in X-Forwarded-For that is
// not one (proxies append the address they got the request from, so
// everything left of that may be forged by the client).
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !inPrefixes(peer.Unmap(), trusted) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // the proxy wrote what we cannot read: count the proxy
		}
		ip = ip.Unmap()
		if !inPrefixes(ip, trusted) {
			return ip.String()
		}
	}
	return host // all trusted: a request from the proxy's own side
}

func inPrefixes(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
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
