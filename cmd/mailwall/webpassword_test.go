package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"mailwall/internal/web"
)

// lockedBuffer is a log sink the watcher and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestPasswordResetWithoutRestart: a new hash put in the store (as
// "mailwall web reset-password" does) is what the running dashboard
// checks logins against once the watcher has read it: the new password
// logs in, the old one no longer does, and the session opened with the
// old one has ended.
func TestPasswordResetWithoutRestart(t *testing.T) {
	st := openSQLiteStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	oldHash, _ := web.HashPassword("the old password")
	newHash, _ := web.HashPassword("the new password")
	if err := st.SetSetting(ctx, passwordSetting, oldHash); err != nil {
		t.Fatal(err)
	}
	auth, err := web.NewAuth("admin", oldHash, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := (&web.Dashboard{Auth: auth}).Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	login := func(password string) (*http.Cookie, int) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(url.Values{"user": {"admin"}, "password": {password}, "next": {"/config"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", srv.URL)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.MaxAge >= 0 && c.Value != "" {
				return c, resp.StatusCode
			}
		}
		return nil, resp.StatusCode
	}
	page := func(c *http.Cookie) string {
		req, _ := http.NewRequest("GET", srv.URL+"/config", nil)
		req.AddCookie(c)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status + " " + resp.Header.Get("Location")
	}
	oldSession, code := login("the old password")
	if oldSession == nil || code != http.StatusSeeOther {
		t.Fatalf("login with the password of the start: %d", code)
	}

	var logs lockedBuffer
	go watchPassword(ctx, st, auth, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := st.SetSetting(ctx, passwordSetting, newHash); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "dashboard password changed"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not take the new hash:\n%s", logs.String())
		}
	}
	if _, code := login("the old password"); code != http.StatusUnauthorized {
		t.Errorf("the old password after the reset: %d, want 401", code)
	}
	if c, code := login("the new password"); c == nil || code != http.StatusSeeOther || !strings.HasPrefix(page(c), "200 ") {
		t.Errorf("the new password: %d", code)
	}
	if got := page(oldSession); !strings.Contains(got, "/login") {
		t.Errorf("the session of the old password: %s, want sent to /login", got)
	}
	// A broken hash in the store is refused; the working one stays.
	st.SetSetting(ctx, passwordSetting, "not a hash")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "not usable"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no complaint about the broken hash:\n%s", logs.String())
		}
	}
	if c, code := login("the new password"); c == nil || code != http.StatusSeeOther {
		t.Errorf("after a broken hash in the store: %d, want the working password kept", code)
	}
}
