package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mailwall/internal/classify"
	"mailwall/internal/config"
)

// TestP1JunkWatcherRecipient: with per_recipient, a Maildir's rcpt
// learns for that recipient too. The same message moved into the Junk
// folders of two users' Maildirs counts once for each (twice for the
// site), moving it back to one inbox takes back only that user's
// spam, and a Maildir without rcpt teaches the site alone.
func TestP1JunkWatcherRecipient(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t)
	root := t.TempDir()
	var mds []config.LearnMaildirConfig
	for _, u := range []string{"alice", "bob", "carol"} {
		md := filepath.Join(root, u)
		lnWriteMaildir(t, md)
		lnWriteMaildir(t, filepath.Join(md, ".Junk"))
		rcpt := u + "@rcpt.test"
		if u == "carol" {
			rcpt = ""
		}
		mds = append(mds, config.LearnMaildirConfig{Path: md, Junk: ".Junk", Rcpt: rcpt})
	}
	w := newJunkWatcher(st, config.ClassifierLearnConfig{Maildirs: mds, MaxPerPass: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.perRcpt = true
	put := func(path, msg string) {
		if err := os.WriteFile(path, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, wantSite [2]int64, want map[string][2]uint64) {
		t.Helper()
		if _, err := w.pass(ctx); err != nil {
			t.Fatal(what, err)
		}
		sh, err := classify.OpenShared(ctx, st, classify.SiteModel, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := sh.C.Models()
		b := m.(*classify.Bayes)
		ms, err := st.ModelCounts(ctx, classify.SiteModel, 0, func(classify.BucketCount) {})
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]int64{ms.Junk, ms.Ham}; got != wantSite {
			t.Errorf("%s: the site learnt %v (spam, ham), want %v", what, got, wantSite)
		}
		for rcpt, w := range want {
			if j, h := b.RecipientLearns(classify.RecipientSalt(rcpt)); [2]uint64{j, h} != w {
				t.Errorf("%s: %s learnt %d spam %d ham, want %v", what, rcpt, j, h, w)
			}
		}
	}
	msg := lnLottery(1)
	put(filepath.Join(root, "alice", ".Junk", "new", "1.M1.host"), msg)
	check("into alice's Junk", [2]int64{1, 0}, map[string][2]uint64{"alice@rcpt.test": {1, 0}, "bob@rcpt.test": {0, 0}})
	put(filepath.Join(root, "bob", ".Junk", "new", "1.M1.host"), msg)
	check("into bob's Junk too", [2]int64{2, 0}, map[string][2]uint64{"alice@rcpt.test": {1, 0}, "bob@rcpt.test": {1, 0}})
	if err := os.Rename(filepath.Join(root, "bob", ".Junk", "new", "1.M1.host"), filepath.Join(root, "bob", "cur", "1.M1.host:2,S")); err != nil {
		t.Fatal(err)
	}
	check("back to bob's inbox", [2]int64{1, 1}, map[string][2]uint64{"alice@rcpt.test": {1, 0}, "bob@rcpt.test": {0, 1}})
	put(filepath.Join(root, "carol", ".Junk", "new", "2.M2.host"), lnLottery(2))
	check("into carol's Junk (no rcpt)", [2]int64{2, 1}, map[string][2]uint64{"alice@rcpt.test": {1, 0}, "bob@rcpt.test": {0, 1}})
}
