package main

import (
	"slices"
	"sync"
	"time"

	"mailwall/internal/config"
	"mailwall/internal/web"
)

// maxReloadsKept bounds the reloads the dashboard is told of.
const maxReloadsKept = 50

// liveConfig is what the dashboard shows as the configuration in effect:
// the one serve started with, then each reload's (with the sections that
// wait for a restart as they run), and the reloads that failed.
type liveConfig struct {
	mu  sync.Mutex
	now func() time.Time
	run web.Running
}

// newLiveConfig starts with cfg, read from path ("" for the defaults).
func newLiveConfig(cfg *config.Config, path string) *liveConfig {
	l := &liveConfig{now: time.Now}
	l.run.Path = path
	l.run.YAML, l.run.Loaded = redacted(cfg), l.now()
	return l
}

// redacted is cfg as the dashboard shows it.
func redacted(cfg *config.Config) []byte {
	yaml, err := cfg.Redacted()
	if err != nil {
		return []byte("# the configuration could not be shown: " + err.Error() + "\n")
	}
	return yaml
}

// reloaded records cfg as the configuration in effect after a reload;
// restart names the changed sections that wait for a restart.
func (l *liveConfig) reloaded(cfg *config.Config, restart []string) {
	yaml := redacted(cfg)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.run.YAML, l.run.Loaded = yaml, now
	l.record(web.Reload{At: now, OK: true, Restart: restart})
}

// failed records a reload that did not apply: the config stays.
func (l *liveConfig) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(web.Reload{At: l.now(), Error: err.Error()})
}

func (l *liveConfig) record(r web.Reload) {
	l.run.Reloads = append(l.run.Reloads, r)
	if n := len(l.run.Reloads); n > maxReloadsKept {
		l.run.Reloads = slices.Delete(l.run.Reloads, 0, n-maxReloadsKept)
	}
}

// get is the state now, a copy the caller may keep.
func (l *liveConfig) get() web.Running {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.run
	r.Reloads = slices.Clone(r.Reloads)
	return r
}
