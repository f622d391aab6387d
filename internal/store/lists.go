package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"mailwall/internal/lists"
)

// The store is the lists' Source: several MX hosts on one PostgreSQL
// database share one pair of lists.
var _ lists.Source = (*Store)(nil)

// bumpListsVersionSQL counts changes to the lists in meta, so that each
// host's cache rereads them only when they changed.
const bumpListsVersionSQL = `INSERT INTO meta (key, value) VALUES ('lists_version', '1')
	ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)`

// AddListEntry adds e (normalized first) to its list, or updates the
// note and expiry of the same entry; it returns the entry as stored.
func (s *Store) AddListEntry(ctx context.Context, e lists.Entry) (lists.Entry, error) {
	if _, err := lists.ParseList(string(e.List)); err != nil {
		return e, fmt.Errorf("store: %w", err)
	}
	v, err := lists.Normalize(e.Kind, e.Value)
	if err != nil {
		return e, fmt.Errorf("store: %w", err)
	}
	e.Value = v
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	var exp int64
	if !e.Expires.IsZero() {
		exp = e.Expires.Unix()
	}
	err = s.listTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO list_entries (list, kind, value, note, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (list, kind, value) DO UPDATE SET note = excluded.note, expires_at = excluded.expires_at
			RETURNING id`, string(e.List), string(e.Kind), e.Value, e.Note, e.Created.Unix(), exp).Scan(&e.ID)
	})
	if err != nil {
		return e, fmt.Errorf("store: add %s %s %s: %w", e.List, e.Kind, e.Value, err)
	}
	return e, nil
}

// RemoveListEntry removes the entry of list, kind and value (normalized
// first); it reports whether there was one.
func (s *Store) RemoveListEntry(ctx context.Context, list lists.List, kind lists.Kind, value string) (bool, error) {
	v, err := lists.Normalize(kind, value)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	var n int64
	err = s.listTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM list_entries WHERE list = $1 AND kind = $2 AND value = $3`, string(list), string(kind), v)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: remove %s %s %s: %w", list, kind, v, err)
	}
	return n > 0, nil
}

// RemoveListEntryByID removes one entry by its id (for the dashboard).
func (s *Store) RemoveListEntryByID(ctx context.Context, id int64) (bool, error) {
	var n int64
	err := s.listTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM list_entries WHERE id = $1`, id)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: remove list entry %d: %w", id, err)
	}
	return n > 0, nil
}

// listTx runs f and bumps the lists' version in one transaction.
func (s *Store) listTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); errors.Is(err, errNothingChanged) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, bumpListsVersionSQL); err != nil {
		return err
	}
	return tx.Commit()
}

// ListEntries implements lists.Source: every entry of both lists,
// expired ones included (they are shown, and matching skips them), by
// list, kind and value.
func (s *Store) ListEntries(ctx context.Context) ([]lists.Entry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, list, kind, value, note, created_at, expires_at FROM list_entries ORDER BY list, kind, value`)
	if err != nil {
		return nil, fmt.Errorf("store: lists: %w", err)
	}
	defer rows.Close()
	var out []lists.Entry
	for rows.Next() {
		var e lists.Entry
		var list, kind string
		var created, expires int64
		if err := rows.Scan(&e.ID, &list, &kind, &e.Value, &e.Note, &created, &expires); err != nil {
			return nil, fmt.Errorf("store: lists: %w", err)
		}
		e.List, e.Kind, e.Created = lists.List(list), lists.Kind(kind), time.Unix(created, 0)
		if expires != 0 {
			e.Expires = time.Unix(expires, 0)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: lists: %w", err)
	}
	return out, nil
}

// ListsVersion implements lists.Source: a counter every change bumps.
func (s *Store) ListsVersion(ctx context.Context) (int64, error) {
	var v string
	switch err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'lists_version'`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("store: lists version: %w", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("store: lists version %q: %w", v, err)
	}
	return n, nil
}

// PurgeListEntries deletes entries expired before before; the lists'
// version changes only when one went, so that a purge finding nothing
// costs the caches no reread.
func (s *Store) PurgeListEntries(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.listTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM list_entries WHERE expires_at <> 0 AND expires_at <= $1`, before.Unix())
		if err != nil {
			return err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return errNothingChanged
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge lists: %w", err)
	}
	return n, nil
}

// errNothingChanged ends a listTx without bumping the version.
var errNothingChanged = errors.New("nothing changed")
