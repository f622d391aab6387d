package main

import (
	"context"
	"sync"
	"time"
)

// lazyTimeout is a message's context: context.WithTimeout on
// context.Background, but its timer starts only when something waits on
// it (Done) or derives a context from it (which waits on Done). Most
// messages' checks are answered from caches (DNS, reputation, the
// first-seen history) and never do; a timer made and stopped for each
// of them was a tenth of the milter's work before the checks.
//
// The first Done makes the real context.WithDeadline and passes Done,
// Err and Value through to it from then on: a context derived from this
// one then finds the real one's cancelCtx through Value and is
// registered with it, where a Context the package does not know costs
// each derived context a goroutine waiting on Done.
type lazyTimeout struct {
	deadline time.Time

	mu       sync.Mutex
	ctx      context.Context    // made by the first Done
	cancel   context.CancelFunc // ctx's
	canceled bool               // cancelled before ctx was made
}

// newLazyTimeout returns a context that ends d from now, and its cancel.
func newLazyTimeout(d time.Duration) (*lazyTimeout, context.CancelFunc) {
	c := &lazyTimeout{deadline: time.Now().Add(d)}
	return c, c.stop
}

func (c *lazyTimeout) Deadline() (time.Time, bool) { return c.deadline, true }

// real is the real context, nil before the first Done.
func (c *lazyTimeout) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}

func (c *lazyTimeout) Value(key any) any {
	if ctx := c.real(); ctx != nil {
		return ctx.Value(key)
	}
	return nil
}

func (c *lazyTimeout) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithDeadline(context.Background(), c.deadline)
		if c.canceled {
			c.cancel()
		}
	}
	return c.ctx.Done()
}

// Err is nil until the context is cancelled or its deadline passed,
// whether or not anything waits on Done.
func (c *lazyTimeout) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ctx != nil:
		return c.ctx.Err()
	case c.canceled:
		return context.Canceled
	case !time.Now().Before(c.deadline):
		return context.DeadlineExceeded
	}
	return nil
}

func (c *lazyTimeout) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx != nil {
		c.cancel()
		return
	}
	// Past the deadline it ended with DeadlineExceeded already.
	if time.Now().Before(c.deadline) {
		c.canceled = true
	}
}

func (c *lazyTimeout) String() string { return "mailwall.lazyTimeout" }
