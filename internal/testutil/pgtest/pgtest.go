// Package pgtest gives a test its own database on the machine's
// PostgreSQL 15 cluster, starting the cluster if it is down. Tests reach
// it over 127.0.0.1 with a password set for the postgres role, so they
// need root (to start the cluster and run psql as postgres).
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

const password = "strata-test"

// Ready starts the cluster once and returns the admin DSN, or skips (fails
// under CI) when PostgreSQL is not installed or we are not root.
func Ready(t testing.TB) string {
	t.Helper()
	privtest.RequireRoot(t)
	privtest.RequireTools(t, "pg_ctlcluster", "pg_lsclusters", "runuser")
	out, err := exec.Command("pg_lsclusters", "-h").Output()
	if err != nil || !strings.Contains(string(out), "15") {
		privtest.Missing(t, "PostgreSQL 15 cluster not found (pg_lsclusters: %v)", err)
		return ""
	}
	if !strings.Contains(string(out), "online") {
		if b, err := exec.Command("pg_ctlcluster", "15", "main", "start").CombinedOutput(); err != nil && !strings.Contains(string(b), "already running") {
			t.Fatalf("pg_ctlcluster 15 main start: %v: %s", err, b)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := psql("postgres", "ALTER ROLE postgres PASSWORD '"+password+"'")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL did not come up: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "postgres://postgres:" + password + "@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase gives the test a fresh, empty schema in the shared
// strata_test database (creating a database per test costs seconds),
// dropped at cleanup, and returns a DSN whose search_path points at it.
func NewDatabase(t testing.TB) string {
	t.Helper()
	Ready(t)
	if exec.Command("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-d", "strata_test", "-c", "SELECT 1").Run() != nil {
		if err := psql("postgres", "CREATE DATABASE strata_test"); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	if err := psql("strata_test", "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("STRATA_KEEP_DB") == "" {
			_ = psql("strata_test", "DROP SCHEMA IF EXISTS "+name+" CASCADE")
		}
	})
	return "postgres://postgres:" + password + "@127.0.0.1:5432/strata_test?sslmode=disable&synchronous_commit=off&search_path=" + name
}

func psql(db, stmt string) error {
	cmd := exec.Command("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", stmt)
	cmd.Dir = "/"
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql %q: %v: %s", stmt, err, b)
	}
	return nil
}
