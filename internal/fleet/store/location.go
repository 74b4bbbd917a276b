package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Location picks the database a fleet server or admin command opens from
// its two settings, --data (a data directory, whose fleet.db is SQLite)
// and --database (a PostgreSQL URL or any DSN): exactly one of them.
func Location(data, database string) (string, error) {
	switch {
	case database != "" && data != "":
		return "", errors.New("pass either --data or --database, not both")
	case database != "":
		return database, nil
	case strings.Contains(data, "://") || IsPostgres(data):
		// Not a directory: joined with fleet.db it would become an SQLite
		// database in a folder named after the URL.
		return "", fmt.Errorf("--data %s: --data takes a directory for SQLite; pass a PostgreSQL URL with --database", RedactDSN(data))
	case data != "":
		return filepath.Join(data, "fleet.db"), nil
	}
	return "", errors.New("pass --data DIR (the server's data directory) or --database postgres://…")
}
