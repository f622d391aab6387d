package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/config"
	"mailwall/internal/store"
)

// maxLearnMessage bounds a message read for learning: the classifier
// reads the first 64 KB of text anyway.
const maxLearnMessage = 10 << 20

// storeModels gives each classifier whose model lives in the store
// (checks.classifier.source: store) its model, read from st, which is
// the store when it is a classify.CountStore (nil: none, and such a
// classifier says nothing).
func storeModels(as []analysis.Analyzer, cfg *config.Config, st any) error {
	cs, _ := st.(classify.CountStore)
	for _, a := range as {
		c, ok := a.(*classify.Analyzer)
		if !ok || c.C != nil || c.Shared != nil || cs == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sh, err := classify.OpenShared(ctx, cs, classify.SiteModel, cfg.Checks.Classifier.Refresh.D())
		cancel()
		if err != nil {
			return fmt.Errorf("checks.classifier.source: %w", err)
		}
		sh.C.Threshold = c.Threshold
		c.Shared = sh
		c.PerRecipient = cfg.Checks.Classifier.PerRecipient
		c.Recipient = classify.RecipientOptions{MinLearns: cfg.Checks.Classifier.RecipientMinLearns}
		c.RefreshError = func(err error) {
			slog.Warn("classifier: the store's model not re-read, the copy in memory stays", "err", err)
		}
	}
	return nil
}

// cmdLearn is "mailwall learn" and "mailwall unlearn" (unlearn true):
// feedback into the store's model, which a running serve reads at its
// next refresh (checks.classifier.refresh).
func cmdLearn(ctx context.Context, args []string, unlearn bool, stdin io.Reader, stdout, stderr io.Writer) error {
	name := "learn"
	if unlearn {
		name = "unlearn"
	}
	fs := newFlags(name, stderr)
	cfgPath := fs.String("config", "", "config file (its store is where the model lives)")
	rcpt := fs.String("rcpt", "", "the recipient the message was for (read as \"(recipient)\", not as words; with checks.classifier.per_recipient, learnt for that recipient too)")
	maildir := fs.String("maildir", "", "learn every message of this Maildir (its new/ and cur/)")
	as := fs.String("as", "", "with --maildir: spam or ham")
	imp := fs.String("import", "", "add a model file's counts (make model's bayes.model) to the store's model")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	class := *as
	if len(pos) == 1 {
		class = pos[0]
	}
	switch {
	case *imp != "" && (len(pos) > 0 || *maildir != "" || unlearn):
		return fmt.Errorf("%s: --import takes nothing else: %w", name, errUsage)
	case *imp == "" && (len(pos) > 1 || (class != "spam" && class != "ham")):
		fs.Usage()
		return fmt.Errorf("%s spam|ham [--rcpt ADDR] < message, or --maildir DIR --as spam|ham: %w", name, errUsage)
	}
	cfg, st, err := openStore(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer st.Close()
	if *imp != "" {
		m, err := classify.LoadModel(ctx, classify.DirStore{Dir: filepath.Dir(*imp)}, strings.TrimSuffix(filepath.Base(*imp), ".model"))
		if err != nil {
			return fmt.Errorf("learn --import %s: %w", *imp, err)
		}
		if err := classify.Import(ctx, st, classify.SiteModel, m); err != nil {
			return fmt.Errorf("learn --import %s: %w", *imp, err)
		}
		fmt.Fprintf(stdout, "imported %s into the store's model\n", *imp)
		return nil
	}
	l := &classify.Learner{St: st, Name: classify.SiteModel}
	if unlearn {
		class = "!" + class
	}
	var rcpts []string
	if *rcpt != "" {
		rcpts = []string{*rcpt}
	}
	own := "" // the recipient whose own statistics learn too
	if cfg.Checks.Classifier.PerRecipient {
		own = *rcpt
	}
	if *maildir == "" {
		raw, err := io.ReadAll(io.LimitReader(stdin, maxLearnMessage))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out, err := learnRaw(ctx, l, raw, rcpts, class, own)
		if err != nil {
			return err
		}
		if out.Changed { // a person's judgement: reputation hears it too
			if err := feedbackReputation(ctx, cfg, st, raw, out.Prev, class); err != nil {
				return err
			}
		}
		said := describeLearn(out, class)
		if own != "" {
			said += " (for the site and for " + classify.NormalizeRecipient(own) + "'s own statistics)"
		}
		fmt.Fprintln(stdout, said)
		return nil
	}
	var n int
	p := &learnPipe{ls: [2]*classify.Learner{l, {St: st, Name: classify.SiteModel}}}
	defer p.wait() // before the store closes, on an error too
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(*maildir, sub))
		if err != nil {
			return fmt.Errorf("%s --maildir: %w", name, err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			raw, err := readLearnFile(filepath.Join(*maildir, sub, e.Name()))
			if err != nil {
				return fmt.Errorf("%s --maildir: %w", name, err)
			}
			fields, body := classify.ParseMessage(raw)
			if err := p.learner().AddFor(ctx, raw, &classify.Message{Fields: fields, Body: body, Recipients: rcpts}, class, own); err != nil {
				return err
			}
			n++
			if p.learner().Pending() == learnBatch {
				if err := p.flush(ctx); err != nil {
					return err
				}
			}
		}
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	if err := p.wait(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d messages read, %d %s as %s (the others were already)\n", n, p.changed, map[bool]string{false: "learnt", true: "unlearnt"}[unlearn], strings.TrimPrefix(class, "!"))
	return nil
}

// learnBatch is how many messages one transaction learns: their
// changes are summed per bucket and written as one row of the model's
// log (BenchmarkModelLearnCorpusBatch).
const learnBatch = 1000

// learnPipe is learn --maildir's two learners taking turns: one's
// batch is written to the store while the next is read, parsed and
// extracted into the other, so that this process's work (extraction)
// and the database's (the batch's statements and, now and then, the
// fold of the model's log: seconds of PostgreSQL's CPU into a model of
// a million buckets) overlap. One batch is written at a time, in
// order: a message met in two batches ends as the later one says.
type learnPipe struct {
	ls       [2]*classify.Learner
	cur      int                  // the learner batches are added to
	inflight chan learnPipeResult // the write under way; nil: none
	changed  int                  // messages that changed the model, of the writes done
}

type learnPipeResult struct {
	changed int
	err     error
}

// learner is the learner to add the next message to.
func (p *learnPipe) learner() *classify.Learner { return p.ls[p.cur] }

// flush writes the current learner's batch in the background, after
// the write under way, and turns to the other learner.
func (p *learnPipe) flush(ctx context.Context) error {
	if err := p.wait(); err != nil {
		return err
	}
	ch := make(chan learnPipeResult, 1)
	go func(l *classify.Learner) {
		n, err := flushLearner(ctx, l)
		ch <- learnPipeResult{n, err}
	}(p.ls[p.cur])
	p.inflight, p.cur = ch, 1-p.cur
	return nil
}

// wait waits for the write under way, if any.
func (p *learnPipe) wait() error {
	if p.inflight == nil {
		return nil
	}
	r := <-p.inflight
	p.inflight = nil
	p.changed += r.changed
	return r.err
}

// flushLearner learns what l holds and counts the messages that changed
// the model.
func flushLearner(ctx context.Context, l *classify.Learner) (changed int, err error) {
	out, err := l.Flush(ctx)
	for _, o := range out {
		if o.Changed {
			changed++
		}
	}
	return changed, err
}

func readLearnFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxLearnMessage))
}

// learnRaw learns a raw message for the site and, when own is not
// empty, for that recipient's own statistics too (AddFor).
func learnRaw(ctx context.Context, l *classify.Learner, raw []byte, rcpts []string, class, own string) (classify.LearnOutcome, error) {
	fields, body := classify.ParseMessage(raw)
	return l.LearnFor(ctx, raw, &classify.Message{Fields: fields, Body: body, Recipients: rcpts}, class, own)
}

func describeLearn(out classify.LearnOutcome, class string) string {
	cls := strings.TrimPrefix(class, "!")
	word := func(c string) string {
		if c == "junk" {
			return "spam"
		}
		return c
	}
	switch {
	case strings.HasPrefix(class, "!") && out.Changed:
		return "unlearnt as " + cls
	case strings.HasPrefix(class, "!") && out.Prev == "":
		return "not unlearnt: the message was never learnt"
	case strings.HasPrefix(class, "!"):
		return "not unlearnt: the message was learnt as " + word(out.Prev)
	case !out.Changed:
		return "already learnt as " + cls + ": not counted twice"
	case out.Prev != "":
		return "learnt as " + cls + " (it had been learnt as " + word(out.Prev) + ": that was taken back)"
	}
	return "learnt as " + cls
}

// junkWatcher learns from users' Maildirs: a message that appears in a
// Junk folder is learnt as spam; one that leaves Junk for the inbox
// (new/ or cur/ of the Maildir itself) as ham; one that leaves for
// anywhere else (Trash) teaches nothing. Messages are followed by the
// unique part of their file name (before ":2,"), which a mail client
// keeps when it marks or moves one; the store remembers what was
// learnt, so a restart does not count Junk twice.
type junkWatcher struct {
	learner *classify.Learner
	dirs    []config.LearnMaildirConfig
	max     int
	// perRcpt: a Maildir's rcpt learns for that recipient too.
	perRcpt bool
	log     *slog.Logger
	inJunk  []map[string]bool // per Maildir, the names seen in Junk
	pending []lnPending       // the pass's messages queued in learner
	// feedback tells reputation of a message learnt (nil: nothing).
	feedback func(ctx context.Context, path, prev, class string)
}

// lnPending is a message queued: its file, class and Maildir.
type lnPending struct {
	path, class string
	md          int
}

func newJunkWatcher(st classify.CountStore, lc config.ClassifierLearnConfig, log *slog.Logger) *junkWatcher {
	w := &junkWatcher{learner: &classify.Learner{St: st, Name: classify.SiteModel}, dirs: lc.Maildirs, max: lc.MaxPerPass, log: log}
	for range w.dirs {
		w.inJunk = append(w.inJunk, map[string]bool{})
	}
	return w
}

// startJunkWatcher looks at the Maildirs every interval until the
// returned stop is called (it waits for a pass under way).
func startJunkWatcher(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) (stop func()) {
	lc := cfg.Checks.Classifier.Learn
	if st == nil || len(lc.Maildirs) == 0 {
		return func() {}
	}
	w := newJunkWatcher(st, lc, log)
	w.perRcpt = cfg.Checks.Classifier.PerRecipient
	w.feedback = junkFeedback(cfg, st, log)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lc.Interval.D())
		defer t.Stop()
		for {
			if _, err := w.pass(ctx); err != nil && ctx.Err() == nil {
				log.Warn("classifier: learning from Maildirs", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// uniq is a Maildir file name without its info (":2,S" flags).
func uniq(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i]
	}
	return name
}

// listMaildir returns the unique names in dir's new/ and cur/ with
// their paths.
func listMaildir(dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				out[uniq(e.Name())] = filepath.Join(dir, sub, e.Name())
			}
		}
	}
	return out, nil
}

// pass looks at every Maildir once and reads at most w.max messages;
// it returns how many it taught.
func (w *junkWatcher) pass(ctx context.Context) (int, error) {
	read := 0
	var errs []error
	for i, md := range w.dirs {
		junk, err := listMaildir(filepath.Join(md.Path, md.Junk))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", md.Path, err))
			continue
		}
		seen := w.inJunk[i]
		var inbox map[string]string
		for name := range seen {
			if _, still := junk[name]; still {
				continue
			}
			if read >= w.max {
				break
			}
			if inbox == nil {
				if inbox, err = listMaildir(md.Path); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", md.Path, err))
					break
				}
			}
			delete(seen, name)
			path, ok := inbox[name]
			if !ok {
				continue // to Trash or deleted: nothing to learn
			}
			read++
			w.add(ctx, i, path, "ham")
		}
		for name, path := range junk {
			if seen[name] {
				continue
			}
			if read >= w.max {
				break // the rest next time
			}
			seen[name] = true
			read++
			w.add(ctx, i, path, "spam")
		}
	}
	learnt, err := w.flush(ctx)
	return learnt, errors.Join(append(errs, err)...)
}

// add queues one message to be learnt at the end of the pass.
func (w *junkWatcher) add(ctx context.Context, md int, path, class string) {
	raw, err := readLearnFile(path)
	if err != nil {
		w.log.Warn("classifier: a Maildir message not read", "path", path, "err", err)
		return
	}
	fields, body := classify.ParseMessage(raw)
	own := ""
	if w.perRcpt {
		own = w.dirs[md].Rcpt
	}
	if err := w.learner.AddFor(ctx, raw, &classify.Message{Fields: fields, Body: body}, class, own); err != nil {
		w.log.Warn("classifier: a Maildir message not learnt", "path", path, "err", err)
		return
	}
	w.pending = append(w.pending, lnPending{path, class, md})
}

// flush learns the pass's messages in one transaction; it returns how
// many changed the model.
func (w *junkWatcher) flush(ctx context.Context) (int, error) {
	pending := w.pending
	w.pending = nil
	out, err := w.learner.Flush(ctx)
	if err != nil {
		// Not learnt: the next pass tries again (a message still in
		// Junk is new to it, one gone from Junk is gone again).
		for _, p := range pending {
			w.inJunk[p.md][uniq(filepath.Base(p.path))] = p.class == "ham"
			if p.class == "spam" {
				delete(w.inJunk[p.md], uniq(filepath.Base(p.path)))
			}
		}
		return 0, err
	}
	n := 0
	for i, o := range out {
		if o.Changed {
			n++
			w.log.Info("classifier: learnt from a Maildir", "path", pending[i].path, "as", pending[i].class, "was", o.Prev)
			if w.feedback != nil {
				w.feedback(ctx, pending[i].path, o.Prev, pending[i].class)
			}
		}
	}
	return n, nil
}

// checkStoreModels opens the store for check-message when a classifier
// reads its model there; close closes it.
func checkStoreModels(ctx context.Context, as []analysis.Analyzer, cfg *config.Config) (closeStore func(), err error) {
	need := false
	for _, a := range as {
		if c, ok := a.(*classify.Analyzer); ok && c.C == nil {
			need = true
		}
	}
	if !need {
		return func() {}, nil
	}
	st, err := store.Open(ctx, cfg.Store.Driver, cfg.Store.DSN)
	if err != nil {
		return nil, fmt.Errorf("checks.classifier.source: %w", err)
	}
	if err := storeModels(as, cfg, st); err != nil {
		st.Close()
		return nil, err
	}
	return func() { st.Close() }, nil
}
