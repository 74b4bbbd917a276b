package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/merge"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/systemctl"
)

const (
	classSysext  = imageclass.Sysext
	classConfext = imageclass.Confext
)

// extFlags are systemd-sysext's options.
type extFlags struct {
	root          string
	force         bool
	mutable       string
	noexec        string
	noReload      bool
	json          string
	noLegend      bool
	noPager       bool
	imagePolicy   string
	alwaysRefresh string
	dryRun        bool
}

func newExtCommand(env *Env, use string, class imageclass.Class) *cobra.Command {
	f := &extFlags{}
	cmd := &cobra.Command{
		Use:   use + " [VERB]",
		Short: fmt.Sprintf("Merge %s images over %s (systemd-%s compatible)", class, strings.Join(class.DefaultHierarchies(), " and "), class),
		Long: fmt.Sprintf(`Activate %s images: merge them as overlays over %s, exactly as
systemd-%s does, and explain which images apply and why.

Verbs: status (default), merge, unmerge, refresh, list, check IMAGE.`, class, strings.Join(class.DefaultHierarchies(), ", "), class),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStatus(cmd.Context(), env, class, f) },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.root, "root", "", "operate on an alternate root directory")
	pf.BoolVar(&f.force, "force", false, "ignore version incompatibilities")
	pf.StringVar(&f.mutable, "mutable", "", "mutability mode: no, yes, auto, import, ephemeral, ephemeral-import (or a boolean)")
	pf.StringVar(&f.noexec, "noexec", "", "force (or forbid) noexec on the merged hierarchies")
	pf.BoolVar(&f.noReload, "no-reload", false, "do not reload the service manager after merging")
	pf.StringVar(&f.json, "json", "off", "output as JSON: pretty, short or off")
	pf.BoolVar(&f.noLegend, "no-legend", false, "do not print table headers")
	pf.BoolVar(&f.noPager, "no-pager", false, "do not pipe output into a pager (accepted for compatibility)")
	pf.StringVar(&f.imagePolicy, "image-policy", "", "image policy for raw images (systemd.image-policy syntax)")
	pf.StringVar(&f.alwaysRefresh, "always-refresh", "", "refresh even when nothing changed")
	pf.Lookup("always-refresh").NoOptDefVal = "yes"
	pf.Lookup("noexec").NoOptDefVal = "yes"

	add := func(use, short string, run func(context.Context) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error { return run(c.Context()) }}
		cmd.AddCommand(c)
		return c
	}
	add("status", "Show the merge state of each hierarchy", func(ctx context.Context) error { return runStatus(ctx, env, class, f) })
	m := add("merge", "Merge the extension images", func(ctx context.Context) error { return runMerge(ctx, env, class, f, false) })
	m.Flags().BoolVar(&f.dryRun, "dry-run", false, "print the mount plan without mounting anything")
	r := add("refresh", "Replace the merge with the current images (no gap)", func(ctx context.Context) error { return runMerge(ctx, env, class, f, true) })
	r.Flags().BoolVar(&f.dryRun, "dry-run", false, "print the mount plan without mounting anything")
	add("unmerge", "Remove the merged extensions", func(ctx context.Context) error { return runUnmerge(ctx, env, class, f) })
	add("list", "List discovered images with their status and the reason", func(ctx context.Context) error { return runList(ctx, env, class, f) })

	var osRelease string
	check := &cobra.Command{
		Use:   "check IMAGE",
		Short: "Tell whether IMAGE would merge on this host (or the one given by --os-release) and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(env, class, f, args[0], osRelease)
		},
	}
	check.Flags().StringVar(&osRelease, "os-release", "", "judge against this os-release file instead of the host's")
	cmd.AddCommand(check)
	return cmd
}

// engine builds the merge engine for the command's flags; merge.NewEngine
// applies systemd's precedence (command line, environment, file).
func engine(env *Env, class imageclass.Class, f *extFlags) (*merge.Engine, error) {
	root, err := resolveRoot(f.root)
	if err != nil {
		return nil, err
	}
	return merge.NewEngine(class, root, merge.Flags{
		Force: f.force, Mutable: f.mutable, Noexec: f.noexec,
		ImagePolicy: f.imagePolicy, AlwaysRefresh: f.alwaysRefresh,
	}, os.LookupEnv, env.Log)
}

// newMergeEngine is the engine for class at root (validated, "/" for the
// host) with no command-line options: what a refresh after an update uses.
func newMergeEngine(env *Env, class imageclass.Class, root string) (*merge.Engine, error) {
	return merge.NewEngine(class, root, merge.Flags{}, os.LookupEnv, env.Log)
}

// resolveRoot parses --root once ("/" when unset), in systemd's words.
func resolveRoot(arg string) (string, error) {
	r, err := rootfs.ParseRoot(arg)
	if err != nil {
		return "", fmt.Errorf("failed to resolve --root='%s': not a directory", arg)
	}
	return r.Path(), nil
}

func printMutableHelp(w io.Writer) error {
	fmt.Fprintln(w, "Known mutability modes:")
	for _, m := range merge.Modes {
		fmt.Fprintln(w, string(m))
	}
	return nil
}

type statusRow struct {
	Hierarchy  string   `json:"hierarchy"`
	Extensions []string `json:"extensions"`
	Since      *int64   `json:"since"`
}

func runStatus(_ context.Context, env *Env, class imageclass.Class, f *extFlags) error {
	e, jm, err := setup(env, class, f)
	if err != nil {
		return err
	}
	states, err := e.Status()
	if err != nil {
		return err
	}
	rows := make([]statusRow, 0, len(states))
	for _, st := range states {
		r := statusRow{Hierarchy: st.Hierarchy, Extensions: []string{}}
		if st.Ours {
			r.Extensions = append(r.Extensions, st.Extensions...)
			since := st.Since
			r.Since = &since
		}
		rows = append(rows, r)
	}
	if jm != "" {
		return writeJSON(env.Stdout, jm, rows)
	}
	t := newTable("HIERARCHY", "EXTENSIONS", "SINCE")
	for _, r := range rows {
		exts, since := "none", ""
		if r.Since != nil {
			exts = strings.Join(r.Extensions, ", ")
			if exts == "" {
				exts = "(none, mutable only)"
			}
			since = time.UnixMicro(*r.Since).Format("Mon 2006-01-02 15:04:05 MST")
		}
		t.row(r.Hierarchy, exts, since)
	}
	return t.write(env.Stdout, !f.noLegend)
}

// setup builds the engine and the JSON mode every verb needs.
// --mutable=help prints the modes and ends the command successfully.
func setup(env *Env, class imageclass.Class, f *extFlags) (*merge.Engine, string, error) {
	e, err := engine(env, class, f)
	if errors.Is(err, merge.ErrMutableHelp) {
		if err := printMutableHelp(env.Stdout); err != nil {
			return nil, "", err
		}
		return nil, "", errDone
	}
	if err != nil {
		return nil, "", err
	}
	jm, err := parseJSONMode(f.json)
	return e, jm, err
}

// errDone ends a command early with success.
var errDone = errors.New("done")

func runMerge(ctx context.Context, env *Env, class imageclass.Class, f *extFlags, refresh bool) error {
	e, jm, err := setup(env, class, f)
	if err != nil {
		return err
	}
	if f.dryRun {
		plan, a, err := e.DryRun()
		if err != nil {
			return err
		}
		if jm != "" {
			return writeJSON(env.Stdout, jm, planJSON(plan, a))
		}
		printPlan(env.Stdout, plan, a)
		return nil
	}
	var res merge.Result
	if refresh {
		res, err = e.Refresh(ctx)
	} else {
		res, err = e.Merge(ctx)
	}
	if err != nil {
		return err
	}
	e.ReloadAfter(ctx, res, f.noReload, f.root != "", systemctl.Manager{})
	return nil
}

func runUnmerge(ctx context.Context, env *Env, class imageclass.Class, f *extFlags) error {
	e, _, err := setup(env, class, f)
	if err != nil {
		return err
	}
	_, err = e.UnmergeAndReload(ctx, f.noReload, f.root != "", systemctl.Manager{})
	return err
}

type listRow struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Path   string `json:"path"`
	Time   *int64 `json:"time"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// DDI is how a disk image is protected and signed (merge decides it).
	DDI *ddi.Report `json:"ddi,omitempty"`
}

func runList(_ context.Context, env *Env, class imageclass.Class, f *extFlags) error {
	e, jm, err := setup(env, class, f)
	if err != nil {
		return err
	}
	a, err := e.Assess()
	if err != nil {
		return err
	}
	for _, sk := range a.Discovery.Skipped {
		env.Log.Info(fmt.Sprintf("Skipping %s: %s", sk.Entry, sk.Reason))
	}
	for _, c := range a.Candidates {
		for _, w := range c.Release.Warnings {
			env.Log.Warn(fmt.Sprintf("%s: %s:%s", c.Image.Entry, c.Release.File, strings.TrimPrefix(w.String(), "line ")))
		}
	}
	var rows []listRow
	for i, img := range a.Discovery.Images {
		v := a.Verdicts[i]
		st, reason := merge.Explain(a.Candidates[i], v, a.Merged[img.Name], e.Hierarchies)
		rows = append(rows, makeListRow(img, string(st), reason, a.Candidates[i].Protection))
	}
	for _, s := range a.Discovery.Shadowed {
		rows = append(rows, makeListRow(s.Image, string(merge.StatusShadowed), "masked by "+s.By, nil))
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	if jm != "" {
		if rows == nil {
			rows = []listRow{}
		}
		return writeJSON(env.Stdout, jm, rows)
	}
	if len(rows) == 0 {
		env.Log.Info("No OS extensions found.")
		return nil
	}
	t := newTable("NAME", "TYPE", "PATH", "TIME", "STATUS", "REASON")
	for _, r := range rows {
		ts := ""
		if r.Time != nil {
			ts = time.UnixMicro(*r.Time).Format("Mon 2006-01-02 15:04:05 MST")
		}
		t.row(r.Name, r.Type, r.Path, ts, r.Status, r.Reason)
	}
	return t.write(env.Stdout, !f.noLegend)
}

func makeListRow(img image.Image, status, reason string, protection *ddi.Report) listRow {
	r := listRow{Name: img.Name, Type: string(img.Kind), Path: img.Path, Status: status, Reason: reason, DDI: protection}
	if !img.Mtime.IsZero() {
		us := img.Mtime.UnixMicro()
		r.Time = &us
	}
	return r
}

type checkResult struct {
	Image    string   `json:"image"`
	Name     string   `json:"name"`
	Class    string   `json:"class"`
	Merges   bool     `json:"merges"`
	Status   string   `json:"status"`
	Reason   string   `json:"reason,omitempty"`
	Provides []string `json:"provides"`
	Release  any      `json:"extensionRelease,omitempty"`
	// DDI is how a disk image is protected and signed, and the image
	// policy rule that refuses it.
	DDI *ddi.Report `json:"ddi,omitempty"`
}

func runCheck(env *Env, class imageclass.Class, f *extFlags, imagePath, osReleasePath string) error {
	e, jm, err := setup(env, class, f)
	if err != nil {
		return err
	}
	img, err := image.FromPath(imagePath, class)
	if err != nil {
		return fmt.Errorf("check %s: %w", imagePath, err)
	}
	img, _ = bakedName(env, img, class)
	var host osrelease.Host
	if osReleasePath != "" {
		rel, _, err := osrelease.ParseFile(osReleasePath)
		if err != nil {
			return err
		}
		host = osrelease.Host{Release: rel, Scope: "system", Architecture: sdparse.NativeArchitecture()}
		if rel["ID"] == "" {
			return fmt.Errorf("'ID' field not found or empty in %s", osReleasePath)
		}
	} else if host, err = e.HostRelease(); err != nil {
		return err
	}
	cand := e.ReadCandidate(img)
	v := merge.Check(cand, class, host, f.force, e.Hierarchies)
	res := checkResult{Image: imagePath, Name: img.Name, Class: class.String(), Merges: v.Use, Status: string(v.Status), Reason: v.Reason, Provides: cand.Provides, DDI: cand.Protection}
	if res.Provides == nil {
		res.Provides = []string{}
	}
	if cand.Release.Fields != nil {
		res.Release = cand.Release.Fields
	}
	if jm != "" {
		if err := writeJSON(env.Stdout, jm, res); err != nil {
			return err
		}
	} else if res.Merges {
		fmt.Fprintf(env.Stdout, "%s: would merge as %s %q into %s\n", imagePath, class, img.Name, strings.Join(cand.Provides, ", "))
	} else {
		fmt.Fprintf(env.Stdout, "%s: would not merge: %s\n", imagePath, res.Reason)
	}
	if jm == "" && res.DDI != nil {
		fmt.Fprintf(env.Stdout, "%s: %s\n", imagePath, res.DDI.Line())
	}
	if !res.Merges {
		return &ExitError{Code: 1}
	}
	return nil
}

type planLayerJSON struct {
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	Path string `json:"path"`
}

type planHierarchyJSON struct {
	Hierarchy  string          `json:"hierarchy"`
	Target     string          `json:"target"`
	Extensions []string        `json:"extensions"`
	Layers     []planLayerJSON `json:"layers"`
	Upper      string          `json:"upperdir,omitempty"`
	Work       string          `json:"workdir,omitempty"`
	Flags      []string        `json:"flags"`
	Options    string          `json:"options"`
}

type planJSONOut struct {
	Class       string              `json:"class"`
	Mutable     string              `json:"mutable"`
	Extensions  []string            `json:"extensions"`
	Hierarchies []planHierarchyJSON `json:"hierarchies"`
	Ignored     []listRow           `json:"ignored"`
}

func planJSON(p merge.Plan, a merge.Assessment) planJSONOut {
	out := planJSONOut{Class: p.Class.String(), Mutable: string(p.Mode), Extensions: p.Extensions, Hierarchies: []planHierarchyJSON{}, Ignored: []listRow{}}
	if out.Extensions == nil {
		out.Extensions = []string{}
	}
	for _, hp := range p.Hierarchies {
		h := planHierarchyJSON{Hierarchy: hp.Hierarchy, Target: hp.Target, Extensions: hp.Extensions, Upper: hp.Upper, Work: hp.Work, Flags: merge.FlagNames(hp.Flags), Options: hp.Options}
		if h.Extensions == nil {
			h.Extensions = []string{}
		}
		for _, l := range hp.Layers {
			h.Layers = append(h.Layers, planLayerJSON{Kind: string(l.Kind), Name: l.Name, Path: l.Path})
		}
		out.Hierarchies = append(out.Hierarchies, h)
	}
	for i, v := range a.Verdicts {
		if !v.Use {
			out.Ignored = append(out.Ignored, makeListRow(a.Discovery.Images[i], string(v.Status), v.Reason, a.Candidates[i].Protection))
		}
	}
	return out
}

func printPlan(w io.Writer, p merge.Plan, a merge.Assessment) {
	if p.Empty() {
		fmt.Fprintln(w, "Nothing to merge.")
	} else {
		fmt.Fprintf(w, "Would merge %d extension(s) (mutable: %s):\n", len(p.Extensions), p.Mode)
	}
	for _, hp := range p.Hierarchies {
		fmt.Fprintf(w, "\n%s: overlay %s on %s\n", hp.Hierarchy, strings.Join(merge.FlagNames(hp.Flags), ","), hp.Target)
		for i, l := range hp.Layers {
			name := l.Name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(w, "  %2d  %-15s %-20s %s\n", i+1, l.Kind, name, l.Path)
		}
		if hp.Upper != "" {
			fmt.Fprintf(w, "      upperdir %s\n      workdir  %s\n", hp.Upper, hp.Work)
		}
		fmt.Fprintf(w, "  options: %s\n", hp.Options)
	}
	first := true
	for i, v := range a.Verdicts {
		if v.Use {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nIgnored:")
			first = false
		}
		fmt.Fprintf(w, "  %-20s %s\n", a.Discovery.Images[i].Name, v.Reason)
	}
}
