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
type lazyTimeout struct {
	deadline time.Time

	mu    sync.Mutex
	done  chan struct{} // made by the first Done; closed when err is set
	timer *time.Timer   // started by the first Done
	err   error
}

// newLazyTimeout returns a context that ends d from now, and its cancel.
func newLazyTimeout(d time.Duration) (*lazyTimeout, context.CancelFunc) {
	c := &lazyTimeout{deadline: time.Now().Add(d)}
	return c, func() { c.end(context.Canceled) }
}

func (c *lazyTimeout) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyTimeout) Value(any) any { return nil }

func (c *lazyTimeout) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	switch d := time.Until(c.deadline); {
	case c.err != nil:
		close(c.done)
	case d <= 0:
		c.err = context.DeadlineExceeded
		close(c.done)
	default:
		c.timer = time.AfterFunc(d, func() { c.end(context.DeadlineExceeded) })
	}
	return c.done
}

// Err is nil until the context is cancelled or its deadline passed,
// whether or not anything waits on Done.
func (c *lazyTimeout) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
	return c.err
}

func (c *lazyTimeout) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
}

func (c *lazyTimeout) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
}

func (c *lazyTimeout) String() string { return "mailwall.lazyTimeout" }
