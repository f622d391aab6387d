package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"mailwall/internal/greylist"
)

// The store is a greylist.Store: several MX hosts on one PostgreSQL
// database greylist as one, each request one statement.
var _ greylist.Store = (*Store)(nil)

// It is a greylist.BatchStore too: the policy server's greylisting
// answers a deferral from a read and writes its triplet with others a
// few milliseconds later (greylist.StartWriteBehind).
var _ greylist.BatchStore = (*Store)(nil)

// greyStmts are the greylist's statements, prepared on first use (most
// stores never greylist).
type greyStmts struct {
	mu                                                sync.Mutex
	seen, passes, counted, seenClient, peek, peekOnly *sql.Stmt

	// writes serializes this process's greylist writes and verdict
	// batches on SQLite (lockWrites).
	writesOnce sync.Once
	writes     chan struct{}
}

// lockWrites takes this process's SQLite write slot, for a greylist
// write or a batch of verdicts, and returns its release; on PostgreSQL
// it does nothing. SQLite lets one connection write at a time and makes
// the others poll: its busy handler sleeps 1, 2, 5, 10 ms... between
// tries, so a greylist write that met the recorder's transaction waited
// a millisecond or more where the transaction had a fraction of one
// left. Waiting here instead, a write starts the moment the other ends.
func (s *Store) lockWrites(ctx context.Context) (unlock func(), err error) {
	if s.driver != "sqlite" {
		return func() {}, nil
	}
	g := &s.grey
	g.writesOnce.Do(func() { g.writes = make(chan struct{}, 1) })
	select {
	case g.writes <- struct{}{}:
		return func() { <-g.writes }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("store: waiting to write: %w", ctx.Err())
	}
}

// beginWrite takes the write slot (lockWrites) and begins a transaction
// under it; done rolls back what was not committed and releases the
// slot. what names the write in errors.
func (s *Store) beginWrite(ctx context.Context, what string) (tx *sql.Tx, done func(), err error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, nil, err
	}
	tx, err = s.db.BeginTx(ctx, nil)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("store: %s%w", what, err)
	}
	return tx, func() { tx.Rollback(); unlock() }, nil
}

// tripletUpsert is postgrey's rules as the DO UPDATE of an insert into
// greylist_triplets whose row is the request at its time
// (excluded.last_seen): delay, retry window, max age and TouchEvery
// are the statement's parameters named. In DO UPDATE the table's
// columns are the row as it was, so every CASE reads the old state: a
// row unseen for max age starts over; one not passed whose delay began
// more than the retry window ago starts over; one asked for at least
// the delay after its start passes now, once.
//
// A passed triplet seen within the last TouchEvery (an hour) is not
// written again (the WHERE of DO UPDATE), so that a sender's steady
// mail costs a read, not a write: the statement then returns no row,
// which means "passed". last_seen is thus up to an hour behind, against
// a max age of days. seenTripletSQL and seenTripletsSQL share it, so a
// triplet written at once and one written behind are judged alike.
func tripletUpsert(delay, retryWindow, maxAge, touch string) string {
	return strings.NewReplacer("DELAY", delay, "RETRY", retryWindow, "MAXAGE", maxAge, "TOUCH", touch).Replace(`
	ON CONFLICT (client, sender, recipient) DO UPDATE SET
	first_seen = CASE
		WHEN excluded.last_seen - greylist_triplets.last_seen > MAXAGE THEN excluded.last_seen
		WHEN greylist_triplets.passed_at = 0 AND excluded.last_seen - greylist_triplets.first_seen > RETRY THEN excluded.last_seen
		ELSE greylist_triplets.first_seen END,
	passed_at = CASE
		WHEN excluded.last_seen - greylist_triplets.last_seen > MAXAGE THEN 0
		WHEN greylist_triplets.passed_at <> 0 THEN greylist_triplets.passed_at
		WHEN excluded.last_seen - greylist_triplets.first_seen > RETRY THEN 0
		WHEN excluded.last_seen - greylist_triplets.first_seen >= DELAY THEN excluded.last_seen
		ELSE 0 END,
	last_seen = excluded.last_seen
	WHERE greylist_triplets.passed_at = 0 OR excluded.last_seen - greylist_triplets.last_seen >= TOUCH
		OR excluded.last_seen < greylist_triplets.last_seen`)
}

// seenTripletSQL records one request at $4 (tripletUpsert with delay
// $5, retry window $6, max age $7, TouchEvery $8) and returns the row.
var seenTripletSQL = `INSERT INTO greylist_triplets (client, sender, recipient, first_seen, last_seen, passed_at)
	VALUES ($1, $2, $3, $4, $4, 0)` + tripletUpsert("$5", "$6", "$7", "$8") + `
	RETURNING first_seen, passed_at`

// countPassSQL counts a client's pass at most once an hour ($4); a count
// unseen for max_age ($3) starts again at one.
const countPassSQL = `INSERT INTO greylist_clients (client, passes, last_seen) VALUES ($1, 1, $2)
	ON CONFLICT (client) DO UPDATE SET
	passes = CASE
		WHEN $2 - greylist_clients.last_seen > $3 THEN 1
		WHEN $2 - greylist_clients.last_seen >= $4 THEN greylist_clients.passes + 1
		ELSE greylist_clients.passes END,
	last_seen = CASE
		WHEN $2 - greylist_clients.last_seen >= $4 THEN $2
		ELSE greylist_clients.last_seen END`

const clientPassesSQL = `SELECT passes, last_seen FROM greylist_clients WHERE client = $1`

// seenTripletClientSQL is seenTripletSQL that also reads the client's
// passes ($9, unseen for max_age $7: none), in the same statement: a new
// triplet costs one round trip, not ClientPasses's and SeenTriplet's.
var seenTripletClientSQL = strings.TrimSuffix(seenTripletSQL, "RETURNING first_seen, passed_at") +
	`RETURNING first_seen, passed_at,
	COALESCE((SELECT passes FROM greylist_clients WHERE client = $9 AND $4 - last_seen <= $7), 0),
	COALESCE((SELECT last_seen FROM greylist_clients WHERE client = $9 AND $4 - last_seen <= $7), 0)`

// peekTripletClientSQL reads a triplet's row and its client's passes
// ($4; unseen for max_age $6 at $5: none), writing nothing: a read
// transaction that waits for no writer (SQLite's WAL, PostgreSQL's
// MVCC).
const peekTripletClientSQL = `SELECT t.first_seen, t.last_seen, t.passed_at, c.passes, c.last_seen
	FROM (SELECT 1 AS one) AS one
	LEFT JOIN greylist_triplets t ON t.client = $1 AND t.sender = $2 AND t.recipient = $3
	LEFT JOIN greylist_clients c ON c.client = $4 AND $5 - c.last_seen <= $6`

// peekTripletSQL is peekTripletClientSQL for the triplet alone (the
// greylister knows the client is short of auto-allowed): one B-tree
// less to walk.
const peekTripletSQL = `SELECT first_seen, last_seen, passed_at FROM greylist_triplets WHERE client = $1 AND sender = $2 AND recipient = $3`

// seenTripletsSQL is seenTripletSQL for rows triplets at once, each row
// at its own time: delay $1, retry window $2, max age $3, TouchEvery $4
// (tripletUpsert), then four parameters a row. OR FAIL on SQLite spares the statement journal
// (orFail); the conflict on the key is the upsert's all the same.
func (s *Store) seenTripletsSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT ` + s.orFail() + `INTO greylist_triplets (client, sender, recipient, first_seen, last_seen, passed_at) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		p := 5 + 4*i
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, 0)", p, p+1, p+2, p+3, p+3)
	}
	b.WriteString(tripletUpsert("$1", "$2", "$3", "$4"))
	return b.String()
}

// greyStmt returns one of the greylist statements, preparing them the
// first time.
func (s *Store) greyStmt(ctx context.Context, which func(*greyStmts) *sql.Stmt) (*sql.Stmt, error) {
	g := &s.grey
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		var err error
		for _, p := range []struct {
			st **sql.Stmt
			q  string
		}{{&g.seen, seenTripletSQL}, {&g.passes, clientPassesSQL}, {&g.counted, countPassSQL}, {&g.seenClient, seenTripletClientSQL},
			{&g.peek, peekTripletClientSQL}, {&g.peekOnly, peekTripletSQL}} {
			if *p.st, err = s.db.PrepareContext(ctx, p.q); err != nil {
				g.seen, g.passes, g.counted, g.seenClient, g.peek, g.peekOnly = nil, nil, nil, nil, nil, nil
				return nil, fmt.Errorf("store: greylist: %w", err)
			}
		}
	}
	return which(g), nil
}

// SeenTriplet implements greylist.Store.
func (s *Store) SeenTriplet(ctx context.Context, t greylist.Triplet, now time.Time, tm greylist.Timing) (greylist.Seen, error) {
	st, err := s.greyStmt(ctx, func(g *greyStmts) *sql.Stmt { return g.seen })
	if err != nil {
		return greylist.Seen{}, err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return greylist.Seen{}, err
	}
	var first, passed int64
	err = st.QueryRowContext(ctx, t.Client, t.Sender, t.Recipient, now.Unix(), seconds(tm.Delay), seconds(tm.RetryWindow), seconds(tm.MaxAge),
		seconds(greylist.TouchEvery)).Scan(&first, &passed)
	unlock()
	if errors.Is(err, sql.ErrNoRows) {
		// Passed, and seen within TouchEvery: left as it was, not read.
		return greylist.Seen{First: time.Unix(1, 0), Passed: time.Unix(1, 0)}, nil
	}
	if err != nil {
		return greylist.Seen{}, fmt.Errorf("store: greylist %s: %w", t.Client, err)
	}
	return greylist.SeenOf(first, passed), nil
}

// SeenTripletClient is SeenTriplet and ClientPasses (of client, an
// auto-allow key) in one statement, for the greylister's request that
// would make both: the triplet is recorded as SeenTriplet records it,
// and the client's passes are read as ClientPasses reads them (0 and
// the zero time for a client unseen for tm.MaxAge). When the triplet had
// passed and was seen within greylist.TouchEvery nothing is written or
// read: passes is then -1 (unknown; the triplet passes anyway).
func (s *Store) SeenTripletClient(ctx context.Context, t greylist.Triplet, client string, now time.Time, tm greylist.Timing) (seen greylist.Seen, passes int, last time.Time, err error) {
	st, err := s.greyStmt(ctx, func(g *greyStmts) *sql.Stmt { return g.seenClient })
	if err != nil {
		return greylist.Seen{}, 0, time.Time{}, err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return greylist.Seen{}, 0, time.Time{}, err
	}
	var first, passed, n, lastSeen int64
	err = st.QueryRowContext(ctx, t.Client, t.Sender, t.Recipient, now.Unix(), seconds(tm.Delay), seconds(tm.RetryWindow), seconds(tm.MaxAge),
		seconds(greylist.TouchEvery), client).Scan(&first, &passed, &n, &lastSeen)
	unlock()
	if errors.Is(err, sql.ErrNoRows) {
		return greylist.Seen{First: time.Unix(1, 0), Passed: time.Unix(1, 0)}, -1, time.Time{}, nil
	}
	if err != nil {
		return greylist.Seen{}, 0, time.Time{}, fmt.Errorf("store: greylist %s: %w", t.Client, err)
	}
	if n > 0 {
		last = time.Unix(lastSeen, 0)
	}
	return greylist.SeenOf(first, passed), int(n), last, nil
}

// PeekTripletClient implements greylist.BatchStore: t's row, and the
// passes of client (an auto-allow key; "" reads none) as ClientPasses
// reads them, in one statement that writes nothing.
func (s *Store) PeekTripletClient(ctx context.Context, t greylist.Triplet, client string, now time.Time, maxAge time.Duration) (greylist.Row, int, time.Time, error) {
	if s.driver == "sqlite" {
		// Not tied to the request's deadline on SQLite: a read in WAL
		// mode waits for no writer (and busy_timeout bounds what else
		// could hold it), and a context that can end costs database/sql
		// and the driver a goroutine each to watch it, for every read.
		ctx = context.WithoutCancel(ctx)
	}
	if client == "" {
		st, err := s.greyStmt(ctx, func(g *greyStmts) *sql.Stmt { return g.peekOnly })
		if err != nil {
			return greylist.Row{}, 0, time.Time{}, err
		}
		var row greylist.Row
		switch err := st.QueryRowContext(ctx, t.Client, t.Sender, t.Recipient).Scan(&row.First, &row.Last, &row.Passed); {
		case errors.Is(err, sql.ErrNoRows):
			return greylist.Row{}, 0, time.Time{}, nil
		case err != nil:
			return greylist.Row{}, 0, time.Time{}, fmt.Errorf("store: greylist %s: %w", t.Client, err)
		}
		row.Found = true
		return row, 0, time.Time{}, nil
	}
	st, err := s.greyStmt(ctx, func(g *greyStmts) *sql.Stmt { return g.peek })
	if err != nil {
		return greylist.Row{}, 0, time.Time{}, err
	}
	var first, lastSeen, passed, n, clientLast sql.NullInt64
	if err := st.QueryRowContext(ctx, t.Client, t.Sender, t.Recipient, client, now.Unix(), seconds(maxAge)).Scan(&first, &lastSeen, &passed, &n, &clientLast); err != nil {
		return greylist.Row{}, 0, time.Time{}, fmt.Errorf("store: greylist %s: %w", t.Client, err)
	}
	row := greylist.Row{Found: first.Valid, First: first.Int64, Last: lastSeen.Int64, Passed: passed.Int64}
	if !n.Valid {
		return row, 0, time.Time{}, nil
	}
	return row, int(n.Int64), time.Unix(clientLast.Int64, 0), nil
}

// SeenTriplets implements greylist.BatchStore: each request recorded as
// SeenTriplet records it, at its own time, in one transaction (on
// SQLite, where each transaction writes its pages to the WAL, a batch's
// share of a commit is what a triplet saves). A triplet asked twice
// is written once, at its first request: a later one within the few
// milliseconds a batch gathers would move only last_seen (and
// PostgreSQL refuses a row changed twice by one statement).
func (s *Store) SeenTriplets(ctx context.Context, reqs []greylist.TripletAt, tm greylist.Timing) error {
	seen := make(map[greylist.Triplet]bool, len(reqs))
	args := make([]any, 0, 4*len(reqs))
	for _, r := range reqs {
		if seen[r.Triplet] {
			continue
		}
		seen[r.Triplet] = true
		args = append(args, r.Client, r.Sender, r.Recipient, r.At)
	}
	rows := make([][]any, 0, len(args)/4)
	for i := 0; i < len(args); i += 4 {
		rows = append(rows, args[i:i+4:i+4])
	}
	timing := []any{seconds(tm.Delay), seconds(tm.RetryWindow), seconds(tm.MaxAge), seconds(greylist.TouchEvery)}
	tx, done, err := s.beginWrite(ctx, "greylist: ")
	if err != nil {
		return err
	}
	defer done()
	for chunk := range insertChunks(rows) {
		q := func() string { return s.seenTripletsSQL(len(chunk)) }
		st, err := s.insertStmt(ctx, "greylist_triplets", len(chunk), q)
		if err != nil {
			return fmt.Errorf("store: greylist: %w", err)
		}
		a := append([]any(nil), timing...)
		for _, r := range chunk {
			a = append(a, r...)
		}
		if st != nil {
			_, err = tx.StmtContext(ctx, st).ExecContext(ctx, a...)
		} else {
			_, err = tx.ExecContext(ctx, q(), a...)
		}
		if err != nil {
			return fmt.Errorf("store: greylist: %d triplets: %w", len(chunk), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: greylist: %w", err)
	}
	return nil
}

// ClientPasses implements greylist.Store.
func (s *Store) ClientPasses(ctx context.Context, client string, now time.Time, maxAge time.Duration) (int, time.Time, error) {
	st, err := s.greyStmt(ctx, func(g *greyStmts) *sql.Stmt { return g.passes })
	if err != nil {
		return 0, time.Time{}, err
	}
	var n, last int64
	switch err := st.QueryRowContext(ctx, client).Scan(&n, &last); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, time.Time{}, nil
	case err != nil:
		return 0, time.Time{}, fmt.Errorf("store: greylist client %s: %w", client, err)
	}
	if now.Unix()-last > seconds(maxAge) {
		return 0, time.Time{}, nil // expired, not yet purged
	}
	return int(n), time.Unix(last, 0), nil
}

// CountClientPass implements greylist.Store.
func (s *Store) CountClientPass(ctx context.Context, client string, now time.Time, maxAge time.Duration) error {
	st, err := s.greyStmt(ctx, func(g *greyStmts) *sql.Stmt { return g.counted })
	if err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := st.ExecContext(ctx, client, now.Unix(), seconds(maxAge), seconds(time.Hour)); err != nil {
		return fmt.Errorf("store: greylist client %s: %w", client, err)
	}
	return nil
}

// GreylistRetention says how long greylist rows are kept: postgrey's
// max_age after the last mail, and retry_window for triplets that never
// passed. Zero values keep them.
type GreylistRetention struct{ RetryWindow, MaxAge time.Duration }

// PurgeGreylist deletes triplets and clients unseen for MaxAge and
// triplets that never passed unseen for RetryWindow, as postgrey's nightly
// maintenance does; it returns how many rows went.
func (s *Store) PurgeGreylist(ctx context.Context, now time.Time, r GreylistRetention) (int64, error) {
	if r.MaxAge <= 0 {
		return 0, nil
	}
	var total int64
	for _, q := range []struct {
		sql string
		age time.Duration
	}{
		{`DELETE FROM greylist_triplets WHERE last_seen < $1`, r.MaxAge},
		{`DELETE FROM greylist_triplets WHERE passed_at = 0 AND last_seen < $1`, r.RetryWindow},
		{`DELETE FROM greylist_clients WHERE last_seen < $1`, r.MaxAge},
	} {
		if q.age <= 0 {
			continue
		}
		res, err := s.db.ExecContext(ctx, q.sql, now.Unix()-seconds(q.age))
		if err != nil {
			return total, fmt.Errorf("store: purge greylist: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }
