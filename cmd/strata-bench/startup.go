package main

import (
	"context"

	"github.com/stratalinux/strata/internal/bench"
	"github.com/stratalinux/strata/internal/bench/startup"
)

// startupBench times strata's start-up against systemd-sysext and a Go
// hello-world.
func startupBench(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]bench.Row, string, string, error) {
	reps := 101
	if quick {
		reps = 11
	}
	rows, err := startup.Run(ctx, startup.Config{StrataBin: strataBin, PeerBin: "/usr/bin/systemd-sysext", WorkDir: workDir, Reps: reps, Log: logf})
	return rows, startup.Title, startup.Notes, err
}
