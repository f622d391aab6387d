package store

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder writes verdicts in the background, in batches, so that a slow
// or broken database never holds mail: Record never blocks. A full queue
// or a failed write loses the record, never the message; both are logged
// and counted.
type Recorder struct {
	st  *Store
	log *slog.Logger
	q   chan Verdict
	// OnError, when set, is called for every record lost (for metrics).
	onError func(lost int)

	lost    atomic.Int64
	written atomic.Int64
	wg      sync.WaitGroup
	stop    chan struct{}
}

// NewRecorder starts a recorder with room for queue verdicts waiting.
// onError (may be nil) hears of every record lost.
func (s *Store) NewRecorder(log *slog.Logger, queue int, onError func(lost int)) *Recorder {
	if queue <= 0 {
		queue = 4096
	}
	r := &Recorder{st: s, log: log, q: make(chan Verdict, queue), onError: onError, stop: make(chan struct{})}
	r.wg.Add(1)
	go r.run()
	return r
}

// Record queues v for writing and returns at once.
func (r *Recorder) Record(v Verdict) {
	select {
	case r.q <- v:
	default:
		r.lose(1, "store queue full: verdict not recorded", nil)
	}
}

// Lost is how many records were lost; Written how many were stored.
func (r *Recorder) Lost() int64    { return r.lost.Load() }
func (r *Recorder) Written() int64 { return r.written.Load() }

// Close writes what is queued (for at most a few seconds) and stops.
func (r *Recorder) Close() {
	close(r.stop)
	r.wg.Wait()
}

func (r *Recorder) lose(n int, msg string, err error) {
	r.lost.Add(int64(n))
	if r.onError != nil {
		r.onError(n)
	}
	r.log.Error(msg, "lost", n, "err", err)
}

const maxBatch = 200

func (r *Recorder) run() {
	defer r.wg.Done()
	batch := make([]Verdict, 0, maxBatch)
	flush := func(timeout time.Duration) {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := r.st.InsertVerdicts(ctx, batch)
		cancel()
		if err != nil {
			r.lose(len(batch), "store write failed: verdicts not recorded", err)
		} else {
			r.written.Add(int64(len(batch)))
		}
		batch = batch[:0]
	}
	for {
		select {
		case v := <-r.q:
			batch = append(batch, v)
			// Take what else is waiting: one transaction for a burst.
			for len(batch) < maxBatch {
				select {
				case v := <-r.q:
					batch = append(batch, v)
					continue
				default:
				}
				break
			}
			flush(10 * time.Second)
		case <-r.stop:
			for {
				select {
				case v := <-r.q:
					batch = append(batch, v)
					if len(batch) == maxBatch {
						flush(3 * time.Second)
					}
					continue
				default:
				}
				break
			}
			flush(3 * time.Second)
			return
		}
	}
}
