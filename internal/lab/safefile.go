package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The lab directory may be under /tmp or shared: another local user who
// can plant a symlink in it could have the lab write zone files, keys or
// mail wherever the symlink points, with our rights (issue 23). So every
// directory the lab writes in must be a real directory of ours that
// nobody else can write to (then nobody else can add or replace a
// symlink in it after the check), and the files in it are replaced by
// rename, which replaces a symlink rather than following it.

// ownDir makes path a directory of ours with mode perm, or checks the
// one there: not a symlink, owned by us, writable by nobody else.
func ownDir(path string, perm fs.FileMode) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(path, perm); err != nil {
			return err
		}
		fi, err = os.Lstat(path)
	}
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("lab: %s is a symbolic link; refusing to write through it", path)
	case !fi.IsDir():
		return fmt.Errorf("lab: %s is not a directory", path)
	case fi.Mode().Perm()&0o002 != 0:
		return fmt.Errorf("lab: %s is writable by everyone (mode %v); refusing to write in it", path, fi.Mode().Perm())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("lab: %s belongs to user %d, not to us; refusing to write in it", path, st.Uid)
	}
	// Group-writable is fine for a user's private group (umask 002),
	// not for a group others are in.
	if fi.Mode().Perm()&0o020 != 0 && int(st.Gid) != os.Getegid() {
		return fmt.Errorf("lab: %s is writable by group %d (mode %v); refusing to write in it", path, st.Gid, fi.Mode().Perm())
	}
	return nil
}

// noSymlink refuses a path that is a symbolic link; one that does not
// exist is fine.
func noSymlink(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("lab: %s is a symbolic link; refusing to use it", path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("lab: %s is not a regular file", path)
	}
	return nil
}

// writeFile writes data to path through a new file in the same
// directory renamed over it: whatever was at path, a symlink included,
// is replaced, never written through.
func writeFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// ownMaildir makes the MX's Maildir and its quarantine folder ours, as
// ownDir does, before the receiver writes mail in them.
func ownMaildir(md string) error {
	for _, d := range []string{md, filepath.Join(md, ".Quarantine")} {
		if err := ownDir(d, 0o700); err != nil {
			return err
		}
		for _, sub := range []string{"tmp", "new", "cur"} {
			if err := ownDir(filepath.Join(d, sub), 0o700); err != nil {
				return err
			}
		}
	}
	return nil
}
