package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailwall/internal/classify"
	"mailwall/internal/config"
	"mailwall/internal/store"
)

// lnLottery is a lottery scam, variant i.
func lnLottery(i int) string {
	return fmt.Sprintf("From: Lottery Desk <desk%d@desctrl.test>\r\nTo: taro@rcpt.test\r\nSubject: Claim your free prize now %d\r\nMessage-ID: <s%d@desctrl.test>\r\n\r\n"+
		"Congratulations winner, you won our lottery draw! Claim your cash prize now: click here, send your bank account\r\n"+
		"details and the small processing fee. Limited time exclusive offer, act now. Ticket %d.\r\n", i, i, i, i)
}

// lnStoreConfig writes a config whose classifier reads the model of a
// new SQLite store.
func lnStoreConfig(t *testing.T) (cfgPath, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "mailwall.db")
	cfgPath = filepath.Join(dir, "mailwall.yaml")
	cfg := "store:\n  driver: sqlite\n  dsn: " + dbPath + "\nchecks:\n  classifier:\n    enabled: true\n    source: store\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dbPath
}

// lnWriteMaildir makes a Maildir (new, cur, tmp) at dir.
func lnWriteMaildir(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLearnCommand: mailwall learn (one message, a Maildir) and unlearn
// on a SQLite store, then check-message on the same store's model shows
// the classifier's hit, which the empty model did not give; the same
// message is not counted twice, a switch of class takes the old one
// back, and unlearn only takes back what was learnt so.
func TestLearnCommand(t *testing.T) {
	cfgPath, _ := lnStoreConfig(t)
	dnsAddr := corpusLabDNS(t)
	check := []string{"check-message", "--config", cfgPath, "--dns", dnsAddr, "--ip", "127.0.1.1", "--helo", "desctrl.test",
		"--sender", "desk@desctrl.test", "--rcpt", "taro@rcpt.test"}
	code, out, errs := runCLIWithInput(lnLottery(99), check...)
	if code != 0 || strings.Contains(out, "# rule: classifier") {
		t.Fatalf("before learning: exit %d: %s\n%s", code, errs, out)
	}

	spam := t.TempDir()
	lnWriteMaildir(t, spam)
	paths, _ := filepath.Glob("../../internal/classify/testdata/handwritten/*.eml")
	var hams []string
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(filepath.Base(p), "ham-") {
			hams = append(hams, string(raw))
			continue
		}
		os.WriteFile(filepath.Join(spam, "cur", filepath.Base(p)+":2,S"), raw, 0o600)
	}
	for i := range 4 {
		os.WriteFile(filepath.Join(spam, "new", fmt.Sprintf("lottery%d", i)), []byte(lnLottery(i)), 0o600)
	}
	code, out, errs = runCLI("learn", "--config", cfgPath, "--maildir", spam, "--as", "spam")
	if code != 0 || !strings.Contains(out, "8 messages read, 8 learnt as spam") {
		t.Fatalf("learn --maildir: exit %d: %s\n%s", code, errs, out)
	}
	for _, h := range hams {
		if code, out, errs = runCLIWithInput(h, "learn", "ham", "--config", cfgPath, "--rcpt", "taro@rcpt.test"); code != 0 || strings.TrimSpace(out) != "learnt as ham" {
			t.Fatalf("learn ham: exit %d: %s\n%s", code, errs, out)
		}
	}
	code, out, errs = runCLIWithInput(lnLottery(99), check...)
	if code != 0 || !strings.Contains(out, "# rule: classifier (45): classifier 1.00 junk: strongest features: ") {
		t.Errorf("after learning: exit %d: %s\n%s", code, errs, out)
	}

	for _, tc := range []struct {
		args []string
		msg  string
		want string
	}{
		{[]string{"learn", "spam"}, lnLottery(1), "already learnt as spam: not counted twice"},
		{[]string{"learn", "spam"}, hams[0], "learnt as spam (it had been learnt as ham: that was taken back)"},
		{[]string{"unlearn", "ham"}, hams[0], "not unlearnt: the message was learnt as spam"},
		{[]string{"unlearn", "spam"}, hams[0], "unlearnt as spam"},
		{[]string{"unlearn", "spam"}, hams[0], "not unlearnt: the message was never learnt"},
		{[]string{"learn", "ham"}, hams[0], "learnt as ham"},
	} {
		code, out, errs := runCLIWithInput(tc.msg, append(tc.args, "--config", cfgPath)...)
		if code != 0 || strings.TrimSpace(out) != tc.want {
			t.Errorf("%v: exit %d: %q, want %q (%s)", tc.args, code, out, tc.want, errs)
		}
	}
	st, err := store.Open(context.Background(), "sqlite", strings.TrimSuffix(cfgPath, "mailwall.yaml")+"mailwall.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, _ := st.ModelCounts(context.Background(), classify.SiteModel, 0, func(classify.BucketCount) {})
	if ms.Junk != 8 || ms.Ham != int64(len(hams)) {
		t.Errorf("messages in the store's model: %+v, want 8 spam and %d ham", ms, len(hams))
	}
	if code, _, _ := runCLIWithInput("", "learn", "maybe", "--config", cfgPath); code != 2 {
		t.Errorf("learn maybe: exit %d, want 2", code)
	}
}

// TestJunkWatcher: a real Maildir on disk, files renamed as a mail
// client does: delivered into Junk is spam, read there is the same
// message, moved from the inbox into Junk is spam, moved back is ham
// (the spam count taken back), moved to Trash teaches nothing, and a
// restarted watcher does not count Junk again. A pass reads at most
// max_per_pass messages.
func TestJunkWatcher(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t)
	md := filepath.Join(t.TempDir(), "Maildir")
	for _, d := range []string{md, filepath.Join(md, ".Junk"), filepath.Join(md, ".Trash")} {
		lnWriteMaildir(t, d)
	}
	lc := config.ClassifierLearnConfig{Maildirs: []config.LearnMaildirConfig{{Path: md, Junk: ".Junk"}}, MaxPerPass: 2}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := newJunkWatcher(st, lc, log)
	counts := func() (int64, int64) {
		ms, err := st.ModelCounts(ctx, classify.SiteModel, 0, func(classify.BucketCount) {})
		if err != nil {
			t.Fatal(err)
		}
		return ms.Junk, ms.Ham
	}
	deliver := func(dir, name, msg string) {
		tmp := filepath.Join(dir, "tmp", name)
		if err := os.WriteFile(tmp, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
			t.Fatal(err)
		}
	}
	move := func(from, to string) {
		if err := os.Rename(filepath.Join(md, from), filepath.Join(md, to)); err != nil {
			t.Fatal(err)
		}
	}
	step := func(what string, wantLearnt int, wantJunk, wantHam int64) {
		t.Helper()
		n, err := w.pass(ctx)
		if err != nil {
			t.Fatal(what, err)
		}
		if j, h := counts(); n != wantLearnt || j != wantJunk || h != wantHam {
			t.Errorf("%s: learnt %d, model %d spam %d ham; want %d, %d, %d", what, n, j, h, wantLearnt, wantJunk, wantHam)
		}
	}
	step("empty", 0, 0, 0)
	deliver(filepath.Join(md, ".Junk"), "1000.M1.host", lnLottery(1))
	step("delivered into Junk", 1, 1, 0)
	move(".Junk/new/1000.M1.host", ".Junk/cur/1000.M1.host:2,S")
	step("read in Junk", 0, 1, 0)
	deliver(md, "1001.M2.host", "From: Alice <alice@example.org>\r\nSubject: lunch\r\nMessage-ID: <l@example.org>\r\n\r\nLunch at noon?\r\n")
	step("delivered to the inbox", 0, 1, 0)
	move("new/1001.M2.host", ".Junk/cur/1001.M2.host:2,S")
	step("moved into Junk", 1, 2, 0)
	move(".Junk/cur/1001.M2.host:2,S", "cur/1001.M2.host:2,S")
	step("moved back to the inbox", 1, 1, 1)
	move(".Junk/cur/1000.M1.host:2,S", ".Trash/cur/1000.M1.host:2,ST")
	step("moved to Trash", 0, 1, 1)
	deliver(filepath.Join(md, ".Junk"), "1002.M3.host", lnLottery(3))
	step("another into Junk", 1, 2, 1)
	w = newJunkWatcher(st, lc, log)
	step("after a restart", 0, 2, 1)
	for i := range 3 {
		deliver(filepath.Join(md, ".Junk"), fmt.Sprintf("2000.M%d.host", i), lnLottery(10+i))
	}
	// Four in Junk, one of them learnt before this watcher started: two
	// read a pass, in whatever order, so two passes learn the three new.
	n1, _ := w.pass(ctx)
	n2, _ := w.pass(ctx)
	if j, h := counts(); n1 > 2 || n2 > 2 || n1+n2 != 3 || j != 5 || h != 1 {
		t.Errorf("bounded passes: learnt %d then %d, model %d spam %d ham; want at most 2 a pass, 5 and 1", n1, n2, j, h)
	}
	step("bounded pass 3", 0, 5, 1)
}

// TestLearnImport: learn --import seeds the store's model from a model
// file (as make model writes it, here of 2^16 buckets): check-message on
// the store then gives the file model's hit, and learning goes on at the
// imported model's size.
func TestLearnImport(t *testing.T) {
	_, modelPath := classifierModel(t)
	cfgPath, _ := lnStoreConfig(t)
	code, out, errs := runCLI("learn", "--config", cfgPath, "--import", modelPath)
	if code != 0 || !strings.Contains(out, "imported") {
		t.Fatalf("learn --import: exit %d: %s\n%s", code, out, errs)
	}
	check := []string{"check-message", "--config", cfgPath, "--dns", "127.0.0.1:1", "--ip", "127.0.1.1", "--helo", "desctrl.test",
		"--sender", "desk@desctrl.test", "--rcpt", "taro@rcpt.test"}
	code, out, errs = runCLIWithInput(lnLottery(99), check...)
	if code != 0 || !strings.Contains(out, "# rule: classifier (45): classifier 1.00 junk") {
		t.Errorf("check-message on the imported model: exit %d: %s\n%s", code, out, errs)
	}
	if code, out, errs = runCLIWithInput(lnLottery(1), "learn", "spam", "--config", cfgPath); code != 0 || strings.TrimSpace(out) != "learnt as spam" {
		t.Errorf("learn after import: exit %d: %s\n%s", code, out, errs)
	}
}

// lnFailingStore fails every LearnCounts while down.
type lnFailingStore struct {
	classify.CountStore
	down bool
}

func (f *lnFailingStore) LearnCounts(ctx context.Context, name string, bits int, items []classify.Learning) ([]classify.Learnt, error) {
	if f.down {
		return nil, fmt.Errorf("store down")
	}
	return f.CountStore.LearnCounts(ctx, name, bits, items)
}

// TestJunkWatcherStoreDown: what a pass could not learn because the
// store failed is learnt by the next pass once the store is back.
func TestJunkWatcherStoreDown(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t)
	md := filepath.Join(t.TempDir(), "Maildir")
	lnWriteMaildir(t, md)
	lnWriteMaildir(t, filepath.Join(md, ".Junk"))
	fs := &lnFailingStore{CountStore: st}
	w := newJunkWatcher(fs, config.ClassifierLearnConfig{Maildirs: []config.LearnMaildirConfig{{Path: md, Junk: ".Junk"}}, MaxPerPass: 10},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.WriteFile(filepath.Join(md, ".Junk", "new", "1.M1.host"), []byte(lnLottery(1)), 0o600)
	os.WriteFile(filepath.Join(md, ".Junk", "cur", "2.M2.host:2,S"), []byte(lnLottery(2)), 0o600)
	if n, err := w.pass(ctx); err != nil || n != 2 {
		t.Fatalf("first pass: %d %v", n, err)
	}
	// Store down: one message moved back to the inbox, one new in Junk.
	fs.down = true
	os.Rename(filepath.Join(md, ".Junk", "cur", "2.M2.host:2,S"), filepath.Join(md, "cur", "2.M2.host:2,S"))
	os.WriteFile(filepath.Join(md, ".Junk", "new", "3.M3.host"), []byte(lnLottery(3)), 0o600)
	if _, err := w.pass(ctx); err == nil {
		t.Fatal("a pass with the store down says nothing")
	}
	fs.down = false
	if n, err := w.pass(ctx); err != nil || n != 2 {
		t.Errorf("pass after the store is back: learnt %d (%v), want 2 (one ham, one spam)", n, err)
	}
	ms, _ := st.ModelCounts(ctx, classify.SiteModel, 0, func(classify.BucketCount) {})
	if ms.Junk != 2 || ms.Ham != 1 {
		t.Errorf("model: %+v, want 2 spam 1 ham", ms)
	}
}

// TestJunkWatcherFollowsReload: a reload that adds a Maildir to
// checks.classifier.learn starts watching it without a restart, one that
// changes nothing the watcher reads leaves it running, and after Stop
// nothing is learnt.
func TestJunkWatcherFollowsReload(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t)
	md := filepath.Join(t.TempDir(), "Maildir")
	for _, d := range []string{md, filepath.Join(md, ".Junk")} {
		lnWriteMaildir(t, d)
	}
	if err := os.WriteFile(filepath.Join(md, ".Junk", "new", "1000.M1.host"), []byte(lnLottery(1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Checks.Classifier.Learn.Interval = config.Duration(20 * time.Millisecond)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := startJunkWatchers(ctx, cfg, st, log)
	defer w.Stop()
	junk := func() int64 {
		ms, err := st.ModelCounts(ctx, classify.SiteModel, 0, func(classify.BucketCount) {})
		if err != nil {
			t.Fatal(err)
		}
		return ms.Junk
	}
	time.Sleep(100 * time.Millisecond)
	if n := junk(); n != 0 {
		t.Fatalf("learnt %d with no Maildir configured", n)
	}
	same := *cfg
	if w.apply(&same) {
		t.Error("a reload changing nothing the watcher reads restarted it")
	}
	next := *cfg
	next.Checks.Classifier.Learn.Maildirs = []config.LearnMaildirConfig{{Path: md, Junk: ".Junk"}}
	if !w.apply(&next) {
		t.Fatal("a reload adding a Maildir did not restart the watcher")
	}
	deadline := time.Now().Add(10 * time.Second)
	for junk() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the Junk message was not learnt after the reload: %d", junk())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.Stop()
	if err := os.WriteFile(filepath.Join(md, ".Junk", "new", "1001.M1.host"), []byte(lnLottery(2)), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := junk(); n != 1 {
		t.Errorf("learnt after Stop: %d", n)
	}
}
