package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"text/tabwriter"

	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/bytesize"
	"github.com/stratalinux/strata/internal/recipe"
	"github.com/stratalinux/strata/recipes"
)

func listRecipes(env *Env, jsonOut bool) error {
	type row struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Arches      []string `json:"architectures"`
		Homepage    string   `json:"homepage,omitempty"`
	}
	var rows []row
	for _, n := range recipes.Names() {
		b, _ := recipes.Get(n)
		r, err := recipe.Parse("recipes/"+n+".yaml", b)
		if err != nil {
			return err
		}
		rows = append(rows, row{r.Name, r.Description, r.Arches(), r.Homepage})
	}
	if jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tARCHITECTURES\tDESCRIPTION")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, strings.Join(r.Arches, ","), r.Description)
	}
	return tw.Flush()
}

// bakeRecipes bakes one or more recipes; every (recipe, architecture)
// pair is an independent job, run --jobs at a time.
func bakeRecipes(ctx context.Context, env *Env, args []string, f bakeFlags) error {
	rs, err := recipe.LoadAll(args)
	if err != nil {
		return err
	}
	if err := recipe.CheckName(rs, f.name); err != nil {
		return err
	}
	client, err := recipe.NewClient(f.baseURL, os.Getenv)
	if err != nil {
		return fmt.Errorf("--base-url %q: %w", f.baseURL, err)
	}
	// Checked before anything is downloaded; each recipe fills in the rest.
	base, err := bakeOptions(env, f)
	if err != nil {
		return err
	}
	progress := progressWriter(env, f.json)
	if progress != nil {
		client.Progress = func(u string) func(done, total int64) { return newProgressBar(progress, path.Base(u)) }
	}
	var jobs []recipe.Job
	for _, r := range rs {
		res, err := r.Resolve(ctx, client, f.version)
		if err != nil {
			return err
		}
		arches, err := recipe.ArchesFor(r, f.arch)
		if err != nil {
			return err
		}
		for _, a := range arches {
			jobs = append(jobs, recipe.Job{Recipe: r, Resolved: res, Arch: a})
		}
	}
	if err := os.MkdirAll(f.output, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	// The size flags are checked once, before any download.
	po := recipe.PopulateOptions{AllowUnverified: f.allowUnverified, Unpack: archive.DefaultLimits}
	po.Unpack.MaxRatio = f.maxUnpackRatio
	if po.MaxDownload, err = bytesize.Parse(f.maxDownload, bytesize.Strata); err != nil {
		return fmt.Errorf("--max-download: %w", err)
	}
	if po.Unpack.MaxBytes, err = bytesize.Parse(f.maxUnpack, bytesize.Strata); err != nil {
		return fmt.Errorf("--max-unpack: %w", err)
	}
	outs, err := recipe.RunJobs(ctx, jobs, f.jobs, func(ctx context.Context, j recipe.Job) (bakeOutput, error) {
		result, err := j.Bake(ctx, client, base, po)
		if err != nil {
			return bakeOutput{}, err
		}
		return bakeOutput{Result: result, Name: j.Recipe.Name, Version: j.Resolved.Version, Arch: j.Arch, Findings: nonNil(result.Findings)}, nil
	})
	for _, o := range outs {
		logFindings(env, o.Findings, f.json)
	}
	if err != nil {
		return err
	}
	return printBakeResults(env, f.json, outs)
}
