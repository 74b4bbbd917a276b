package bench

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/pgtest"
)

// TestSmall runs the benchmark on a small fleet so the code path stays
// working; STRATA_FLEET_BENCH=N runs it at N instances and logs figures.
func TestSmall(t *testing.T) {
	n, phase := 2000, time.Second
	if v := os.Getenv("STRATA_FLEET_BENCH"); v != "" {
		n, _ = strconv.Atoi(v)
		phase = 10 * time.Second
	}
	cfg := Config{WorkDir: t.TempDir(), Instances: n, Concurrency: 16, Phase: phase, Log: t.Logf}
	if os.Getenv("STRATA_FLEET_BENCH_PG") != "" {
		cfg.Postgres = pgtest.NewDatabase(t)
	}
	rows, _, _, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 6 {
		t.Fatalf("rows: %+v", rows)
	}
	for _, r := range rows {
		t.Logf("%s: %v %s", r.Case, r.Strata, r.Note)
	}
}
