package lists

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Source is where the lists are kept (the store).
type Source interface {
	// ListsVersion changes whenever an entry is added or removed, on
	// any host sharing the database.
	ListsVersion(ctx context.Context) (int64, error)
	// ListEntries returns every entry of both lists.
	ListEntries(ctx context.Context) ([]Entry, error)
}

// DefaultRefresh is how often a Cache asks the source whether the lists
// changed: one single-row read, so that an entry added on one MX host
// (or by the CLI) applies on all of them within seconds, and no message
// costs a query.
const DefaultRefresh = 10 * time.Second

// Cache holds the current Set in memory for the hot path and reloads it
// from a Source when its version changes. Its zero value is not usable:
// use NewCache.
type Cache struct {
	src     Source
	log     *slog.Logger
	set     atomic.Pointer[Set]
	version atomic.Int64
	loaded  atomic.Bool
}

// NewCache returns a cache over src, empty until Refresh.
func NewCache(src Source, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.Default()
	}
	c := &Cache{src: src, log: log}
	c.set.Store(Compile(nil))
	return c
}

// Set is the current snapshot; never nil. A nil Cache gives an empty
// Set.
func (c *Cache) Set() *Set {
	if c == nil {
		return nil
	}
	return c.set.Load()
}

// Refresh reloads the entries when the source's version changed (or on
// the first call). On error the cache keeps what it had.
func (c *Cache) Refresh(ctx context.Context) error {
	v, err := c.src.ListsVersion(ctx)
	if err != nil {
		return err
	}
	if c.loaded.Load() && v == c.version.Load() {
		return nil
	}
	entries, err := c.src.ListEntries(ctx)
	if err != nil {
		return err
	}
	s := Compile(entries)
	c.set.Store(s)
	c.version.Store(v)
	c.loaded.Store(true)
	c.log.Info("allow and block lists loaded", "entries", s.Len(), "version", v)
	return nil
}

// Run refreshes every interval (DefaultRefresh when 0) until ctx ends,
// logging failures (the old lists stay in force).
func (c *Cache) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRefresh
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := c.Refresh(rctx); err != nil {
				c.log.Warn("allow and block lists not refreshed: the old ones stay", "err", err)
			}
			cancel()
		}
	}
}
