package store

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"mailwall/internal/dmarc"
)

// TestK3VerdictIDs: the ids InsertVerdicts sets are the rows' own, and
// each DMARC row points at its verdict, for batches of every chunking
// (one statement, several of sizes 64, 32, ... 1), after the newest
// row was deleted (its id is not given again) and with other writes
// between batches.
func TestK3VerdictIDs(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		n := 0
		var all []Verdict
		for _, size := range []int{1, 5, 64, 100, 3} {
			batch := make([]Verdict, size)
			for i := range batch {
				batch[i] = testVerdict(t0.Add(time.Duration(n)*time.Second), fmt.Sprintf("d%d.test", n), "192.0.2.1", "accept")
				batch[i].QueueID = fmt.Sprintf("K3Q%d", n)
				n++
			}
			if err := s.InsertVerdicts(ctx, batch); err != nil {
				t.Fatal(err)
			}
			all = append(all, batch...)
			// The newest row goes: a plain rowid would give its id
			// again, AUTOINCREMENT does not.
			last := batch[len(batch)-1]
			if _, err := s.db.ExecContext(ctx, `DELETE FROM dmarc_rows WHERE verdict_id = $1`, last.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.ExecContext(ctx, `DELETE FROM verdicts WHERE id = $1`, last.ID); err != nil {
				t.Fatal(err)
			}
			all = all[:len(all)-1]
			if _, _, err := s.SeenDomain(ctx, "other.test", t0); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[int64]bool{}
		for _, v := range all {
			if seen[v.ID] || v.ID <= 0 {
				t.Fatalf("%s: id %d given twice or not at all", v.QueueID, v.ID)
			}
			seen[v.ID] = true
			got, err := s.Verdicts(ctx, VerdictFilter{QueueID: v.QueueID})
			if err != nil || len(got) != 1 || got[0].ID != v.ID {
				t.Fatalf("%s: set id %d, stored %+v (%v)", v.QueueID, v.ID, got, err)
			}
			var domain string
			if err := s.db.QueryRowContext(ctx, `SELECT policy_domain FROM dmarc_rows WHERE verdict_id = $1`, v.ID).Scan(&domain); err != nil || domain != v.FromDomain {
				t.Fatalf("%s: DMARC row of verdict %d: %q (%v), want %q", v.QueueID, v.ID, domain, err, v.FromDomain)
			}
		}
	})
}

// TestK3RecorderFullTransactions: a burst is written in full
// transactions (SQLite's 64 rows, PostgreSQL's 200), not in batches of
// 200 cut into 64, 64, 64 and 8.
func TestK3RecorderFullTransactions(t *testing.T) {
	eachDriver(t, func(t *testing.T, s *Store) {
		r := s.NewRecorder(slog.New(slog.DiscardHandler), 4096, nil)
		defer r.Close()
		t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
		const n = 20 * rowsPerInsert
		for i := range n {
			r.Record(testVerdict(t0.Add(time.Duration(i)*time.Millisecond), "burst.test", "192.0.2.9", "accept"))
		}
		waitFor(t, func() bool { return r.Written() == n })
		// Two more than the least: a batch the timer closed early (the
		// machine busy) is not a failure; 200s cut into 64s were 26.
		most := int64(n/r.txRows + 2)
		if got := r.txs.Load(); got > most {
			t.Errorf("%d verdicts in %d transactions, want at most %d (%d rows each)", n, got, most, r.txRows)
		}
	})
}

// TestK3WALCheckpoint: every SQLite connection copies the log into the
// database every walCheckpoint pages.
func TestK3WALCheckpoint(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite", t.TempDir()+"/m.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Two connections at once: both were opened with the pragma.
	for range 2 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var n int
		if err := c.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&n); err != nil || n != walCheckpoint {
			t.Errorf("wal_autocheckpoint %d (%v), want %d", n, err, walCheckpoint)
		}
	}
}

// TestK3DMARCPolicyArgs: a batch's DMARC rows have the values each row
// has alone, when rows of one policy domain repeat its policy, and when
// they change its published policy, reporting addresses or interval.
func TestK3DMARCPolicyArgs(t *testing.T) {
	var rows []DMARCRow
	for _, r := range b24DMARCRows() {
		rows = append(rows, DMARCRow{Row: r, RI: -1})
	}
	base := rows[0]
	pct, rua, rua2, ri, upper := base, base, base, base, base
	pct.Row.Published.Pct = 50
	rua.RUA = []dmarc.URI{{URI: "mailto:a@bank.test"}}
	rua2.RUA = []dmarc.URI{{URI: "mailto:a@bank.test", MaxSize: 1 << 20}, {URI: "mailto:b@bank.test"}}
	ri.RI = 3600
	upper.Row.PolicyDomain = "BANK.test"
	rows = append(rows, base, pct, pct, base, rua, rua, rua2, ri, ri, base, upper, rows[1], rows[3], base)
	var (
		got      []any
		policies dmarcPolicies
	)
	var want []any
	for i := range rows {
		v := Verdict{ID: int64(i + 1), At: time.Unix(int64(1e9+i), 0), DMARCRow: &rows[i]}
		got = appendDMARCRowArgs(got, &v, &policies)
		want = append(want, dmarcRowArgs(&v)...)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("row %d column %d: %#v, alone %#v", i/dmarcRowColumns, i%dmarcRowColumns, got[i], want[i])
			}
		}
	}
	if len(policies) != 3 {
		t.Errorf("%d policy domains kept, want 3 (bank.test, BANK.test and the empty one)", len(policies))
	}
}
