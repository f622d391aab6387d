package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailwall/internal/classify"
	"mailwall/internal/cputime"
)

func modelMsg(i int, junk bool) []byte {
	if junk {
		return fmt.Appendf(nil, "From: Prize Desk <win%d@lotto.example>\r\nSubject: You won $1,000,000 now\r\nMessage-ID: <j%d@lotto.example>\r\n\r\nClaim your prize now, click http://bit.ly/x%d and send your bank details. Winner winner jackpot.\r\n", i, i, i)
	}
	return fmt.Appendf(nil, "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: minutes of meeting %d\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <h%d@example.org>\r\n\r\nHi Bob, attached are the minutes of our meeting; the build passed and the release is on Thursday.\r\n", i, i)
}

func learnRaw(t testing.TB, l *classify.Learner, raw []byte, class string) classify.LearnOutcome {
	t.Helper()
	f, b := classify.ParseMessage(raw)
	out, err := l.Learn(context.Background(), raw, &classify.Message{Fields: f, Body: b}, class)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestModelLearnGuard: learning counts into the store, once per message
// and class; a switch of class moves the message's counts, unlearning
// takes them back; a Shared model reads it all and classifies.
func TestModelLearnGuard(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		l := &classify.Learner{St: s, Name: classify.SiteModel}
		for i := range 20 {
			learnRaw(t, l, modelMsg(i, true), "spam")
			learnRaw(t, l, modelMsg(i, false), "ham")
		}
		if out := learnRaw(t, l, modelMsg(3, true), "spam"); out.Changed || out.Prev != "junk" {
			t.Errorf("the same message learnt twice: %+v", out)
		}
		sh, err := classify.OpenShared(ctx, s, classify.SiteModel, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := s.ModelCounts(ctx, classify.SiteModel, 0, func(classify.BucketCount) {})
		if st.Junk != 20 || st.Ham != 20 {
			t.Fatalf("messages counted: %+v, want 20 and 20", st)
		}
		f, b := classify.ParseMessage(modelMsg(99, true))
		if r := sh.C.Classify(&classify.Message{Fields: f, Body: b}); !r.Junk {
			t.Errorf("junk-like message after learning: %v", r)
		}
		// A user moves ham 5 into Junk: its counts move.
		if out := learnRaw(t, l, modelMsg(5, false), "spam"); !out.Changed || out.Prev != "ham" {
			t.Errorf("switching class: %+v", out)
		}
		st, _ = s.ModelCounts(ctx, classify.SiteModel, 0, func(classify.BucketCount) {})
		if st.Junk != 21 || st.Ham != 19 {
			t.Errorf("after a switch: %+v, want 21 and 19", st)
		}
		// Unlearnt: back to where it was, bucket by bucket.
		before := map[uint32]classify.BucketCount{}
		learnRaw(t, l, modelMsg(7, false), "") // ham 7 forgotten
		learnRaw(t, l, modelMsg(7, false), "ham")
		s.ModelCounts(ctx, classify.SiteModel, 0, func(b classify.BucketCount) { before[b.Bucket] = b })
		v0 := st.Version
		learnRaw(t, l, modelMsg(50, true), "spam")
		learnRaw(t, l, modelMsg(50, true), "")
		after := map[uint32]classify.BucketCount{}
		st, _ = s.ModelCounts(ctx, classify.SiteModel, 0, func(b classify.BucketCount) { after[b.Bucket] = b })
		for k, b := range after {
			if o := before[k]; o.Junk != b.Junk || o.Ham != b.Ham {
				t.Fatalf("bucket %d after learn and unlearn: %+v, was %+v", k, b, o)
			}
		}
		if out := learnRaw(t, l, modelMsg(50, true), ""); out.Changed {
			t.Errorf("forgetting a message never learnt changed the model")
		}
		// Refresh reads only what changed since.
		n := 0
		s.ModelCounts(ctx, classify.SiteModel, st.Version, func(classify.BucketCount) { n++ })
		if n != 0 || st.Version <= v0 {
			t.Errorf("buckets changed since the last version: %d (version %d after %d)", n, st.Version, v0)
		}
		if err := sh.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestModelImport: a model file's counts seed the store, and a Shared
// model read from it predicts as the file's model does.
func TestModelImport(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		m := classify.NewBayes(classify.DefaultBits)
		x := classify.NewExtractor()
		for i := range 30 {
			f, b := classify.ParseMessage(modelMsg(i, i%2 == 0))
			m.Learn(x.Extract(&classify.Message{Fields: f, Body: b}), i%2 == 0)
		}
		if err := classify.Import(ctx, s, classify.SiteModel, m); err != nil {
			t.Fatal(err)
		}
		sh, err := classify.OpenShared(ctx, s, classify.SiteModel, 0)
		if err != nil {
			t.Fatal(err)
		}
		f, b := classify.ParseMessage(modelMsg(77, true))
		v := x.Extract(&classify.Message{Fields: f, Body: b})
		if got, want := sh.C.ClassifyVector(v).Probability, m.Predict(v, nil); got != want {
			t.Errorf("imported model says %v, the file's %v", got, want)
		}
	})
}

// TestModelSharedPostgres: two stores on one PostgreSQL database (two MX
// hosts) learn into one model, each seeing the other's learning at its
// next refresh.
func TestModelSharedPostgres(t *testing.T) {
	ctx := context.Background()
	a, b := sharedPostgres(t)
	sa, err := classify.OpenShared(ctx, a, classify.SiteModel, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := classify.OpenShared(ctx, b, classify.SiteModel, 0)
	if err != nil {
		t.Fatal(err)
	}
	la := &classify.Learner{St: a, Name: classify.SiteModel}
	lb := &classify.Learner{St: b, Name: classify.SiteModel}
	// Both hosts learn at once: the counts add up.
	done := make(chan error, 2)
	for k, l := range []*classify.Learner{la, lb} {
		go func() {
			for i := range 10 {
				raw := modelMsg(100*k+i, true)
				f, body := classify.ParseMessage(raw)
				if _, err := l.Learn(ctx, raw, &classify.Message{Fields: f, Body: body}, "spam"); err != nil {
					done <- err
					return
				}
				raw = modelMsg(100*k+i, false)
				f, body = classify.ParseMessage(raw)
				if _, err := l.Learn(ctx, raw, &classify.Message{Fields: f, Body: body}, "ham"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for _, sh := range []*classify.Shared{sa, sb} {
		if err := sh.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f, body := classify.ParseMessage(modelMsg(999, true))
	msg := &classify.Message{Fields: f, Body: body}
	ra, rb := sa.C.Classify(msg), sb.C.Classify(msg)
	if !ra.Junk || ra.Probability != rb.Probability {
		t.Errorf("host a says %v, host b %v: want the same junk verdict", ra, rb)
	}
	st, _ := a.ModelCounts(ctx, classify.SiteModel, 0, func(classify.BucketCount) {})
	if st.Junk != 20 || st.Ham != 20 {
		t.Errorf("messages learnt on two hosts at once: %+v, want 20 and 20", st)
	}
}

// BenchmarkModelLearn: learning through the store (feature extraction,
// one transaction a message), messages a second.
func BenchmarkModelLearn(b *testing.B) {
	for _, driver := range []string{"sqlite", "postgres"} {
		b.Run(driver, func(b *testing.B) {
			s := openBench(b, driver)
			defer s.Close()
			l := &classify.Learner{St: s, Name: classify.SiteModel}
			b.ResetTimer()
			for i := range b.N {
				learnRaw(b, l, modelMsg(i, i%2 == 0), map[bool]string{true: "spam", false: "ham"}[i%2 == 0])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// lnCorpus reads up to n SpamAssassin messages of the corpus's train
// split (spam and ham alternately); the benchmarks skip without it.
func lnCorpus(b *testing.B, n int) (raws [][]byte, classes []string) {
	all, err := classify.ReadCorpus("../../../shared/corpus")
	if err != nil {
		b.Skip(err)
	}
	for _, l := range all {
		if l.Split != "train" || l.Class == "phish" || len(raws) == n {
			continue
		}
		raw, err := os.ReadFile(l.Path)
		if err != nil {
			b.Fatal(err)
		}
		raws, classes = append(raws, raw), append(classes, l.Class)
	}
	return raws, classes
}

// BenchmarkModelLearnCorpus: learning real mail (the SpamAssassin train
// split) through the store, one transaction a message, messages a
// second, the fold of the log into the buckets included; after the
// first round each message switches class (unlearn and learn in one
// transaction).
func BenchmarkModelLearnCorpus(b *testing.B) {
	raws, classes := lnCorpus(b, 1000)
	for _, driver := range []string{"sqlite", "postgres"} {
		b.Run(driver, func(b *testing.B) {
			s := openBench(b, driver)
			defer s.Close()
			l := &classify.Learner{St: s, Name: classify.SiteModel}
			b.ResetTimer()
			for i := range b.N {
				k := i % len(raws)
				class := classes[k]
				if (i/len(raws))%2 == 1 {
					class = map[string]string{"spam": "ham", "ham": "spam"}[class]
				}
				learnRaw(b, l, raws[k], class)
			}
			if err := s.CompactModel(context.Background(), classify.SiteModel); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkModelLearnCorpusBatch: the same mail learnt as mailwall
// learn --maildir (1,000 messages a transaction) and the Maildir watcher
// (a pass, 500 at most) learn it, 200 and 1,000 messages a transaction,
// the fold of the log into the buckets included; /1M into a model that
// has a million buckets already (the fold's upserts cost more there);
// /pipe as learn --maildir does it (learnPipe): a batch written while
// the next is parsed and extracted by another learner.
func BenchmarkModelLearnCorpusBatch(b *testing.B) {
	raws, classes := lnCorpus(b, 1000)
	for _, run := range []struct {
		driver string
		batch  int
		big    bool // into a model of a million buckets already
		pipe   bool // a batch written while the next is extracted
	}{{"sqlite", 200, false, false}, {"postgres", 200, false, false}, {"sqlite", 1000, false, false}, {"postgres", 1000, false, false},
		{"sqlite", 1000, true, false}, {"postgres", 1000, true, false}, {"sqlite", 1000, true, true}, {"postgres", 1000, true, true}} {
		driver := run.driver
		name := fmt.Sprintf("%s/%d", driver, run.batch)
		if run.big {
			name += "/1M"
		}
		if run.pipe {
			name += "/pipe"
		}
		b.Run(name, func(b *testing.B) {
			s := openBench(b, driver)
			defer s.Close()
			ctx := context.Background()
			if run.big {
				rows := make([]classify.BucketCount, 1<<20)
				for i := range rows {
					rows[i] = classify.BucketCount{Bucket: uint32(i * 2), Junk: int64(i%7 + 1), Ham: int64(i%5 + 1)}
				}
				if err := s.AddCounts(ctx, classify.SiteModel, classify.DefaultBits, 1000, 1000, rows); err != nil {
					b.Fatal(err)
				}
			}
			ls := [2]*classify.Learner{{St: s, Name: classify.SiteModel}, {St: s, Name: classify.SiteModel}}
			cur := 0
			var inflight chan error // the batch being written (pipe)
			wait := func() {
				if inflight != nil {
					if err := <-inflight; err != nil {
						b.Fatal(err)
					}
					inflight = nil
				}
			}
			var extract time.Duration // CPU in Add: parsing and extraction
			cpu0, server0 := lnCPU(b, s)
			b.ResetTimer()
			for i := range b.N {
				k := i % len(raws)
				class := classes[k]
				if (i/len(raws))%2 == 1 {
					class = map[string]string{"spam": "ham", "ham": "spam"}[class]
				}
				l := ls[cur]
				x0, _ := lnCPU(b, nil)
				f, body := classify.ParseMessage(raws[k])
				if err := l.Add(ctx, raws[k], &classify.Message{Fields: f, Body: body}, class); err != nil {
					b.Fatal(err)
				}
				x1, _ := lnCPU(b, nil)
				extract += x1 - x0
				if l.Pending() == run.batch || i == b.N-1 {
					if !run.pipe {
						if _, err := l.Flush(ctx); err != nil {
							b.Fatal(err)
						}
						continue
					}
					wait()
					ch := make(chan error, 1)
					go func() {
						_, err := l.Flush(ctx)
						ch <- err
					}()
					inflight, cur = ch, 1-cur
				}
			}
			wait()
			// The fold of the log into the buckets, which learning does
			// every 2^20 changes, timed here for the b.N messages alone:
			// a bound on what they cost in all.
			if err := s.CompactModel(ctx, classify.SiteModel); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			// CPU a message, which a machine shared with other work
			// changes less than the time: parsing and extraction, the
			// rest of the benchmark's process (the store's side), and
			// PostgreSQL's backends.
			cpu1, server1 := lnCPU(b, s)
			if run.pipe {
				// Extraction and the store's side ran at once.
				b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "client-µs/msg")
			} else {
				b.ReportMetric(float64(extract.Microseconds())/float64(b.N), "extract-µs/msg")
				b.ReportMetric(float64((cpu1-cpu0-extract).Microseconds())/float64(b.N), "store-µs/msg")
			}
			if driver == "postgres" {
				b.ReportMetric(float64((server1-server0).Microseconds())/float64(b.N), "server-µs/msg")
			}
		})
	}
}

// lnCPU is the CPU time this process has used, and when s is a
// PostgreSQL store the CPU time of the server's backends connected to
// its database (read from /proc: the server runs here, on loopback);
// 0 when it cannot be read.
func lnCPU(b *testing.B, s *Store) (self, server time.Duration) {
	self = cputime.Process()
	if s == nil || s.driver != "postgres" {
		return self, 0
	}
	rows, err := s.db.Query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// After the command's name in parentheses: state, then 10
		// fields, then utime and stime in ticks of 1/100 s.
		_, rest, _ := strings.Cut(string(stat), ") ")
		if f := strings.Fields(rest); len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			server += time.Duration(ut+st) * 10 * time.Millisecond
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return self, server
}

// BenchmarkModelOpenShared: reading a whole model learnt from the
// corpus into memory, what serve does at start and on SIGHUP.
func BenchmarkModelOpenShared(b *testing.B) {
	raws, classes := lnCorpus(b, 1000)
	s, err := Open(context.Background(), "sqlite", b.TempDir()+"/m.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := &classify.Learner{St: s, Name: classify.SiteModel}
	for k := range raws {
		learnRaw(b, l, raws[k], classes[k])
	}
	n := 0
	s.ModelCounts(context.Background(), classify.SiteModel, 0, func(classify.BucketCount) { n++ })
	b.ResetTimer()
	for range b.N {
		if _, err := classify.OpenShared(context.Background(), s, classify.SiteModel, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "buckets")
}

// TestModelLearnBatch: a batch (one transaction, counts summed per
// bucket) leaves the same buckets as the same messages learnt one by
// one, a message met twice in the batch included (the second time as
// the other class: a switch).
func TestModelLearnBatch(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		type step struct {
			i     int
			junk  bool
			class string
		}
		steps := []step{{1, true, "spam"}, {2, false, "ham"}, {3, true, "spam"}, {2, false, "spam"}, {4, false, "ham"}, {1, true, "spam"}, {3, true, "!spam"}}
		one := &classify.Learner{St: s, Name: "one"}
		batch := &classify.Learner{St: s, Name: "batch"}
		for _, st := range steps {
			learnRaw(t, one, modelMsg(st.i, st.junk), st.class)
			raw := modelMsg(st.i, st.junk)
			f, b := classify.ParseMessage(raw)
			if err := batch.Add(ctx, raw, &classify.Message{Fields: f, Body: b}, st.class); err != nil {
				t.Fatal(err)
			}
		}
		out, err := batch.Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var changed []bool
		for _, o := range out {
			changed = append(changed, o.Changed)
		}
		if want := []bool{true, true, true, true, true, false, true}; !slices.Equal(changed, want) {
			t.Errorf("changed per message: %v, want %v", changed, want)
		}
		read := func(name string) (classify.ModelState, map[uint32][2]int64) {
			m := map[uint32][2]int64{}
			st, err := s.ModelCounts(ctx, name, 0, func(b classify.BucketCount) {
				if b.Junk != 0 || b.Ham != 0 {
					m[b.Bucket] = [2]int64{b.Junk, b.Ham}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			return st, m
		}
		s1, m1 := read("one")
		s2, m2 := read("batch")
		if s1.Junk != s2.Junk || s1.Ham != s2.Ham || s1.Junk != 2 || s1.Ham != 1 {
			t.Errorf("messages: one by one %+v, batch %+v, want 2 spam 1 ham", s1, s2)
		}
		if !maps.Equal(m1, m2) {
			t.Errorf("buckets differ: one by one %d, batch %d", len(m1), len(m2))
		}
	})
}

// TestModelLog: learning goes to the model's log and is folded into its
// buckets from time to time; whenever the fold happens, the model reads
// the same (ModelCounts, whole and since a version), and a host's copy
// refreshed change by change (ModelDeltas), or read again whole after a
// fold took the changes it had not seen, classifies as a copy read
// whole at the end does.
func TestModelLog(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		type step struct {
			i     int
			junk  bool
			class string
		}
		var steps []step
		for i := range 12 {
			steps = append(steps, step{i, i%3 != 0, map[bool]string{true: "spam", false: "ham"}[i%3 != 0]})
		}
		steps = append(steps, step{1, true, "ham"}, step{2, true, ""}, step{3, false, "spam"}, step{4, true, "!ham"}, step{5, true, "!spam"})
		read := func(name string, since int64) (classify.ModelState, map[uint32][2]int64) {
			m := map[uint32][2]int64{}
			st, err := s.ModelCounts(ctx, name, since, func(b classify.BucketCount) {
				if b.Junk != 0 || b.Ham != 0 || since > 0 {
					m[b.Bucket] = [2]int64{b.Junk, b.Ham}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			return st, m
		}
		// "log" folds only at the end, "fold" after every other step.
		logL := &classify.Learner{St: s, Name: "log"}
		foldL := &classify.Learner{St: s, Name: "fold"}
		learnRaw(t, logL, modelMsg(100, true), "spam")
		learnRaw(t, foldL, modelMsg(100, true), "spam")
		copies := map[string]*classify.Shared{}
		for _, name := range []string{"log", "fold"} {
			sh, err := classify.OpenShared(ctx, s, name, 0)
			if err != nil {
				t.Fatal(err)
			}
			copies[name] = sh
		}
		var mid int64
		for k, st := range steps {
			learnRaw(t, logL, modelMsg(st.i, st.junk), st.class)
			learnRaw(t, foldL, modelMsg(st.i, st.junk), st.class)
			if k%2 == 1 {
				if err := s.CompactModel(ctx, "fold"); err != nil {
					t.Fatal(err)
				}
			}
			if k%3 == 0 {
				for _, sh := range copies {
					if err := sh.Refresh(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if k == len(steps)/2 {
				st, _ := read("log", 0)
				mid = st.Version
			}
		}
		sLog, mLog := read("log", 0)
		sFold, mFold := read("fold", 0)
		if sLog.Junk != sFold.Junk || sLog.Ham != sFold.Ham || !maps.Equal(mLog, mFold) || len(mLog) == 0 {
			t.Errorf("log %+v (%d buckets), folded %+v (%d buckets): want the same", sLog, len(mLog), sFold, len(mFold))
		}
		// Since a version: the buckets changed after it, with the counts
		// a whole read gives them.
		_, since := read("log", mid)
		if len(since) == 0 || len(since) >= len(mLog)+len(since) {
			t.Errorf("%d buckets changed since version %d", len(since), mid)
		}
		for b, c := range since {
			if c != mLog[b] && (c != [2]int64{} || mLog[b] != [2]int64{}) {
				t.Errorf("bucket %d since version %d: %v, whole model %v", b, mid, c, mLog[b])
			}
		}
		if err := s.CompactModel(ctx, "log"); err != nil {
			t.Fatal(err)
		}
		if _, m := read("log", 0); !maps.Equal(m, mLog) {
			t.Errorf("folding the log changed the model: %d buckets, were %d", len(m), len(mLog))
		}
		for name, sh := range copies {
			if err := sh.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			fresh, err := classify.OpenShared(ctx, s, name, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				f, b := classify.ParseMessage(modelMsg(200+i, i%2 == 0))
				msg := &classify.Message{Fields: f, Body: b}
				if got, want := sh.C.Classify(msg), fresh.C.Classify(msg); got.Probability != want.Probability {
					t.Errorf("%s: the refreshed copy says %v, a fresh read %v", name, got.Probability, want.Probability)
				}
			}
		}
	})
}

// TestModelSumKeys: a batch's changes summed per bucket by the radix
// sort give what a map gives, in bucket order, with none that come to
// nothing: few keys (sorted by comparison), many (two passes of the
// radix sort, as a model of 2^21 buckets has them), and buckets up to
// 2^32-1 (three passes, the last copied back).
func TestModelSumKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(24, 1))
	for _, tc := range []struct {
		name    string
		n       int
		buckets uint64 // keys' buckets are below
	}{{"none", 0, 1 << 21}, {"few", 300, 64}, {"many", 200_000, 1 << 21}, {"wide", 50_000, 1 << 32}, {"cancel", 5000, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			keys := make([]uint64, tc.n)
			want := map[uint32]bucketDelta{}
			for i := range keys {
				b, kind := r.Uint64N(tc.buckets), r.Uint64N(4)
				keys[i] = b<<2 | kind
				d := want[uint32(b)]
				d[kind>>1] += int64(kind&1)*2 - 1
				want[uint32(b)] = d
			}
			maps.DeleteFunc(want, func(_ uint32, d bucketDelta) bool { return d == bucketDelta{} })
			got := sumKeys(keys)
			if !slices.IsSortedFunc(got, func(x, y bucketSum) int { return cmp.Compare(x.b, y.b) }) {
				t.Error("sums not in bucket order")
			}
			gotm := map[uint32]bucketDelta{}
			for _, s := range got {
				if _, dup := gotm[s.b]; dup || s.d == (bucketDelta{}) {
					t.Errorf("bucket %d: twice, or a sum of nothing (%v)", s.b, s.d)
				}
				gotm[s.b] = s.d
			}
			if !maps.Equal(gotm, want) {
				t.Errorf("%d buckets summed, want %d", len(gotm), len(want))
			}
		})
	}
}

// TestModelSumLog: the log's rows merged give the sum per bucket that
// adding them up in a map gives; a row that logDeltas did not write
// (a varint cut short, a bucket past 2^32-1) is an error, not a panic,
// and a row naming a bucket twice is summed.
func TestModelSumLog(t *testing.T) {
	r := rand.New(rand.NewPCG(24, 2))
	row := func(n int, buckets uint32) (buf []byte, sums map[uint32]bucketDelta) {
		sums = map[uint32]bucketDelta{}
		for range n {
			b := uint32(r.Uint64N(uint64(buckets)))
			d := sums[b]
			d[r.IntN(2)] += r.Int64N(7) - 3
			sums[b] = d
		}
		var rows []bucketSum
		for _, b := range slices.Sorted(maps.Keys(sums)) {
			rows = append(rows, bucketSum{b, sums[b]})
		}
		buf, _ = encodeDeltas(rows)
		return buf, sums
	}
	// twice: bucket 5 twice in one row (a gap of 0).
	twice := binary.AppendUvarint(nil, 5)
	twice = binary.AppendVarint(binary.AppendVarint(twice, 2), 0)
	twice = binary.AppendUvarint(twice, 0)
	twice = binary.AppendVarint(binary.AppendVarint(twice, 1), -1)
	past := binary.AppendVarint(binary.AppendVarint(binary.AppendUvarint(nil, math.MaxUint32), 1), 1)
	past = binary.AppendVarint(binary.AppendVarint(binary.AppendUvarint(past, 1), 1), 1)
	for _, tc := range []struct {
		name    string
		rows    int
		n       int
		buckets uint32
		extra   [][]byte // rows added after the random ones
		want    map[uint32]bucketDelta
		bad     bool
	}{
		{name: "none"},
		{name: "one", rows: 1, n: 1000, buckets: 1 << 21},
		{name: "several", rows: 7, n: 20_000, buckets: 1 << 16},
		{name: "many small", rows: 300, n: 20, buckets: 1 << 10},
		{name: "twice", extra: [][]byte{twice}, want: map[uint32]bucketDelta{5: {3, -1}}},
		{name: "cut short", rows: 2, n: 100, buckets: 1 << 12, extra: [][]byte{twice[:len(twice)-1]}, bad: true},
		{name: "past 2^32", extra: [][]byte{past}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[uint32]bucketDelta{}
			maps.Copy(want, tc.want)
			var rows [][]byte
			for range tc.rows {
				buf, sums := row(tc.n, tc.buckets)
				rows = append(rows, buf)
				for b, d := range sums {
					w := want[b]
					want[b] = bucketDelta{w[0] + d[0], w[1] + d[1]}
				}
			}
			rows = append(rows, tc.extra...)
			maps.DeleteFunc(want, func(_ uint32, d bucketDelta) bool { return d == bucketDelta{} })
			got, err := sumLog(rows)
			if tc.bad {
				if err == nil {
					t.Errorf("no error, %d sums", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotm := map[uint32]bucketDelta{}
			prev := -1
			for _, s := range got {
				if int(s.b) <= prev || s.d == (bucketDelta{}) {
					t.Errorf("bucket %d after %d (%v): want increasing buckets, no sum of nothing", s.b, prev, s.d)
				}
				prev = int(s.b)
				gotm[s.b] = s.d
			}
			if !maps.Equal(gotm, want) {
				t.Errorf("%d buckets summed, want %d", len(gotm), len(want))
			}
		})
	}
}

// TestModelFoldTwoHosts: two hosts on one PostgreSQL database learn
// into one model at once, one of them importing counts in between,
// while the model's log passes compactAt and is folded into the buckets
// by whichever learns then: the model reads as the sum of what was
// learnt and imported, the log was folded (it holds fewer changes than
// were learnt), and a host's copy kept up to date as serve keeps it
// (ModelDeltas, read whole again after a gap) reads the same as the
// model.
func TestModelFoldTwoHosts(t *testing.T) {
	ctx := context.Background()
	a, b := sharedPostgres(t)
	const (
		name = "bg"
		bits = 18
		per  = 60_000 // buckets a message
	)
	buckets := func(host, k int) []uint32 {
		out := make([]uint32, per)
		for i := range out {
			out[i] = uint32((host*1_000_003+k*104_729+i)*0x9E3779B1) & (1<<bits - 1)
		}
		return out
	}
	classes := [2]string{"junk", "ham"}
	imported := make([]classify.BucketCount, 1000)
	for i := range imported {
		imported[i] = classify.BucketCount{Bucket: uint32(i * 37), Junk: 1, Ham: 2}
	}
	// What the model must hold: each message's buckets in the class it
	// ends with (the first three switch), and the import.
	want := map[uint32]bucketDelta{}
	var learnt int64 // changes written to the log
	for host := range 2 {
		for k := range 10 {
			col := k % 2
			if k < 3 {
				col = 1 - col
			}
			seen := map[uint32]bool{}
			for _, bk := range buckets(host, k) {
				d := want[bk]
				d[col]++
				want[bk] = d
				seen[bk] = true
			}
			learnt += int64(len(seen))
			if k < 3 {
				learnt += int64(len(seen)) // the switch: a change of each again
			}
		}
	}
	for _, r := range imported {
		d := want[r.Bucket]
		want[r.Bucket] = bucketDelta{d[0] + r.Junk, d[1] + r.Ham}
	}
	errc := make(chan error, 2)
	for host, s := range []*Store{a, b} {
		go func() {
			learn := func(k int, class string) error {
				_, err := s.LearnCounts(ctx, name, bits, []classify.Learning{{Key: fmt.Sprint(host, "/", k), Class: class, Buckets: buckets(host, k)}})
				return err
			}
			for k := range 10 {
				if err := learn(k, classes[k%2]); err != nil {
					errc <- err
					return
				}
				if host == 0 && k == 5 {
					if err := s.AddCounts(ctx, name, bits, 0, 0, imported); err != nil {
						errc <- err
						return
					}
				}
			}
			for k := range 3 {
				if err := learn(k, classes[1-k%2]); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	// Host b's copy, refreshed as the hosts learn.
	copyOf := map[uint32]bucketDelta{}
	var since int64
	refresh := func() {
		st, gap, err := b.ModelDeltas(ctx, name, since, func(c classify.BucketCount) {
			d := copyOf[c.Bucket]
			copyOf[c.Bucket] = bucketDelta{d[0] + c.Junk, d[1] + c.Ham}
		})
		if err != nil {
			t.Fatal(err)
		}
		if gap {
			clear(copyOf)
			if st, err = b.ModelCounts(ctx, name, 0, func(c classify.BucketCount) {
				copyOf[c.Bucket] = bucketDelta{c.Junk, c.Ham}
			}); err != nil {
				t.Fatal(err)
			}
		}
		since = st.Version
	}
	for done := 0; done < 2; {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			done++
		case <-time.After(20 * time.Millisecond):
			refresh()
		}
	}
	refresh()
	whole := map[uint32]bucketDelta{}
	if _, err := a.ModelCounts(ctx, name, 0, func(c classify.BucketCount) { whole[c.Bucket] = bucketDelta{c.Junk, c.Ham} }); err != nil {
		t.Fatal(err)
	}
	nonzero := func(m map[uint32]bucketDelta) map[uint32]bucketDelta {
		return maps.Collect(func(yield func(uint32, bucketDelta) bool) {
			for k, v := range m {
				if v != (bucketDelta{}) && !yield(k, v) {
					return
				}
			}
		})
	}
	for what, m := range map[string]map[uint32]bucketDelta{"the model": whole, "host b's copy": copyOf} {
		got, wrong := nonzero(m), 0
		for k := range want {
			if got[k] != want[k] {
				wrong++
			}
		}
		if wrong > 0 || len(got) != len(want) {
			t.Errorf("%s: %d buckets of %d with counts other than learnt (%d buckets in all)", what, wrong, len(want), len(got))
		}
	}
	var pending int64
	if err := a.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM model_deltas WHERE name = $1`, name).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending >= learnt {
		t.Errorf("the log holds %d changes of the %d learnt: never folded", pending, learnt)
	}
}

// TestModelLogLZ4: on a PostgreSQL server that has LZ4, a batch's row of
// the log is compressed with it (pglz took twice as long), and
// reads back as written.
func TestModelLogLZ4(t *testing.T) {
	ctx := context.Background()
	s, _ := sharedPostgres(t)
	if can, err := s.canLZ4(ctx); err != nil || !can {
		t.Skipf("the server has no LZ4 (%v)", err)
	}
	item := classify.Learning{Key: "k", Class: "junk", Buckets: make([]uint32, 20_000)}
	for i := range item.Buckets {
		item.Buckets[i] = uint32(i*0x9E3779B1) & (1<<classify.DefaultBits - 1)
	}
	if _, err := s.LearnCounts(ctx, "lz4", classify.DefaultBits, []classify.Learning{item}); err != nil {
		t.Fatal(err)
	}
	var method string
	var stored, raw int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(pg_column_compression(deltas), 'none'), pg_column_size(deltas), octet_length(deltas)
		FROM model_deltas WHERE name = 'lz4'`).Scan(&method, &stored, &raw); err != nil {
		t.Fatal(err)
	}
	if method != "lz4" || stored >= raw {
		t.Errorf("the log's row: %s, %d octets stored of %d", method, stored, raw)
	}
	n := 0
	if _, gap, err := s.ModelDeltas(ctx, "lz4", 0, func(c classify.BucketCount) {
		if c.Junk == 1 && c.Ham == 0 {
			n++
		}
	}); err != nil || gap || n != len(item.Buckets) {
		t.Errorf("read back %d changes of junk 1 (gap %v, %v), want %d", n, gap, err, len(item.Buckets))
	}
}
