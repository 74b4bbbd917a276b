package main

import (
	"context"

	"github.com/stratalinux/strata/internal/bench"
)

// updateBench measures publish, check-new and download + install.
func updateBench(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]bench.Row, string, string, error) {
	rows, err := bench.Update(ctx, strataBin, workDir, quick, logf)
	return rows, bench.UpdateTitle, bench.UpdateNotes, err
}
