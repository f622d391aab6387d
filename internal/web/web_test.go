package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthz(t *testing.T) {
	var broken error
	s := &Server{Health: []Health{{Name: "store", Check: func(context.Context) error { return broken }}}}
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, body := get(); code != http.StatusOK || !strings.Contains(body, `"store":"ok"`) {
		t.Errorf("healthy: %d %s", code, body)
	}
	broken = errors.New("store: database is locked")
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "database is locked") {
		t.Errorf("store down: %d %s", code, body)
	}
}

func TestNoDashboardIs404(t *testing.T) {
	rec := httptest.NewRecorder()
	(&Server{}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET / without a dashboard: %d", rec.Code)
	}
}
