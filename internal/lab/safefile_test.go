package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smallLab is a one-domain lab with an ed25519 key (cheap to make).
func smallLab(t *testing.T) *File {
	f, err := Parse([]byte("mx: {name: mx.r.test, domain: r.test}\ndomains: [{name: a.test, dkim: [{selector: s, algorithm: ed25519}], hosts: [{name: m, ip: 127.0.0.9, sign: true}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// victim is a file outside the lab directory that a planted symlink
// points at; it must come out unchanged.
func victim(t *testing.T) (string, func()) {
	p := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(p, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, func() {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "precious\n" {
			t.Errorf("the symlink's target was written: %q %v", b, err)
		}
	}
}

// TestBuildPlantedSymlinks: symlinks planted in the lab directory are
// never written through (issue 23): a zone file's is replaced, a key
// file's or a directory's is refused, and a directory of someone else
// or writable by all is refused.
func TestBuildPlantedSymlinks(t *testing.T) {
	t.Run("zone file", func(t *testing.T) {
		dir := t.TempDir()
		target, unchanged := victim(t)
		os.MkdirAll(filepath.Join(dir, "zones"), 0o755)
		link := filepath.Join(dir, "zones", "a.test.zone")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if _, _, err := smallLab(t).Build(dir); err != nil {
			t.Fatal(err)
		}
		unchanged()
		if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("zone file: %v %v", fi, err)
		}
	})
	for _, name := range []string{"s.txt", "s.private"} {
		t.Run("key "+name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(t.TempDir(), "victim") // a dangling link: the old code created its target
			os.MkdirAll(filepath.Join(dir, "keys", "a.test"), 0o700)
			if err := os.Symlink(target, filepath.Join(dir, "keys", "a.test", name)); err != nil {
				t.Fatal(err)
			}
			_, _, err := smallLab(t).Build(dir)
			if err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("build: %v", err)
			}
			if _, err := os.Lstat(target); err == nil {
				t.Error("the dangling symlink's target was created")
			}
		})
	}
	for _, sub := range []string{"zones", "keys", "keys/a.test"} {
		t.Run("directory "+sub, func(t *testing.T) {
			dir := t.TempDir()
			elsewhere := t.TempDir()
			os.MkdirAll(filepath.Dir(filepath.Join(dir, sub)), 0o700)
			if err := os.Symlink(elsewhere, filepath.Join(dir, sub)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := smallLab(t).Build(dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("build: %v", err)
			}
			if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
				t.Errorf("written through the link: %v", ents)
			}
		})
	}
	t.Run("lab directory writable by all", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o777)
		if _, _, err := smallLab(t).Build(dir); err == nil || !strings.Contains(err.Error(), "writable by everyone") {
			t.Errorf("build: %v", err)
		}
	})
	t.Run("Maildir", func(t *testing.T) {
		dir := t.TempDir()
		elsewhere := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "Maildir", ".Quarantine"), 0o700)
		if err := os.Symlink(elsewhere, filepath.Join(dir, "Maildir", ".Quarantine", "new")); err != nil {
			t.Fatal(err)
		}
		if err := ownMaildir(filepath.Join(dir, "Maildir")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("maildir: %v", err)
		}
	})
	t.Run("a clean directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "lab")
		if _, _, err := smallLab(t).Build(dir); err != nil {
			t.Fatal(err)
		}
		if err := ownMaildir(filepath.Join(dir, "Maildir")); err != nil {
			t.Fatal(err)
		}
		// A second run over its own files is fine.
		if _, _, err := smallLab(t).Build(dir); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFileNames(t *testing.T) {
	for _, text := range []string{
		"mx: {name: mx.r.test, domain: r.test}\ndomains: [{name: ../../x.test, hosts: [{name: m, ip: 127.0.0.9}]}]\n",
		"mx: {name: mx.r.test, domain: r.test}\ndomains: [{name: a.test, dkim: [{selector: ../s}], hosts: [{name: m, ip: 127.0.0.9}]}]\n",
		"mx: {name: mx.r/x.test, domain: r/x.test}\ndomains: [{name: a.test, hosts: [{name: m, ip: 127.0.0.9}]}]\n",
	} {
		if _, err := Parse([]byte(text)); err == nil || !strings.Contains(err.Error(), "file name") {
			t.Errorf("%q: %v", text, err)
		}
	}
}
