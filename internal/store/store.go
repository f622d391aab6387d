// Package store keeps what mailwall learns across messages and restarts:
// every verdict's results (never the message body), the DMARC evaluation
// rows that aggregate reports are made of, the reports sent and those
// received, and the sending domains seen (for the first-seen rule).
//
// SQLite (pure Go, no cgo) is the embedded default; PostgreSQL serves
// several MX hosts that share one store. Both run the same SQL: the few
// differences (identity columns, blobs) are spelled per dialect in the
// migrations.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Store is an open database.
type Store struct {
	db     *sql.DB
	driver string // "sqlite" or "postgres"
	path   string // the SQLite file; "" for PostgreSQL

	// seen is SeenDomain's statement, prepared once: it runs for every
	// message, and parsing it each time was a tenth of the milter's CPU.
	seen *sql.Stmt
	// created caches Created for createdTTL (it changes only by
	// SetCreated, here or on another node sharing the database).
	created atomic.Pointer[cachedTime]
	// known holds the first_seen of domains already in sender_domains (a
	// row's first_seen never changes), so that mail from a known domain
	// costs no database round trip; the message counts it owes the table
	// are written with the next batch of verdicts.
	known seenCache
	// inserts are the multi-row INSERTs prepared once (SQLite only: pgx
	// keeps its own statement cache), by table and row count.
	inserts insertCache
	// grey are the greylist's statements (greylist.go).
	grey greyStmts
	// models is what the classifier's models keep here besides the
	// database (model.go).
	models modelsHere
}

type insertCache struct {
	mu    sync.Mutex
	stmts map[insertKey]*sql.Stmt
}

type insertKey struct {
	table string
	rows  int
}

type seenCache struct {
	mu    sync.Mutex
	first map[string]int64
	owed  map[string]seenCount
}

type seenCount struct{ messages, last int64 }

// owe adds c to what domain's row is owed; k.mu is held.
func (k *seenCache) owe(domain string, c seenCount) {
	if k.owed == nil {
		k.owed = map[string]seenCount{}
	}
	cur := k.owed[domain]
	k.owed[domain] = seenCount{messages: cur.messages + c.messages, last: max(cur.last, c.last)}
}

// maxKnown bounds seenCache.first; past it the cache starts over.
const maxKnown = 50000

type cachedTime struct{ t, until time.Time }

// walCheckpoint is how many pages SQLite's write-ahead log takes before
// a commit copies them into the database: the copy syncs both files,
// and a page written again since the last copy (the last page of a
// table or index, which every batch of verdicts writes) is copied once.
// 4,000 pages (16 MB of log on disk, the file keeping that size) cost
// 5% less CPU a verdict than 1,000 (BenchmarkB24RecordVerdicts
// sqlite/bench/64); a copy takes four times as long (some 30 ms against
// 8), once every few thousand messages, and a greylist write waits for
// it as it waits for a batch of verdicts.
const walCheckpoint = 4000

const createdTTL = time.Minute

// Drivers are the supported values of store.driver.
var Drivers = []string{"sqlite", "postgres"}

// Open opens (creating if need be) the database and brings its schema up
// to date. driver "sqlite" takes a file path as dsn (created mode 0600 in
// a directory made 0750); "postgres" takes a libpq URL or key=value DSN.
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("store: no database given (store.dsn)")
	}
	var (
		s   = &Store{driver: driver}
		err error
	)
	switch driver {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(dsn), 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		// The file says who writes to us and how their mail fared: not
		// for other users.
		f, err := os.OpenFile(dsn, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		f.Close()
		s.path = dsn
		// The write-ahead log is copied into the database (and both
		// synced) every walCheckpoint pages, not SQLite's 1,000.
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"+
			"&_pragma=wal_autocheckpoint("+strconv.Itoa(walCheckpoint)+")&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", dsn, err)
		}
		// Without a bound, a burst of messages (each asking whether its
		// From domain is new) opens a connection apiece, each with its
		// own page cache: 1,000 sessions took 200 MB. WAL lets these
		// readers run beside the one writer.
		s.db.SetMaxOpenConns(8)
		s.db.SetMaxIdleConns(8)
	case "postgres", "postgresql":
		s.driver = "postgres"
		s.db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: postgres: %w", err)
		}
		s.db.SetMaxOpenConns(8)
		s.db.SetConnMaxIdleTime(5 * time.Minute)
	default:
		return nil, fmt.Errorf("store: driver %q is not supported (%s)", driver, strings.Join(Drivers, ", "))
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: %s: %w", s.Name(), err)
	}
	s.seen, err = s.db.PrepareContext(ctx, `INSERT INTO sender_domains (domain, first_seen, last_seen, messages) VALUES ($1, $2, $2, 1)
		ON CONFLICT (domain) DO UPDATE SET last_seen = excluded.last_seen, messages = sender_domains.messages + 1
		RETURNING first_seen`)
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: %s: %w", s.Name(), err)
	}
	return s, nil
}

// Name says which database this is, for logs: the SQLite path or
// "postgres".
func (s *Store) Name() string {
	if s.path != "" {
		return s.path
	}
	return s.driver
}

// Driver is "sqlite" or "postgres".
func (s *Store) Driver() string { return s.driver }

// Close closes the database.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	flushErr := s.FlushSeen(ctx)
	return errors.Join(flushErr, s.db.Close())
}

// Ping checks that the database answers, for /healthz.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// dialect rewrites the migration placeholders for the driver.
func (s *Store) dialect(q string) string {
	id, blob, withoutRowid := "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", " WITHOUT ROWID"
	if s.driver == "postgres" {
		id, blob, withoutRowid = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA", ""
	}
	return strings.NewReplacer("{{id}}", id, "{{blob}}", blob, "{{without_rowid}}", withoutRowid).Replace(q)
}

// migrationLock serializes schema changes between MX hosts starting at
// once on one PostgreSQL database (an arbitrary constant key).
const migrationLock = 0x6d77_0001

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.driver == "postgres" {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`); err != nil {
			return err
		}
	} else if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`); err != nil {
		return err
	}
	done := 0
	var v string
	switch err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema'`).Scan(&v); {
	case err == nil:
		// The first schema counted the meta table itself as migration 1.
		if done, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("schema version %q: %w", v, err)
		}
		done--
	case errors.Is(err, sql.ErrNoRows):
	default:
		return err
	}
	if done > len(migrations) {
		return fmt.Errorf("database schema %d is newer than this mailwall's %d", done+1, len(migrations)+1)
	}
	for i := done; i < len(migrations); i++ {
		for _, stmt := range strings.Split(migrations[i], ";\n") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, s.dialect(stmt)); err != nil {
				return fmt.Errorf("migration %d: %w", i+2, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('created', $1) ON CONFLICT (key) DO NOTHING`, strconv.FormatInt(time.Now().Unix(), 10)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(len(migrations)+1)); err != nil {
		return err
	}
	return tx.Commit()
}

// Created is when the database was made: how long history goes back.
func (s *Store) Created(ctx context.Context) (time.Time, error) {
	if t, ok := s.cachedCreated(); ok {
		return t, nil
	}
	var v string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'created'`).Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("store: %w", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: created %q: %w", v, err)
	}
	t := time.Unix(n, 0)
	s.created.Store(&cachedTime{t: t, until: time.Now().Add(createdTTL)})
	return t, nil
}

// cachedCreated is Created while its cached value holds.
func (s *Store) cachedCreated() (time.Time, bool) {
	if c := s.created.Load(); c != nil && time.Now().Before(c.until) {
		return c.t, true
	}
	return time.Time{}, false
}

// knownFirst is a domain's first-seen date when memory has it, and then
// counts the message (written with the next batch of verdicts).
func (s *Store) knownFirst(domain string, now time.Time) (int64, bool) {
	k := &s.known
	k.mu.Lock()
	defer k.mu.Unlock()
	f, ok := k.first[domain]
	if ok {
		k.owe(domain, seenCount{messages: 1, last: now.Unix()})
	}
	return f, ok
}

// SeenDomainCached is SeenDomain answered from memory, with no wait:
// ok is false when the domain or the history's start must be read from
// the database, and then nothing is recorded (phish.CachedHistory).
func (s *Store) SeenDomainCached(domain string, now time.Time) (first, since time.Time, ok bool) {
	since, ok = s.cachedCreated()
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	f, ok := s.knownFirst(domain, now)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	return time.Unix(f, 0), since, true
}

// SeenDomain records a message from domain at now and returns when the
// domain was first seen and when the history began (phish.History).
func (s *Store) SeenDomain(ctx context.Context, domain string, now time.Time) (first, since time.Time, err error) {
	f, ok := s.knownFirst(domain, now)
	if !ok {
		if err = s.seen.QueryRowContext(ctx, domain, now.Unix()).Scan(&f); err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("store: %s: %w", domain, err)
		}
		k := &s.known
		k.mu.Lock()
		if k.first == nil || len(k.first) >= maxKnown {
			k.first = map[string]int64{}
		}
		k.first[domain] = f
		k.mu.Unlock()
	}
	since, err = s.Created(ctx)
	return time.Unix(f, 0), since, err
}

// flushSeen writes the message counts SeenDomain owes sender_domains, in
// tx; if tx does not commit they are owed again (restoreSeen). One
// UPDATE a chunk of domains, in order: a batch of mail from many
// domains was a statement (on PostgreSQL a round trip) a domain, a
// quarter of the batch's cost; in order, two hosts flushing at once
// take the rows' locks in one order.
func (s *Store) flushSeen(ctx context.Context, tx *sql.Tx) (owed map[string]seenCount, err error) {
	k := &s.known
	k.mu.Lock()
	owed, k.owed = k.owed, nil
	k.mu.Unlock()
	if len(owed) == 0 {
		return nil, nil
	}
	domains := slices.Sorted(maps.Keys(owed))
	for chunk := range insertChunks(domains) {
		q := func() string { return s.seenCountsQuery(len(chunk)) }
		args := make([]any, 0, 3*len(chunk))
		for _, d := range chunk {
			args = append(args, d, owed[d].messages, owed[d].last)
		}
		st, err := s.insertStmt(ctx, "sender_domains", len(chunk), q)
		if st != nil {
			_, err = tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		} else if err == nil {
			_, err = tx.ExecContext(ctx, q(), args...)
		}
		if err != nil {
			return owed, fmt.Errorf("store: sender domains: %w", err)
		}
	}
	return owed, nil
}

// seenCountsQuery adds the messages and last sightings of n domains to
// their rows: VALUES' columns are column1, column2, ... on both
// databases.
func (s *Store) seenCountsQuery(n int) string {
	var b strings.Builder
	b.WriteString(`UPDATE sender_domains SET messages = messages + v.column2,
		last_seen = CASE WHEN last_seen < v.column3 THEN v.column3 ELSE last_seen END FROM (VALUES `)
	p := 0
	param := func() string {
		p++
		if s.driver == "postgres" {
			return "$" + strconv.Itoa(p)
		}
		return "?"
	}
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + param() + ", CAST(" + param() + " AS BIGINT), CAST(" + param() + " AS BIGINT))")
	}
	b.WriteString(`) AS v WHERE sender_domains.domain = v.column1`)
	return b.String()
}

// restoreSeen owes again counts whose transaction failed.
func (s *Store) restoreSeen(owed map[string]seenCount) {
	k := &s.known
	k.mu.Lock()
	defer k.mu.Unlock()
	for d, c := range owed {
		k.owe(d, c)
	}
}

// FlushSeen writes the owed message counts now; InsertVerdicts does it
// with every batch, Close at the end.
func (s *Store) FlushSeen(ctx context.Context) error {
	s.known.mu.Lock()
	none := len(s.known.owed) == 0
	s.known.mu.Unlock()
	if none {
		return nil // no transaction at every Close of a store that owes nothing
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	return s.commitWithSeen(ctx, tx)
}

// commitWithSeen writes the owed message counts in tx and commits it; if
// either fails, the counts are owed again.
func (s *Store) commitWithSeen(ctx context.Context, tx *sql.Tx) error {
	owed, err := s.flushSeen(ctx, tx)
	if err == nil {
		if err = tx.Commit(); err != nil {
			err = fmt.Errorf("store: %w", err)
		}
	}
	if err != nil {
		s.restoreSeen(owed)
		return err
	}
	return nil
}

// SetCreated moves the start of history, for imports and tests that
// replay older mail.
func (s *Store) SetCreated(ctx context.Context, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE meta SET value = $1 WHERE key = 'created'`, strconv.FormatInt(t.Unix(), 10))
	s.created.Store(nil)
	return err
}

// Setting reads a value kept in the store's meta table by SetSetting or
// InitSetting; ok is false when there is none.
func (s *Store) Setting(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = $1`, "setting:"+key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: setting %s: %w", key, err)
	}
	return value, true, nil
}

// SetSetting keeps a value, replacing any before it.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, "setting:"+key, value)
	if err != nil {
		return fmt.Errorf("store: setting %s: %w", key, err)
	}
	return nil
}

// InitSetting keeps value unless the key has one already, and returns
// the value kept: of several nodes starting together, one wins.
func (s *Store) InitSetting(ctx context.Context, key, value string) (kept string, created bool, err error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, "setting:"+key, value)
	if err != nil {
		return "", false, fmt.Errorf("store: setting %s: %w", key, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return value, true, nil
	}
	kept, _, err = s.Setting(ctx, key)
	return kept, false, err
}
