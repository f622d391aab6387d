package greylist

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Row is a triplet's row as a store keeps it, in Unix seconds; Found
// false: there is none.
type Row struct {
	Found               bool
	First, Last, Passed int64
}

// TripletAt is a request for a triplet at a Unix second, waiting to be
// recorded (write-behind).
type TripletAt struct {
	Triplet
	At int64
}

// BatchStore is a Store that can read a triplet without writing it and
// record many requests in one transaction: what a Greylister's
// write-behind needs (StartWriteBehind).
type BatchStore interface {
	Store
	// PeekTripletClient reads t's row and, unless client is "", the
	// client's passes as ClientPasses reads them; it writes nothing.
	PeekTripletClient(ctx context.Context, t Triplet, client string, now time.Time, maxAge time.Duration) (row Row, passes int, last time.Time, err error)
	// SeenTriplets records each request as SeenTriplet would have at
	// its time, all in one transaction; a triplet asked more than once
	// is recorded at its first request only (the later ones, within
	// the milliseconds a batch gathers, would move only its last use).
	SeenTriplets(ctx context.Context, reqs []TripletAt, tm Timing) error
}

// Write-behind's bounds.
const (
	// flushAfter is how long a deferred triplet waits in memory for
	// others to share its transaction: a retry comes minutes later. On
	// SQLite a batch of one cost 60 us of CPU a triplet, of 10 about
	// 16, of 25 to 50 about 11, of 100 or more 8: at 2,000 deferrals a
	// second a batch is some 20.
	flushAfter = 10 * time.Millisecond
	// flushRows is a batch that is written at once, without waiting
	// out flushAfter.
	flushRows = 256
	// maxPending bounds the triplets waiting or being written; past it
	// a request is recorded as without write-behind, its client waiting
	// for the write (the store is not keeping up: those waits slow the
	// flood down, and past greylistTimeout the mail is not greylisted).
	maxPending = 4096
	// flushTimeout bounds one batch's write, the last one's at Close too.
	flushTimeout = 5 * time.Second
)

// writeBehind records deferred triplets a few milliseconds after their
// deferral was answered, many in one transaction: a new triplet then
// costs a read and a share of a batch where it cost a write of its own
// (on SQLite a transaction of its own, a random page and its index
// written to the WAL: the dearest part of a botnet's flood, where every
// request is a new triplet).
//
// What is waiting is lost if the process dies before the flush: those
// senders' retries are deferred once more (their delay starts again),
// nothing worse. A graceful stop (Close) writes it. Several MX hosts
// on one PostgreSQL database still agree: a retry comes minutes after
// the deferral, long after its flush, and the flush applies the same
// upsert SeenTriplet would have, at the request's own time.
type writeBehind struct {
	st  BatchStore
	tm  Timing
	log *slog.Logger

	mu sync.Mutex
	// pending is every triplet queued or being written, with the start
	// of its delay: a quick retry is answered from it.
	pending map[cacheKey]int64
	queue   []TripletAt // not yet taken by the flusher
	keys    []cacheKey  // queue's keys in pending
	closed  bool
	// flushed is closed, and replaced, each time a batch is written.
	flushed chan struct{}

	wake chan struct{} // the queue is no longer empty
	full chan struct{} // the queue reached flushRows
	stop chan struct{}
	done chan struct{}
}

// StartWriteBehind makes g record the triplets it defers a few
// milliseconds after answering, in batches (writeBehind), when its store
// can (BatchStore); it reports whether it did. Whoever starts it must
// Close g when it stops using it, so that the last ones are written.
func (g *Greylister) StartWriteBehind(log *slog.Logger) bool {
	bs, ok := g.store.(BatchStore)
	if !ok {
		return false
	}
	if log == nil {
		log = slog.Default()
	}
	g.wbOnce.Do(func() {
		w := &writeBehind{st: bs, log: log, pending: make(map[cacheKey]int64), flushed: make(chan struct{}),
			tm:   Timing{Delay: g.cfg.Delay, RetryWindow: g.cfg.RetryWindow, MaxAge: g.cfg.MaxAge},
			wake: make(chan struct{}, 1), full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		go w.run()
		g.wb.Store(w)
	})
	return true
}

// Close writes the triplets still waiting (for at most a few seconds)
// and stops write-behind; later requests are recorded as they come. It
// does nothing when write-behind was not started, and may be called
// more than once.
func (g *Greylister) Close() {
	w := g.wb.Load()
	if w == nil {
		return
	}
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.done
}

// pendingFirst is the start of t's delay when t waits to be written,
// and whether it does.
func (w *writeBehind) pendingFirst(k cacheKey) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	first, ok := w.pending[k]
	return first, ok
}

// waitWritten waits until k no longer waits to be written, hurrying
// its batch: a retry past the delay while its triplet still waits (the
// store slower than the delay is short, or a test's clock) then finds
// its row.
func (w *writeBehind) waitWritten(ctx context.Context, k cacheKey) error {
	for {
		w.mu.Lock()
		if _, ok := w.pending[k]; !ok {
			w.mu.Unlock()
			return nil
		}
		signal(w.full)
		ch := w.flushed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("greylist: waiting for the write-behind: %w", ctx.Err())
		}
	}
}

// hasRoom reports whether another triplet may wait.
func (w *writeBehind) hasRoom() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.closed && len(w.pending) < maxPending
}

// add queues t, asked at at, whose delay began at first; false when
// write-behind is closed or full: the caller writes it itself.
func (w *writeBehind) add(k cacheKey, t Triplet, at, first int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.pending) >= maxPending {
		return false
	}
	w.pending[k] = first
	w.queue = append(w.queue, TripletAt{Triplet: t, At: at})
	w.keys = append(w.keys, k)
	switch len(w.queue) {
	case 1:
		signal(w.wake)
	case flushRows:
		signal(w.full)
	}
	return true
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run writes the queue flushAfter after its first triplet came (at once
// when flushRows are waiting), until stopped; then it writes what is
// left.
func (w *writeBehind) run() {
	defer close(w.done)
	t := time.NewTimer(flushAfter)
	t.Stop()
	for {
		select {
		case <-w.wake:
		case <-w.stop:
			w.flush()
			return
		}
		t.Reset(flushAfter)
		select {
		case <-t.C:
		case <-w.full:
			t.Stop()
		case <-w.stop:
			t.Stop()
			w.flush()
			return
		}
		w.flush()
	}
}

// flush writes the queue in one transaction and forgets its triplets. A
// failed write is logged and its triplets forgotten all the same: their
// retries find no row and are deferred again (or, while the store
// fails, not greylisted).
func (w *writeBehind) flush() {
	w.mu.Lock()
	batch, keys := w.queue, w.keys
	w.queue, w.keys = nil, nil
	// The signals a batch taken here left behind would only make the next
	// one wait for nothing.
	select {
	case <-w.full:
	default:
	}
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	err := w.st.SeenTriplets(ctx, batch, w.tm)
	cancel()
	if err != nil {
		w.log.Error("greylist: new triplets not recorded: their senders will be deferred again when they retry",
			"triplets", len(batch), "err", fmt.Errorf("greylist: write-behind: %w", err))
	}
	w.mu.Lock()
	for _, k := range keys {
		delete(w.pending, k)
	}
	close(w.flushed)
	w.flushed = make(chan struct{})
	w.mu.Unlock()
}
