// Package store keeps what mailwall learns across messages and restarts:
// the sending domains it has seen (for the first-seen rule). SQLite is
// the default; the schema is plain SQL so that PostgreSQL can share it
// between several MX hosts.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Store is an open database.
type Store struct {
	db     *sql.DB
	driver string
}

// migrations are applied in order; the meta table records how many ran.
var migrations = []string{
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
	`CREATE TABLE sender_domains (
		domain     TEXT PRIMARY KEY,
		first_seen BIGINT NOT NULL,
		last_seen  BIGINT NOT NULL,
		messages   BIGINT NOT NULL
	)`,
}

// Open opens (creating if need be) the database. driver is "sqlite"
// (dsn: a file path, created with mode 0600 in a directory made 0750).
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	switch driver {
	case "sqlite":
	default:
		return nil, fmt.Errorf("store: driver %q is not supported (sqlite)", driver)
	}
	if dsn == "" {
		return nil, errors.New("store: no database path")
	}
	if err := os.MkdirAll(filepath.Dir(dsn), 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The file holds which domains write to us: not for other users.
	f, err := os.OpenFile(dsn, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", dsn, err)
	}
	s := &Store{db: db, driver: driver}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", dsn, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	done := 0
	var v string
	switch err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema'`).Scan(&v); {
	case err == nil:
		if done, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("schema version %q: %w", v, err)
		}
	default:
		// No meta table yet: a new database.
	}
	if done > len(migrations) {
		return fmt.Errorf("database schema %d is newer than this mailwall's %d", done, len(migrations))
	}
	for i := done; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if done == 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('created', $1)`, strconv.FormatInt(time.Now().Unix(), 10)); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}

// Created is when the database was made: how long history goes back.
func (s *Store) Created(ctx context.Context) (time.Time, error) {
	var v string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'created'`).Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("store: %w", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: created %q: %w", v, err)
	}
	return time.Unix(n, 0), nil
}

// SeenDomain records a message from domain at now and returns when the
// domain was first seen and when the history began (phish.History).
func (s *Store) SeenDomain(ctx context.Context, domain string, now time.Time) (first, since time.Time, err error) {
	var f int64
	err = s.db.QueryRowContext(ctx, `INSERT INTO sender_domains (domain, first_seen, last_seen, messages) VALUES ($1, $2, $2, 1)
		ON CONFLICT (domain) DO UPDATE SET last_seen = excluded.last_seen, messages = sender_domains.messages + 1
		RETURNING first_seen`, domain, now.Unix()).Scan(&f)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("store: %s: %w", domain, err)
	}
	since, err = s.Created(ctx)
	return time.Unix(f, 0), since, err
}

// SetCreated moves the start of history, for imports and tests that
// replay older mail.
func (s *Store) SetCreated(ctx context.Context, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE meta SET value = $1 WHERE key = 'created'`, strconv.FormatInt(t.Unix(), 10))
	return err
}
