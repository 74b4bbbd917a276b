package bake

import (
	"context"
	"fmt"
	"os"

	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/lint"
)

// Bake bakes the populated tree req.Dir: it reads the facts NewPlan needs
// from the tree, decides the plan and carries it out with lint running
// alongside the write (unless req.NoLint); a lint error cancels the write
// and fails the bake. The lint findings are in the result even when the
// bake fails.
func Bake(ctx context.Context, req Request) (Result, error) {
	tree, err := ScanTree(req.Dir, req.Class, req.Name)
	if err != nil {
		return Result{}, fmt.Errorf("bake %s: %w", req.Dir, err)
	}
	plan, err := NewPlan(req, tree)
	if err != nil {
		return Result{}, fmt.Errorf("bake %s: %w", req.Dir, err)
	}
	var findings lint.Findings
	eo := ExecOptions{Progress: req.Progress}
	if !req.NoLint {
		eo.Check = func(ctx context.Context) error {
			fs, err := lint.Run(ctx, os.DirFS(req.Dir).(fsread.FS), lint.Options{
				Class: req.Class, Name: req.Name, Generated: plan.Generate, Release: plan.Release.Map(), MaxSize: req.MaxSize})
			if err != nil {
				return fmt.Errorf("lint %s: %w", req.Dir, err)
			}
			findings = fs
			return fs.Err(req.Dir)
		}
	}
	// Execute returns only after the check has finished, so findings is
	// complete here.
	res, err := Execute(ctx, plan, eo)
	res.Findings = findings
	return res, err
}
