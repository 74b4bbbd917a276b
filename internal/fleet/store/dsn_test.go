package store

import (
	"context"
	"strings"
	"testing"
)

func TestRedactDSN(t *testing.T) {
	const pw = "s3cr3t!pw"
	for _, dsn := range []string{
		"postgres://strata:" + pw + "@db:5432/fleet?sslmode=disable",
		"postgresql://strata:s3cr3t%21pw@db/fleet",
		"postgres://strata@db/fleet?password=" + pw + "&sslmode=disable",
		"host=db user=strata password=" + pw + " dbname=fleet",
		"host=db password='" + pw + " with space' dbname=fleet",
		"postgres://strata:" + pw + "@db:notaport/%zz",
	} {
		got := RedactDSN(dsn)
		if strings.Contains(got, "s3cr3t") || !strings.Contains(got, "xxxxx") || !strings.Contains(got, "db") {
			t.Errorf("RedactDSN(%q) = %q", dsn, got)
		}
	}
	if got := RedactDSN("/var/lib/fleet/fleet.db"); got != "/var/lib/fleet/fleet.db" {
		t.Errorf("a path changed: %q", got)
	}
	for dsn, want := range map[string]bool{"postgres://x": true, "host=/run/postgresql dbname=f": true, "/var/lib/f/fleet.db": false, "fleet.db": false} {
		if IsPostgres(dsn) != want {
			t.Errorf("IsPostgres(%q) != %v", dsn, want)
		}
	}
}

// A connection error names the database but not its password.
func TestOpenErrorHidesPassword(t *testing.T) {
	const pw = "hunter2secret"
	for _, dsn := range []string{
		"postgres://strata:" + pw + "@127.0.0.1:1/fleet?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=strata password=" + pw + " dbname=fleet sslmode=disable connect_timeout=2",
	} {
		_, err := Open(context.Background(), dsn)
		if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("Open(%q): %v", dsn, err)
		}
	}
}
