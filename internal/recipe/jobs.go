package recipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/stratalinux/strata/internal/bake"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/release"
	"github.com/stratalinux/strata/recipes"
)

// Load reads a recipe file (bounded by MaxSize), else a recipe shipped with Strata by name.
func Load(arg string) (*Recipe, error) {
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > MaxSize {
			return nil, fmt.Errorf("%s: recipe larger than %d bytes", arg, MaxSize)
		}
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		return Parse(arg, b)
	}
	if b, ok := recipes.Get(arg); ok {
		return Parse("recipes/"+arg+".yaml", b)
	}
	return nil, fmt.Errorf("%s: not a directory, a recipe file or a shipped recipe (strata bake --list shows them)", arg)
}

// LoadAll loads every argument in order; a recipe named twice is refused at its second argument.
func LoadAll(args []string) ([]*Recipe, error) {
	var rs []*Recipe
	seen := map[string]bool{}
	for _, a := range args {
		r, err := Load(a)
		if err != nil {
			return nil, err
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("%s: recipe %s given twice", a, r.Name)
		}
		seen[r.Name] = true
		rs = append(rs, r)
	}
	return rs, nil
}

// CheckName refuses an image name given for recipes: a recipe names its image itself, so a name
// is only accepted when it is the one recipe's own.
func CheckName(rs []*Recipe, name string) error {
	if name != "" && (len(rs) > 1 || name != rs[0].Name) {
		return fmt.Errorf("--name %s: a recipe names its image itself (%s)", name, rs[0].Name)
	}
	return nil
}

// ArchesFor is the architectures to bake r for: "all" is every one the recipe has, anything else
// is normalised (empty: the host's) and must be one of them.
func ArchesFor(r *Recipe, flag string) ([]string, error) {
	if flag == "all" {
		return r.Arches(), nil
	}
	a, err := release.NormalizeArch(flag)
	if err != nil {
		return nil, err
	}
	if _, ok := r.Arch[a]; !ok {
		return nil, fmt.Errorf("%s: no build for %s (the recipe has %s; use --arch)", r.Name, a, strings.Join(r.Arches(), ", "))
	}
	return []string{a}, nil
}

// Job is one bake: a recipe at a resolved version for one architecture.
type Job struct {
	Recipe   *Recipe
	Resolved Resolved
	Arch     string
}

// Bake downloads and populates the job's tree in a work directory under base.OutDir (removed
// afterwards) and bakes it with base's options.
func (j Job) Bake(ctx context.Context, c *download.Client, base bake.Request, po PopulateOptions) (bake.Result, error) {
	r, res, arch := j.Recipe, j.Resolved, j.Arch
	dls, err := r.Downloads(ctx, c, res, arch)
	if err != nil {
		return bake.Result{}, err
	}
	work, err := os.MkdirTemp(base.OutDir, ".strata-work-")
	if err != nil {
		return bake.Result{}, err
	}
	defer os.RemoveAll(work)
	root, err := r.Populate(ctx, c, dls, work, po)
	if err != nil {
		return bake.Result{}, err
	}
	result, err := bake.Bake(ctx, r.Request(base, res, arch, root))
	if err != nil {
		return bake.Result{}, fmt.Errorf("%s %s %s: %w", r.Name, res.Version, arch, err)
	}
	return result, nil
}

// RunJobs runs fn for every job, at most n at a time (at least one), each job independent. The first
// failure cancels the jobs not yet done; the error returned is the first real failure in job order,
// not the cancellations it caused. The results are in job order (zero where a job failed) and come
// back with the error too, so what did finish can still be reported.
func RunJobs[T any](ctx context.Context, jobs []Job, n int, fn func(context.Context, Job) (T, error)) ([]T, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	outs := make([]T, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			out, err := fn(ctx, j)
			if err != nil {
				errs[i] = err
				cancel()
				return
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return outs, err
		}
	}
	return outs, errors.Join(errs...)
}
