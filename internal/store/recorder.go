package store

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder writes verdicts in the background, in batches, so that a slow
// or broken database never holds mail: Record never blocks. When a write
// fails (disk full, database locked or down) the verdicts are held in
// memory and written again, with growing pauses, once the database takes
// them. Only what exceeds the memory bound, or is still held at shutdown,
// is lost; both are logged and counted. The message is never affected.
type Recorder struct {
	st  *Store
	log *slog.Logger
	q   chan Verdict
	// hold bounds the verdicts kept in memory while the store fails.
	hold int
	// onError, when set, is called for every record lost (for metrics).
	onError func(lost int)
	// txRows bounds the verdicts of one transaction (see newRecorder).
	txRows int
	// retryMin and retryMax bound the pause between attempts after a
	// failed write.
	retryMin, retryMax time.Duration

	// hashSubjects: keep only SubjectHash of each Subject
	// (store.subject: hash).
	hashSubjects atomic.Bool

	// bytes is about how much memory the verdicts queued and held
	// take (verdictSize); past maxBytes, new ones are lost.
	bytes    atomic.Int64
	maxBytes int64

	lost    atomic.Int64
	written atomic.Int64
	txs     atomic.Int64 // transactions written
	held    atomic.Int64
	wg      sync.WaitGroup
	stop    chan struct{}
}

// NewRecorder starts a recorder with room for queue verdicts waiting, and
// as many again held while the store fails. onError (may be nil) hears of
// every record lost.
func (s *Store) NewRecorder(log *slog.Logger, queue int, onError func(lost int)) *Recorder {
	return s.newRecorder(log, queue, onError, time.Second)
}

func (s *Store) newRecorder(log *slog.Logger, queue int, onError func(lost int), retryMin time.Duration) *Recorder {
	if queue <= 0 {
		queue = 4096
	}
	r := &Recorder{st: s, log: log, q: make(chan Verdict, queue), hold: max(queue, maxBatch), onError: onError, stop: make(chan struct{}),
		retryMin: retryMin, retryMax: 30 * retryMin, maxBytes: maxRecorderBytes, txRows: maxBatch}
	if s.driver == "sqlite" {
		// One INSERT a transaction: SQLite has one writer, and a
		// greylist write (an SMTP client waiting for its answer) waits
		// for the transaction under way: 200 rows held it some 5 ms,
		// 64 about 2. (bench/policy's new triplets showed no change in
		// requests/s either way, within its noise.)
		r.txRows = rowsPerInsert
	}
	r.wg.Add(1)
	go r.run()
	return r
}

// HashSubjects makes the recorder keep only the SHA-256 of each Subject
// it writes from now on (store.subject: hash), or the Subject itself.
func (r *Recorder) HashSubjects(on bool) { r.hashSubjects.Store(on) }

// maxRecorderBytes bounds the memory of the verdicts queued and held:
// a few kilobytes each as mail goes, the queue's 4,096 and as many held
// are some 30 MB; at most 64 MB whatever clients send (each verdict is
// bounded first, but a bounded verdict may still be 100 KB).
const maxRecorderBytes = 64 << 20

// Record queues v for writing and returns at once. What is queued is v
// within the store's bounds (bounded), its Subject hashed under
// store.subject: hash, and the memory of all queued is bounded
// (maxRecorderBytes): past it, or when the queue is full, v is lost
// (logged and counted).
func (r *Recorder) Record(v Verdict) {
	b := bounded(&v)
	if b.Subject != "" && r.hashSubjects.Load() {
		b.Subject = SubjectHash(b.Subject)
	}
	size := verdictSize(&b)
	if r.bytes.Add(size) > r.maxBytes {
		r.bytes.Add(-size)
		r.lose(1, "store queue over its memory bound: verdict not recorded", nil)
		return
	}
	select {
	case r.q <- b:
	default:
		r.bytes.Add(-size)
		r.lose(1, "store queue full: verdict not recorded", nil)
	}
}

// verdictSize is about the memory v holds: its strings and lists, and
// a fixed part for the struct and the DMARC row.
func verdictSize(v *Verdict) int64 {
	n := 512 + len(v.Node) + len(v.Source) + len(v.QueueID) + len(v.ClientIP) + len(v.ClientName) + len(v.Helo) + len(v.MailFrom) +
		len(v.FromDomain) + len(v.Action) + len(v.Stage) + len(v.Verdict) + len(v.IPRev) + len(v.SPF) + len(v.DKIM) + len(v.DMARC) + len(v.ARC) +
		len(v.HeaderFrom) + len(v.MessageID) + len(v.Subject) + len(v.Reply) + len(v.Feedback) + len(v.Features)
	for _, l := range [][]string{v.Rcpts, v.Rules, v.Reasons} {
		for _, x := range l {
			n += 16 + len(x)
		}
	}
	n += v.Details.size(48, 40, 32) // the structs and the strings' headers
	if v.DMARCRow != nil {
		n += 1024
	}
	return int64(n)
}

// Lost is how many records were lost, Written how many were stored and
// Held how many wait in memory for the store to recover.
func (r *Recorder) Lost() int64    { return r.lost.Load() }
func (r *Recorder) Written() int64 { return r.written.Load() }
func (r *Recorder) Held() int64    { return r.held.Load() }

// Close writes what is queued and held (for at most a few seconds) and
// stops.
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

// gatherFor is how long a batch waits to fill (to txRows): a verdict is
// in the store at most this much later, and a burst is one transaction.
// Every transaction writes again the last, partly filled page of the
// table and of each index (on SQLite a third of the pages a batch of 40
// wrote): at 1,300 messages a second and more, 50 ms fills SQLite's 64
// rows, which cost 15% less CPU a verdict than the 35 that 20 ms took
// at 1,750 (BenchmarkB24RecordVerdicts sqlite/bench, 64 against 40).
const gatherFor = 50 * time.Millisecond

func (r *Recorder) run() {
	defer r.wg.Done()
	// pending is what is taken from the queue and not yet written: one
	// batch normally, up to r.hold while the store fails.
	var pending []Verdict
	var (
		// pause is the wait before the next attempt; non-zero while the
		// store fails.
		pause time.Duration
		since time.Time // when it began failing
		retry = time.NewTimer(0)
		// gather is the wait for more verdicts after the first.
		gather = time.NewTimer(0)
	)
	retry.Stop()
	gather.Stop()
	// write tries to store pending, a batch at a time; false: the store
	// failed and the rest stays pending.
	write := func(timeout time.Duration) bool {
		for len(pending) > 0 {
			n := min(len(pending), r.txRows)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := r.st.insertVerdicts(ctx, pending[:n], true) // Record bounded them
			cancel()
			if err != nil {
				if pause == 0 {
					since = time.Now()
					r.log.Error("store write failed: verdicts held in memory and written when the store recovers", "held", len(pending), "err", err)
				}
				return false
			}
			r.written.Add(int64(n))
			r.txs.Add(1)
			for i := range pending[:n] {
				r.bytes.Add(-verdictSize(&pending[i]))
			}
			pending = pending[n:]
		}
		if pause > 0 {
			r.log.Info("store writes resumed: held verdicts written", "after", time.Since(since).Round(time.Millisecond))
		}
		return true
	}
	attempt := func() {
		if write(10 * time.Second) {
			pause = 0
		} else {
			pause = min(max(2*pause, r.retryMin), r.retryMax)
			retry.Reset(pause)
		}
		r.held.Store(int64(len(pending)))
	}
	take := func(v Verdict) {
		if len(pending) >= r.hold {
			// The oldest go first: the newest say most about now.
			r.lose(1, "store down and memory bound reached: oldest held verdict dropped", nil)
			r.bytes.Add(-verdictSize(&pending[0]))
			pending = pending[1:]
		}
		pending = append(pending, v)
	}
	for {
		select {
		case v := <-r.q:
			take(v)
			// Take what else comes within gather: one transaction for
			// several messages. Each transaction cost SQLite a third of a
			// millisecond, for one verdict when mail came one at a time.
			// Up to one transaction's rows: a batch of 200 was three
			// full transactions and one of the 8 left.
			gather.Reset(gatherFor)
		gathering:
			for len(pending) < r.txRows || pause > 0 {
				select {
				case v := <-r.q:
					take(v)
				case <-gather.C:
					break gathering
				case <-r.stop:
					break gathering // written below; the loop then stops
				}
			}
			gather.Stop()
			if pause > 0 {
				r.held.Store(int64(len(pending)))
				continue // the retry timer writes them
			}
			attempt()
		case <-retry.C:
			attempt()
		case <-r.stop:
			retry.Stop()
			for {
				select {
				case v := <-r.q:
					take(v)
					continue
				default:
				}
				break
			}
			if !write(3*time.Second) && len(pending) > 0 {
				r.lose(len(pending), "store write failed at shutdown: held verdicts not recorded", nil)
			}
			r.held.Store(0)
			return
		}
	}
}
