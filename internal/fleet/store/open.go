package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Open opens (creating and migrating as needed) the store named by dsn: a
// postgres:// or postgresql:// URL or a keyword/value connection string,
// or a path to an SQLite file.
func Open(ctx context.Context, dsn string) (Store, error) {
	if IsPostgres(dsn) {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

// OpenSQLite opens an SQLite database in WAL mode: one writer connection,
// several readers.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_time_format=sqlite"
	write, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	read, err := sql.Open("sqlite", base)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	s := &sqlStore{d: sqliteDialect, read: read, write: write}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w (database %s)", err, path)
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL; several servers may share one
// database.
func OpenPostgres(ctx context.Context, dsn string) (Store, error) {
	// Errors name the database without its password: they reach logs
	// and terminals.
	fail := func(what string, err error) error {
		return &redactedError{msg: redactIn(fmt.Sprintf("store: %s %s: %v", what, RedactDSN(dsn), err), dsn), err: err}
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fail("opening PostgreSQL", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fail("connecting to PostgreSQL", err)
	}
	s := &sqlStore{d: postgresDialect, read: db, write: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, &redactedError{msg: redactIn(err.Error(), dsn), err: err}
	}
	return s, nil
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func jsonMarshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
