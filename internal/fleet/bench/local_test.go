package bench

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// TestLocalPostgres starts (or finds) the local cluster the way
// strata-bench does and connects with the DSN it returns.
func TestLocalPostgres(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireTools(t, "pg_ctlcluster", "runuser")
	dsn, err := LocalPostgres(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatalf("%s: %v", dsn, err)
	}
}
