package web

import (
	"bytes"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// SetHash makes logins check against a new bcrypt hash, as when the
// password was reset while the daemon runs. When it differs from the
// one in use every session ends: whoever knew the old password is out.
// changed reports whether it differed.
func (a *Auth) SetHash(bcryptHash string) (changed bool, err error) {
	if _, err := bcrypt.Cost([]byte(bcryptHash)); err != nil {
		return false, fmt.Errorf("web: password hash: %w", err)
	}
	h := []byte(bcryptHash)
	if bytes.Equal(*a.hash.Load(), h) {
		return false, nil
	}
	a.hash.Store(&h)
	a.mu.Lock()
	clear(a.sessions)
	a.mu.Unlock()
	return true, nil
}
