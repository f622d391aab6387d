package main

import (
	"context"
	"log/slog"
	"reflect"
	"sync"

	"mailwall/internal/config"
	"mailwall/internal/store"
)

// junkWatchers keeps the Junk-folder watcher in step with the config: a
// reload that changes what it watches (checks.classifier.learn, the
// per-recipient switch, reputation's feedback) stops the running one,
// after the pass under way, and starts one on the new settings. The new
// one reads Junk again; the store's record of what was learnt keeps it
// from counting a message twice, as after a restart.
type junkWatchers struct {
	ctx context.Context
	st  *store.Store
	log *slog.Logger

	mu   sync.Mutex
	key  junkWatchKey
	stop func()
}

// junkWatchKey is the part of the config the watcher depends on.
type junkWatchKey struct {
	learn        config.ClassifierLearnConfig
	perRecipient bool
	reputation   config.ReputationConfig
}

func junkKeyOf(cfg *config.Config) junkWatchKey {
	return junkWatchKey{cfg.Checks.Classifier.Learn, cfg.Checks.Classifier.PerRecipient, cfg.Checks.Reputation}
}

func startJunkWatchers(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) *junkWatchers {
	w := &junkWatchers{ctx: ctx, st: st, log: log, key: junkKeyOf(cfg)}
	w.stop = startJunkWatcher(ctx, cfg, st, log)
	return w
}

// apply restarts the watcher when cfg changes what it watches, and
// reports whether it did.
func (w *junkWatchers) apply(cfg *config.Config) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := junkKeyOf(cfg)
	if reflect.DeepEqual(key, w.key) {
		return false
	}
	w.stop()
	w.key = key
	w.stop = startJunkWatcher(w.ctx, cfg, w.st, w.log)
	w.log.Info("classifier: the Junk-folder watcher follows the reloaded config", "maildirs", len(cfg.Checks.Classifier.Learn.Maildirs))
	return true
}

// Stop stops the watcher, waiting for a pass under way.
func (w *junkWatchers) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stop()
	w.stop = func() {}
}
