package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"mailwall/internal/dmarc"
	"mailwall/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// eachDriver runs test against a new SQLite file and a new PostgreSQL
// database: the same suite must pass on both.
func eachDriver(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "mailwall.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		test(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := Open(context.Background(), "postgres", pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		test(t, s)
	})
}

// sharedPostgres opens two stores on one new PostgreSQL database, as two
// MX hosts would, both closed when the test ends.
func sharedPostgres(t *testing.T) (a, b *Store) {
	t.Helper()
	dsn := pgtest.DSN(t)
	a, err := Open(context.Background(), "postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = Open(context.Background(), "postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// openBench opens a new store of driver (a SQLite file or a PostgreSQL
// database) for a benchmark, which closes it.
func openBench(b *testing.B, driver string) *Store {
	b.Helper()
	dsn := b.TempDir() + "/m.db"
	if driver == "postgres" {
		dsn = pgtest.DSN(b)
	}
	s, err := Open(context.Background(), driver, dsn)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func TestSeenDomain(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		day1 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
		first, since, err := s.SeenDomain(ctx, "example.test", day1)
		if err != nil || !first.Equal(day1) {
			t.Fatalf("first sighting: %v %v", first, err)
		}
		if time.Since(since) > time.Minute {
			t.Errorf("history since %v, want about now", since)
		}
		first, _, err = s.SeenDomain(ctx, "example.test", day1.Add(48*time.Hour))
		if err != nil || !first.Equal(day1) {
			t.Errorf("second sighting moved first-seen: %v %v", first, err)
		}
		// A known domain's count is owed, and written with the next batch
		// of verdicts (or FlushSeen).
		count := func() (n, last int64) {
			s.db.QueryRow(`SELECT messages, last_seen FROM sender_domains WHERE domain = 'example.test'`).Scan(&n, &last)
			return
		}
		if n, _ := count(); n != 1 {
			t.Errorf("messages %d before the flush, want 1", n)
		}
		if err := s.InsertVerdicts(ctx, []Verdict{{At: day1, Action: "accept"}}); err != nil {
			t.Fatal(err)
		}
		if n, last := count(); n != 2 || last != day1.Add(48*time.Hour).Unix() {
			t.Errorf("messages %d, last seen %v; want 2, %v", n, time.Unix(last, 0).UTC(), day1.Add(48*time.Hour))
		}
		s.SeenDomain(ctx, "example.test", day1.Add(24*time.Hour)) // older than the last: last_seen stays
		if err := s.FlushSeen(ctx); err != nil {
			t.Fatal(err)
		}
		if n, last := count(); n != 3 || last != day1.Add(48*time.Hour).Unix() {
			t.Errorf("after FlushSeen: messages %d, last seen %v", n, time.Unix(last, 0).UTC())
		}
	})
}

// TestSeenDomainCached: a domain not yet read is not answered from memory
// (and not counted); once SeenDomain has read it, the cached answer is
// the same and the message is counted like SeenDomain's.
func TestSeenDomainCached(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		day1 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
		if _, _, ok := s.SeenDomainCached("example.test", day1); ok {
			t.Fatal("unknown domain answered from memory")
		}
		first, since, err := s.SeenDomain(ctx, "example.test", day1)
		if err != nil {
			t.Fatal(err)
		}
		first2, since2, ok := s.SeenDomainCached("example.test", day1.Add(time.Hour))
		if !ok || !first2.Equal(first) || !since2.Equal(since) {
			t.Fatalf("cached: %v %v %v, want %v %v", first2, since2, ok, first, since)
		}
		if err := s.FlushSeen(ctx); err != nil {
			t.Fatal(err)
		}
		var n int64
		s.db.QueryRow(`SELECT messages FROM sender_domains WHERE domain = 'example.test'`).Scan(&n)
		if n != 2 {
			t.Errorf("messages %d, want 2 (one read, one cached)", n)
		}
	})
}

func TestReopenKeepsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db", "mailwall.db")
	s, err := Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode: %v %v", fi.Mode(), err)
	}
	day1 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	_, since, _ := s.SeenDomain(ctx, "example.test", day1)
	s.Close()
	s, err = Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, since2, err := s.SeenDomain(ctx, "example.test", day1.Add(72*time.Hour))
	if err != nil || !first.Equal(day1) || !since2.Equal(since) {
		t.Errorf("after reopen: first %v since %v (was %v) %v", first, since2, since, err)
	}
}

// TestUpgradeFromFirstSchema opens a database made by the first release
// (meta and sender_domains, schema 2) and checks its history survives
// the new migrations.
func TestUpgradeFromFirstSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// Rebuild the first release's layout by hand.
	for _, q := range []string{`DROP TABLE verdicts`, `DROP TABLE dmarc_rows`, `DROP TABLE report_deliveries`, `DROP TABLE reports_out`,
		`DROP TABLE report_records_in`, `DROP TABLE reports_in`, `DROP TABLE greylist_triplets`, `DROP TABLE greylist_clients`, `DROP TABLE list_entries`,
		`DROP TABLE reputation`, `DROP TABLE correspondents`, `DROP TABLE learn_quota`,
		`UPDATE meta SET value = '2' WHERE key = 'schema'`,
		`INSERT INTO sender_domains VALUES ('old.example', 1, 2, 3)`} {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	s.Close()
	s, err = Open(ctx, "sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.db.QueryRow(`SELECT messages FROM sender_domains WHERE domain = 'old.example'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("old history: %d %v", n, err)
	}
	if _, err := s.Verdicts(ctx, VerdictFilter{}); err != nil {
		t.Errorf("new tables missing after upgrade: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, "oracle", "x"); err == nil {
		t.Error("unknown driver accepted")
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "notadb")
	os.WriteFile(bad, []byte("this is not a database, it is a text file of some length......"), 0o600)
	if _, err := Open(ctx, "sqlite", bad); err == nil {
		t.Error("a text file opened as a database")
	}
	// Nothing listens on port 1: a clear error, not a hang.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := Open(cctx, "postgres", "postgres://x@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"); err == nil {
		t.Error("unreachable PostgreSQL opened")
	}
}

func testVerdict(at time.Time, from, ip, action string) Verdict {
	v := Verdict{At: at, Node: "mx1.test", QueueID: "Q1", ClientIP: ip, Helo: "mail." + from, MailFrom: "news@" + from,
		FromDomain: from, Rcpts: []string{"a@rcpt.test", "b@rcpt.test"}, Action: action, Stage: "dmarc", Verdict: "fail",
		IPRev: "pass", SPF: "pass", DKIM: "fail:" + from, DMARC: "fail", ARC: "none", Score: 45,
		Rules: []string{"brand_from_domain=45"}, Reasons: []string{"dmarc: p=reject", "phish: look-alike"}}
	v.DMARCRow = &DMARCRow{
		Row: dmarc.Row{SourceIP: netip.MustParseAddr(ip), HeaderFrom: from, EnvelopeFrom: from, EnvelopeTo: "rcpt.test", PolicyDomain: from,
			Published:   dmarc.PublishedPolicy{Domain: from, P: "reject", ADKIM: "r", ASPF: "r", Pct: -1, DiscoveryMethod: "treewalk"},
			Disposition: "reject", DKIMAligned: "fail", SPFAligned: "pass",
			DKIM: []dmarc.DKIMResult{{Domain: from, Selector: "s1", Result: "fail"}}, SPFDomain: from, SPFScope: "mfrom", SPFResult: "pass"},
		RUA: []dmarc.URI{{URI: "mailto:dmarc@" + from, MaxSize: 10 << 20}}, RI: 86400,
	}
	return v
}

func TestVerdicts(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		vs := []Verdict{
			testVerdict(t0, "bank.test", "192.0.2.1", "reject"),
			testVerdict(t0.Add(time.Minute), "shop.test", "192.0.2.2", "accept"),
			testVerdict(t0.Add(2*time.Minute), "Bank.Test", "2001:db8::1", "quarantine"),
		}
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		all, err := s.Verdicts(ctx, VerdictFilter{})
		if err != nil || len(all) != 3 {
			t.Fatalf("all: %d %v", len(all), err)
		}
		if all[0].ClientIP != "2001:db8::1" || all[0].FromDomain != "bank.test" || !all[0].At.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("newest first, domain lower-cased: %+v", all[0])
		}
		got := all[2]
		if got.Score != 45 || len(got.Rcpts) != 2 || len(got.Reasons) != 2 || got.Reasons[1] != "phish: look-alike" || got.Rules[0] != "brand_from_domain=45" {
			t.Errorf("round trip: %+v", got)
		}
		for _, c := range []struct {
			f    VerdictFilter
			want int
		}{
			{VerdictFilter{Action: "reject"}, 1},
			{VerdictFilter{Domain: "BANK.test"}, 2},
			{VerdictFilter{ClientIP: "192.0.2.2"}, 1},
			{VerdictFilter{Search: "look-alike"}, 3},
			{VerdictFilter{Since: t0.Add(time.Minute)}, 2},
			{VerdictFilter{Until: t0.Add(time.Minute)}, 1},
			{VerdictFilter{Limit: 2}, 2},
			{VerdictFilter{BeforeID: all[1].ID}, 1},
			{VerdictFilter{Domain: "nobody.test"}, 0},
		} {
			got, err := s.Verdicts(ctx, c.f)
			if err != nil || len(got) != c.want {
				t.Errorf("%+v: %d verdicts (%v), want %d", c.f, len(got), err, c.want)
			}
		}
		var rows int
		s.db.QueryRow(`SELECT count(*) FROM dmarc_rows WHERE policy_domain = 'bank.test' AND rua LIKE 'mailto:dmarc@%!10485760'`).Scan(&rows)
		if rows != 2 {
			t.Errorf("dmarc rows for bank.test: %d, want 2", rows)
		}
	})
}

func TestRecorder(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		var lost int
		r := s.NewRecorder(slog.New(slog.NewTextHandler(io.Discard, nil)), 1000, func(n int) { lost += n })
		t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		for i := range 500 {
			r.Record(testVerdict(t0.Add(time.Duration(i)*time.Second), "bulk.test", "192.0.2.9", "accept"))
		}
		r.Close()
		if r.Written() != 500 || r.Lost() != 0 || lost != 0 {
			t.Errorf("written %d lost %d/%d, want 500 written", r.Written(), r.Lost(), lost)
		}
		got, _ := s.Verdicts(context.Background(), VerdictFilter{Limit: 1000})
		if len(got) != 500 {
			t.Errorf("%d verdicts stored, want 500", len(got))
		}
	})
}

// TestRecorderWakes: the writer writes every verdict without Close: one
// at a time, each after the last was written, and in bursts larger than
// a batch.
func TestRecorderWakes(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		r := s.NewRecorder(slog.New(slog.DiscardHandler), 1000, nil)
		defer r.Close()
		t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		for i := range 5 {
			r.Record(testVerdict(t0.Add(time.Duration(i)*time.Second), "one.test", "192.0.2.9", "accept"))
			waitFor(t, func() bool { return r.Written() == int64(i+1) })
		}
		for round := range 3 {
			for i := range 2*maxBatch + 7 {
				r.Record(testVerdict(t0.Add(time.Duration(i)*time.Second), "burst.test", "192.0.2.9", "accept"))
			}
			want := int64(5 + (round+1)*(2*maxBatch+7))
			waitFor(t, func() bool { return r.Written() == want })
		}
		if r.Lost() != 0 || len(r.q) != 0 {
			t.Errorf("lost %d, %d still queued", r.Lost(), len(r.q))
		}
	})
}

// TestRecorderDatabaseGone: with the database closed under it, the
// recorder neither blocks nor panics; every verdict is counted lost.
func TestRecorderDatabaseGone(t *testing.T) {
	s, err := Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "gone.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var lost int
	r := s.NewRecorder(slog.New(slog.NewTextHandler(io.Discard, nil)), 2, func(n int) { lost += n })
	t0 := time.Now()
	for range 50 {
		r.Record(testVerdict(t0, "x.test", "192.0.2.1", "accept"))
	}
	r.Close()
	if r.Written() != 0 || r.Lost() != 50 || lost != 50 {
		t.Errorf("written %d lost %d (callback %d), want 50 lost", r.Written(), r.Lost(), lost)
	}
}

// TestRecorderHoldsWhileStoreFails: while the verdicts table cannot be
// written, verdicts are held, not lost; once it can, they are all
// written. Then, past the memory bound, the oldest are dropped and
// counted.
func TestRecorderHoldsWhileStoreFails(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var lost atomic.Int64
		r := s.newRecorder(slog.New(slog.DiscardHandler), 300, func(n int) { lost.Add(int64(n)) }, 10*time.Millisecond)
		block, unblock := failInserts(t, s)
		block()
		t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		for i := range 250 {
			r.Record(testVerdict(t0.Add(time.Duration(i)*time.Second), "held.test", "192.0.2.9", "accept"))
		}
		waitFor(t, func() bool { return r.Held() == 250 })
		if r.Written() != 0 || r.Lost() != 0 {
			t.Fatalf("while failing: written %d lost %d, want 0 and 0", r.Written(), r.Lost())
		}
		unblock()
		waitFor(t, func() bool { return r.Written() == 250 })
		if r.Held() != 0 || r.Lost() != 0 {
			t.Errorf("after recovery: held %d lost %d", r.Held(), r.Lost())
		}

		// Past the bound (300): the 50 oldest go, counted.
		block()
		for i := range 350 {
			r.Record(testVerdict(t0.Add(time.Duration(i)*time.Second), "over.test", "192.0.2.9", "accept"))
			if i%100 == 99 {
				waitFor(t, func() bool { return r.Held() >= int64(min(i+1, 300)) })
			}
		}
		waitFor(t, func() bool { return r.Held() == 300 && lost.Load() == 50 })
		if r.Written() != 250 {
			t.Errorf("written %d while the store failed", r.Written()-250)
		}
		unblock()
		r.Close()
		if r.Written() != 550 {
			t.Errorf("written %d, want 550", r.Written())
		}
		got, _ := s.Verdicts(ctx, VerdictFilter{Limit: 1000})
		if len(got) != 550 {
			t.Errorf("%d verdicts stored, want 550", len(got))
		}
	})
}

// failInserts returns functions that make every insert into verdicts
// fail, as a full disk would, and stop that: a trigger that raises an
// error, which both databases check on every statement.
func failInserts(t *testing.T, s *Store) (block, unblock func()) {
	exec := func(stmts ...string) {
		for _, q := range stmts {
			if _, err := s.db.ExecContext(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.driver == "sqlite" {
		return func() {
				exec(`CREATE TRIGGER fail_inserts BEFORE INSERT ON verdicts BEGIN SELECT RAISE(ABORT, 'store test: inserts blocked'); END`)
			}, func() {
				exec(`DROP TRIGGER fail_inserts`)
			}
	}
	exec(`CREATE OR REPLACE FUNCTION fail_inserts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'store test: inserts blocked'; END $$`)
	return func() {
			exec(`CREATE TRIGGER fail_inserts BEFORE INSERT ON verdicts FOR EACH ROW EXECUTE FUNCTION fail_inserts()`)
		}, func() {
			exec(`DROP TRIGGER fail_inserts ON verdicts`)
		}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
	}
}

func TestPurge(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		old := testVerdict(now.Add(-40*24*time.Hour), "old.test", "192.0.2.1", "accept")
		recent := testVerdict(now.Add(-time.Hour), "new.test", "192.0.2.1", "accept")
		if err := s.InsertVerdicts(ctx, []Verdict{old, recent}); err != nil {
			t.Fatal(err)
		}
		p, err := s.Purge(ctx, now, Retention{Verdicts: 30 * 24 * time.Hour, Reports: 180 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		// The old verdict goes; its DMARC row stays until it is reported.
		if p.Verdicts != 1 || p.DMARCRows != 0 {
			t.Errorf("purged %+v, want 1 verdict and no unreported row", p)
		}
		got, _ := s.Verdicts(ctx, VerdictFilter{})
		if len(got) != 1 || got[0].FromDomain != "new.test" {
			t.Errorf("left: %+v", got)
		}
		p, _ = s.Purge(ctx, now, Retention{Reports: 30 * 24 * time.Hour})
		if p.DMARCRows != 1 {
			t.Errorf("past the reports' retention the unreported row goes: %+v", p)
		}
	})
}

// TestInsertVerdictsIDs writes more verdicts than one INSERT takes, some
// without a DMARC row: each verdict gets the ID of its own row, and each
// DMARC row points at its verdict.
func TestInsertVerdictsIDs(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		vs := make([]Verdict, rowsPerInsert*2+7)
		for i := range vs {
			vs[i] = testVerdict(t0, fmt.Sprintf("d%d.test", i), "192.0.2.1", "accept")
			vs[i].QueueID = fmt.Sprintf("Q%04d", i)
			if i%3 == 0 {
				vs[i].DMARCRow = nil
			}
		}
		if err := s.InsertVerdicts(ctx, vs); err != nil {
			t.Fatal(err)
		}
		for i, v := range vs {
			var queueID string
			if err := s.db.QueryRow(`SELECT queue_id FROM verdicts WHERE id = $1`, v.ID).Scan(&queueID); err != nil || queueID != v.QueueID {
				t.Fatalf("verdict %d: id %d holds %q (%v), want %q", i, v.ID, queueID, err, v.QueueID)
			}
		}
		rows, err := s.db.Query(`SELECT v.queue_id, d.policy_domain FROM dmarc_rows d JOIN verdicts v ON v.id = d.verdict_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var queueID, domain string
			rows.Scan(&queueID, &domain)
			var i int
			fmt.Sscanf(queueID, "Q%d", &i)
			if domain != fmt.Sprintf("d%d.test", i) || i%3 == 0 {
				t.Errorf("DMARC row for %s points at verdict %s", domain, queueID)
			}
			n++
		}
		if want := len(vs) - (len(vs)+2)/3; n != want {
			t.Errorf("%d DMARC rows joined to their verdicts, want %d", n, want)
		}
	})
}

// TestInsertChunks: every row once, in order, in power-of-two chunks no
// larger than rowsPerInsert, largest first.
func TestInsertChunks(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 40, 63, 64, 65, 135, 200} {
		rows := make([]int, n)
		for i := range rows {
			rows[i] = i
		}
		var got []int
		prev := rowsPerInsert
		for chunk := range insertChunks(rows) {
			if l := len(chunk); l&(l-1) != 0 || l > prev {
				t.Errorf("n=%d: chunk of %d after one of %d", n, l, prev)
			}
			prev = len(chunk)
			got = append(got, chunk...)
		}
		if !slices.Equal(got, rows) {
			t.Errorf("n=%d: rows %v", n, got)
		}
	}
}
