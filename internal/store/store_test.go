package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSeenDomain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db", "mailwall.db")
	s, err := Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode: %v %v", fi.Mode(), err)
	}
	day1 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	first, since, err := s.SeenDomain(ctx, "example.test", day1)
	if err != nil || !first.Equal(day1) {
		t.Fatalf("first sighting: %v %v", first, err)
	}
	if time.Since(since) > time.Minute {
		t.Errorf("history since %v, want about now", since)
	}
	first, _, err = s.SeenDomain(ctx, "example.test", day1.Add(48*time.Hour))
	if err != nil || !first.Equal(day1) {
		t.Errorf("second sighting moved first-seen: %v %v", first, err)
	}
	s.Close()

	// Reopened: the history and its start survive; migrations do not rerun.
	s, err = Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, since2, err := s.SeenDomain(ctx, "example.test", day1.Add(72*time.Hour))
	if err != nil || !first.Equal(day1) || !since2.Equal(since) {
		t.Errorf("after reopen: first %v since %v (was %v) %v", first, since2, since, err)
	}
	var n int
	s.db.QueryRow(`SELECT messages FROM sender_domains WHERE domain = 'example.test'`).Scan(&n)
	if n != 3 {
		t.Errorf("messages %d, want 3", n)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, "oracle", "x"); err == nil {
		t.Error("unknown driver accepted")
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "notadb")
	os.WriteFile(bad, []byte("this is not a database, it is a text file of some length......"), 0o600)
	if _, err := Open(ctx, "sqlite", bad); err == nil {
		t.Error("a text file opened as a database")
	}
}
