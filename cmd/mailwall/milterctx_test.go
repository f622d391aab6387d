package main

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestLazyTimeout: the message's context ends as context.WithTimeout's
// does, whether or not anything waited on it before: at its deadline
// with DeadlineExceeded, on cancel with Canceled; a context derived from
// it keeps its deadline and ends with it.
func TestLazyTimeout(t *testing.T) {
	const short = 20 * time.Millisecond
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}
	for _, tc := range []struct {
		name string
		d    time.Duration
		run  func(ctx context.Context, cancel context.CancelFunc) context.Context // the context to check
		want error
	}{
		{"cancelled before anything waited", time.Hour, func(ctx context.Context, cancel context.CancelFunc) context.Context {
			cancel()
			return ctx
		}, context.Canceled},
		{"cancelled while waited on", time.Hour, func(ctx context.Context, cancel context.CancelFunc) context.Context {
			ctx.Done()
			cancel()
			return ctx
		}, context.Canceled},
		{"deadline, waited on", short, func(ctx context.Context, _ context.CancelFunc) context.Context { return ctx }, context.DeadlineExceeded},
		{"deadline passed, nothing waited", short, func(ctx context.Context, _ context.CancelFunc) context.Context {
			time.Sleep(2 * short)
			if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Err before Done: %v", err)
			}
			return ctx
		}, context.DeadlineExceeded},
		{"derived", short, func(ctx context.Context, _ context.CancelFunc) context.Context {
			child, cancel := context.WithTimeout(ctx, time.Hour)
			t.Cleanup(cancel)
			if d, _ := child.Deadline(); d.After(time.Now().Add(time.Minute)) {
				t.Errorf("child's deadline %v is not its parent's", d)
			}
			return child
		}, context.DeadlineExceeded},
		{"cancel after the deadline", short, func(ctx context.Context, cancel context.CancelFunc) context.Context {
			<-ctx.Done()
			cancel()
			return ctx
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := newLazyTimeout(tc.d)
			if err := ctx.Err(); err != nil {
				t.Fatalf("new context: Err %v", err)
			}
			if d, ok := ctx.Deadline(); !ok || time.Until(d) > tc.d {
				t.Errorf("deadline %v %v", d, ok)
			}
			c := tc.run(ctx, cancel)
			if !closed(c.Done()) {
				t.Fatal("Done not closed")
			}
			if err := c.Err(); !errors.Is(err, tc.want) {
				t.Errorf("Err %v, want %v", err, tc.want)
			}
			if first, again := ctx.Done(), ctx.Done(); first != again {
				t.Error("Done gives another channel each call")
			}
		})
	}
}

// TestLazyTimeoutChildrenNoGoroutine: contexts derived from the message's
// context are registered with the real one, as with context.WithTimeout,
// not each watched by a goroutine of its own.
func TestLazyTimeoutChildrenNoGoroutine(t *testing.T) {
	ctx, cancel := newLazyTimeout(time.Hour)
	defer cancel()
	before := runtime.NumGoroutine()
	var children []context.Context
	for range 50 {
		child, cancelChild := context.WithTimeout(ctx, time.Minute)
		defer cancelChild()
		children = append(children, child)
	}
	if n := runtime.NumGoroutine() - before; n > 5 {
		t.Errorf("50 derived contexts started %d goroutines", n)
	}
	cancel()
	for _, c := range children {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a derived context did not end with its parent")
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("derived context: %v", c.Err())
		}
	}
}
