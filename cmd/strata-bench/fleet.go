package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/stratalinux/strata/internal/bench"
	fleetbench "github.com/stratalinux/strata/internal/fleet/bench"
)

// fleetBench measures the fleet server at 100,000 instances on SQLite and
// on the local PostgreSQL (skipped with a note when it cannot be started).
func fleetBench(ctx context.Context, _, workDir string, quick bool, logf func(string, ...any)) ([]bench.Row, string, string, error) {
	cfg := fleetbench.Config{WorkDir: workDir, Instances: 100_000, Concurrency: 4 * runtime.NumCPU() * 4, Phase: 15 * time.Second, Log: logf}
	if quick {
		cfg.Instances, cfg.Phase = 5000, 2*time.Second
	}
	var dsn string
	var pgErr error
	if msg := os.Getenv(postgresErrEnv); msg != "" {
		pgErr = errors.New(msg)
	} else {
		dsn, pgErr = fleetbench.LocalPostgres(ctx)
	}
	if pgErr != nil {
		logf("fleet bench: PostgreSQL unavailable, measuring SQLite only: %v", pgErr)
	}
	cfg.Postgres = dsn
	rows, title, notes, err := fleetbench.Run(ctx, cfg)
	if err == nil && pgErr != nil {
		notes += fmt.Sprintf("\nPostgreSQL was not measured: %v", pgErr)
	}
	return rows, title, notes, err
}
