package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/bake"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/recipe"
	"github.com/stratalinux/strata/internal/release"
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

// loadRecipe reads a recipe file, or a shipped recipe by name.
func loadRecipe(arg string) (*recipe.Recipe, error) {
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > recipe.MaxSize {
			return nil, fmt.Errorf("%s: recipe larger than %d bytes", arg, recipe.MaxSize)
		}
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		return recipe.Parse(arg, b)
	}
	if b, ok := recipes.Get(arg); ok {
		return recipe.Parse("recipes/"+arg+".yaml", b)
	}
	return nil, fmt.Errorf("%s: not a directory, a recipe file or a shipped recipe (strata bake --list shows them)", arg)
}

// mirrorRewrite maps https://HOST/PATH to BASE/HOST/PATH.
func mirrorRewrite(base string) (func(string) string, error) {
	if base == "" {
		return nil, nil
	}
	b, err := url.Parse(base)
	if err != nil || b.Scheme == "" || b.Host == "" {
		return nil, fmt.Errorf("--base-url %q: want scheme://host[/prefix]", base)
	}
	prefix := strings.TrimSuffix(base, "/")
	return func(s string) string {
		u, err := url.Parse(s)
		if err != nil {
			return s
		}
		out := prefix + "/" + u.Host + u.EscapedPath()
		if u.RawQuery != "" {
			out += "?" + u.RawQuery
		}
		return out
	}, nil
}

// bakeRecipes bakes one or more recipes; every (recipe, architecture)
// pair is an independent job, run --jobs at a time.
func bakeRecipes(ctx context.Context, env *Env, args []string, f bakeFlags) error {
	var rs []*recipe.Recipe
	seen := map[string]bool{}
	for _, a := range args {
		r, err := loadRecipe(a)
		if err != nil {
			return err
		}
		if seen[r.Name] {
			return fmt.Errorf("%s: recipe %s given twice", a, r.Name)
		}
		seen[r.Name] = true
		rs = append(rs, r)
	}
	if f.name != "" && (len(rs) > 1 || f.name != rs[0].Name) {
		return fmt.Errorf("--name %s: a recipe names its image itself (%s)", f.name, rs[0].Name)
	}
	rw, err := mirrorRewrite(f.baseURL)
	if err != nil {
		return err
	}
	// Checked before anything is downloaded; each recipe fills in the rest.
	base, err := bakeOptions(env, f)
	if err != nil {
		return err
	}
	client := &download.Client{Rewrite: rw, Header: http.Header{}, UserAgent: "strata-bake"}
	if tok := os.Getenv("GH_TOKEN"); tok != "" && rw == nil {
		client.Header.Set("Authorization", "Bearer "+tok)
	}
	progress := progressWriter(env, f.json)
	if progress != nil {
		client.Progress = func(u string) func(done, total int64) { return newProgressBar(progress, path.Base(u)) }
	}
	type job struct {
		r    *recipe.Recipe
		res  recipe.Resolved
		arch string
	}
	var jobs []job
	for _, r := range rs {
		res, err := r.Resolve(ctx, client, f.version)
		if err != nil {
			return err
		}
		arches, err := recipeArches(r, f.arch)
		if err != nil {
			return err
		}
		for _, a := range arches {
			jobs = append(jobs, job{r, res, a})
		}
	}
	if err := os.MkdirAll(f.output, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	// The size flags are checked once, before any download.
	po := recipe.PopulateOptions{AllowUnverified: f.allowUnverified, Unpack: archive.DefaultLimits}
	po.Unpack.MaxRatio = f.maxUnpackRatio
	if po.MaxDownload, err = parseSize(f.maxDownload); err != nil {
		return fmt.Errorf("--max-download: %w", err)
	}
	if po.Unpack.MaxBytes, err = parseSize(f.maxUnpack); err != nil {
		return fmt.Errorf("--max-unpack: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	outs := make([]bakeOutput, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, max(f.jobs, 1))
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
			out, err := bakeRecipeArch(ctx, j.r, client, j.res, j.arch, base, po)
			if err != nil {
				errs[i] = err
				cancel()
				return
			}
			outs[i] = out
		}()
	}
	wg.Wait()
	for _, o := range outs {
		logFindings(env, o.Findings, f.json)
	}
	// Report the first real failure, not the cancellations it caused.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return printBakeResults(env, f.json, outs)
}

func recipeArches(r *recipe.Recipe, flag string) ([]string, error) {
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

func bakeRecipeArch(ctx context.Context, r *recipe.Recipe, c *download.Client, res recipe.Resolved, arch string, base bake.Request, po recipe.PopulateOptions) (bakeOutput, error) {
	dls, err := r.Downloads(ctx, c, res, arch)
	if err != nil {
		return bakeOutput{}, err
	}
	work, err := os.MkdirTemp(base.OutDir, ".strata-work-")
	if err != nil {
		return bakeOutput{}, err
	}
	defer os.RemoveAll(work)
	root, err := r.Populate(ctx, c, dls, work, po)
	if err != nil {
		return bakeOutput{}, err
	}
	req := r.Request(base, res, arch, root)
	result, err := bake.Bake(ctx, req)
	if err != nil {
		return bakeOutput{}, fmt.Errorf("%s %s %s: %w", r.Name, res.Version, arch, err)
	}
	return bakeOutput{Result: result, Name: r.Name, Version: res.Version, Arch: arch, Findings: nonNil(result.Findings)}, nil
}
