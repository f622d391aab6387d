package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailwall/internal/classify"
	"mailwall/internal/store"
)

// TestD24LearnMaildirBatches: learn --maildir over more messages than a
// batch (learnPipe: a batch written while the next is read) learns each
// once, a copy of a message in a later batch counted as learnt already,
// and says so.
func TestD24LearnMaildirBatches(t *testing.T) {
	cfgPath, dbPath := lnStoreConfig(t)
	dir := t.TempDir()
	lnWriteMaildir(t, dir)
	const n = 2*learnBatch + 100
	for i := range n {
		msg := lnLottery(i)
		if i == n-1 {
			msg = lnLottery(1) // the first batch's message again
		}
		if err := os.WriteFile(filepath.Join(dir, "cur", fmt.Sprintf("m%05d:2,S", i)), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := runCLI("learn", "--config", cfgPath, "--maildir", dir, "--as", "spam")
	if want := fmt.Sprintf("%d messages read, %d learnt as spam", n, n-1); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("learn --maildir: exit %d: %q, want %q (%s)", code, out, want, errs)
	}
	st, err := store.Open(context.Background(), "sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, err := st.ModelCounts(context.Background(), classify.SiteModel, 0, func(classify.BucketCount) {})
	if err != nil || ms.Junk != n-1 || ms.Ham != 0 {
		t.Errorf("the model: %+v (%v), want %d spam", ms, err, n-1)
	}
}
