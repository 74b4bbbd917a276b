package store

import (
	"strings"
	"testing"
)

func TestLocation(t *testing.T) {
	for _, c := range []struct{ data, database, want string }{
		{"/var/lib/strata-fleet", "", "/var/lib/strata-fleet/fleet.db"},
		{"", "postgres://u:p@db/fleet", "postgres://u:p@db/fleet"},
		{"", "/tmp/x.db", "/tmp/x.db"},
	} {
		if got, err := Location(c.data, c.database); err != nil || got != c.want {
			t.Errorf("Location(%q, %q) = %q, %v; want %q", c.data, c.database, got, err, c.want)
		}
	}
	for _, c := range []struct{ data, database, want string }{
		{"/d", "postgres://db", "not both"},
		{"postgres://u:secret@db/fleet", "", "--data takes a directory"},
		{"host=db password=secret", "", "--data takes a directory"},
		{"", "", "pass --data DIR"},
	} {
		_, err := Location(c.data, c.database)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("Location(%q, %q): %v; want an error with %q and no password", c.data, c.database, err, c.want)
		}
	}
}
