package main

import (
	"context"
	"log/slog"
	"time"

	"mailwall/internal/store"
	"mailwall/internal/web"
)

// passwordRefresh is how often serve reads the dashboard's password hash
// from the store, so "mailwall web reset-password" takes effect on every
// host within it, with no restart.
const passwordRefresh = 10 * time.Second

// watchPassword reads the password hash kept in the store every period
// until ctx ends, and gives a changed one to auth (which ends every
// session). A store that fails is logged and asked again.
func watchPassword(ctx context.Context, st *store.Store, auth *web.Auth, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h, ok, err := st.Setting(ctx, passwordSetting)
		if err != nil {
			log.Warn("web: could not read the dashboard password from the store", "err", err)
			continue
		}
		if !ok {
			continue
		}
		changed, err := auth.SetHash(h)
		switch {
		case err != nil:
			log.Error("web: the store's dashboard password hash is not usable; the old one stays", "err", err)
		case changed:
			log.Info("web: dashboard password changed (mailwall web reset-password): sessions ended")
		}
	}
}
