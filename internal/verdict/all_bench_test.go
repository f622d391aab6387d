package verdict

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"mailwall/internal/analysis"
	"mailwall/internal/classify"
	"mailwall/internal/lists"
	"mailwall/internal/phish"
	"mailwall/internal/reputation"
	"mailwall/internal/store"
)

// BenchmarkMessageAll is BenchmarkMessage with every analyzer on, as
// bench/milter -all runs serve: the phishing rules, the DNS blocklists
// (two IP lists and a domain list, answered from the cache), the
// classifier's starter model and reputation on a SQLite store (its
// history cached after the first message), and allow and block lists
// none of whose entries match. The work after the reply (the store's
// record, the log line) is cmd/mailwall's BenchmarkMilterAll.
func BenchmarkMessageAll(b *testing.B) {
	ctx := context.Background()
	c, signer := world(b)
	p, err := phish.New(phish.DefaultBrands(), nil)
	if err != nil {
		b.Fatal(err)
	}
	starter, err := classify.LoadFile(ctx, "", "bayes")
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, "sqlite", filepath.Join(b.TempDir(), "mailwall.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	rep := reputation.New(st, reputation.DefaultConfig(), nil)
	c.Analyzers = []analysis.Analyzer{p, dnsblAnalyzer(b, dnsblLists(b), "zen.lists.test*3 bl2.lists.test", "dbl.lists.test*2"),
		&classify.Analyzer{C: starter, Threshold: 0.95, Weight: 30, StrongThreshold: 0.99, StrongWeight: 45},
		&reputation.Analyzer{Rep: rep, Rules: reputation.DefaultRules()}}
	c.Lists = lists.NewCache(listSource{
		{List: lists.Allow, Kind: lists.IP, Value: "198.51.100.0/24"}, {List: lists.Allow, Kind: lists.Domain, Value: "partner-bench.test"},
		{List: lists.Block, Kind: lists.Domain, Value: "blocked-bench.test"}, {List: lists.Block, Kind: lists.Sender, Value: "spammer@blocked-bench.test"},
	}, slog.New(slog.DiscardHandler))
	if err := c.Lists.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	benchMessage(b, c, signer)
}
