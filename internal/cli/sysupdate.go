package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/bytesize"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/node"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/sysupdate"
)

// sysupdateFlags are systemd-sysupdate's options plus Strata's --refresh.
type sysupdateFlags struct {
	component      string
	definitions    string
	root           string
	image          string
	instancesMax   int
	sync           string
	verify         string
	reboot         bool
	offline        bool
	json           string
	noPager        bool
	noLegend       bool
	refresh        bool
	transferSource string
	stall          time.Duration
	maxDownload    string
	maxUnpackRatio int64
}

func newSysupdateCommand(env *Env, use string) *cobra.Command {
	f := &sysupdateFlags{}
	cmd := &cobra.Command{
		Use:   use + " [VERB]",
		Short: "Update extensions and OS resources from sysupdate.d definitions (systemd-sysupdate compatible)",
		Long: `Read systemd-sysupdate's *.transfer and *.feature definitions from
/etc/sysupdate.d, /run/sysupdate.d, /usr/local/lib/sysupdate.d and
/usr/lib/sysupdate.d (or sysupdate.COMPONENT.d with -C), then list, check,
download, verify and install new versions atomically and vacuum old ones.

Verbs: list [VERSION] (default), features [FEATURE], check-new,
update [VERSION], vacuum, pending, reboot, components.

Beyond systemd-sysupdate: interrupted downloads resume with HTTP Range,
and update --refresh activates the new extension at once through a
gap-free merge refresh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return sysupdateList(cmd, env, f, "") },
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.component, "component", "C", "", "use sysupdate.COMPONENT.d definitions")
	pf.StringVar(&f.definitions, "definitions", "", "read definitions from this directory only")
	pf.StringVar(&f.root, "root", "", "operate on an alternate root directory")
	pf.StringVar(&f.image, "image", "", "operate on a disk image (not supported)")
	pf.IntVarP(&f.instancesMax, "instances-max", "m", 0, "how many instances to keep (overrides InstancesMax=)")
	pf.StringVar(&f.sync, "sync", "yes", "fsync after installing (always on)")
	pf.StringVar(&f.verify, "verify", "", "verify the SHA256SUMS signature: yes or no (overrides Verify=)")
	pf.BoolVar(&f.reboot, "reboot", false, "reboot after installing a new version")
	pf.BoolVar(&f.offline, "offline", false, "do not contact sources: list installed, update only to pending versions")
	pf.StringVar(&f.json, "json", "off", "output as JSON: pretty, short or off")
	pf.Lookup("json").NoOptDefVal = "short"
	pf.BoolVar(&f.noPager, "no-pager", false, "do not pipe output into a pager (never used)")
	pf.BoolVar(&f.noLegend, "no-legend", false, "omit table headers")
	pf.StringVar(&f.transferSource, "transfer-source", "", "source directory for PathRelativeTo=explicit (not supported)")
	pf.DurationVar(&f.stall, "stall-timeout", 30*time.Second, "abort a download when no data arrives for this long")
	maxDownload := os.Getenv("STRATA_MAX_DOWNLOAD")
	if maxDownload == "" {
		maxDownload = "8G"
	}
	pf.StringVar(&f.maxDownload, "max-download", maxDownload, "largest payload downloaded; a size declared in the repository's index.json also stops it (0 = no limit; env STRATA_MAX_DOWNLOAD)")
	pf.Int64Var(&f.maxUnpackRatio, "max-unpack-ratio", archive.DefaultRatio, "largest expansion of a url-tar archive over its compressed size (-1 = no limit)")

	cmd.AddCommand(&cobra.Command{
		Use: "list [VERSION]", Short: "List versions, or the contents of one", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := ""
			if len(args) == 1 {
				v = args[0]
			}
			return sysupdateList(cmd, env, f, v)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use: "features [FEATURE]", Short: "List optional features", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return sysupdateFeatures(cmd, env, f, args) },
	})
	cmd.AddCommand(&cobra.Command{
		Use: "check-new", Short: "Print the version an update would install; exit 1 when none", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return sysupdateCheckNew(cmd, env, f) },
	})
	update := &cobra.Command{
		Use: "update [VERSION]", Short: "Download and install the newest (or the given) version", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := ""
			if len(args) == 1 {
				v = args[0]
			}
			return sysupdateUpdate(cmd, env, f, v)
		},
	}
	update.Flags().BoolVar(&f.refresh, "refresh", false, "activate the new version at once (gap-free systemd-sysext/confext refresh)")
	cmd.AddCommand(update)
	cmd.AddCommand(&cobra.Command{
		Use: "vacuum", Short: "Remove old instances beyond InstancesMax=", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return sysupdateVacuum(cmd, env, f) },
	})
	cmd.AddCommand(&cobra.Command{
		Use: "pending", Short: "Exit 0 when a newer version than the booted one is installed", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return sysupdatePending(cmd, env, f, false) },
	})
	cmd.AddCommand(&cobra.Command{
		Use: "reboot", Short: "Reboot when a newer version than the booted one is installed", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return sysupdatePending(cmd, env, f, true) },
	})
	cmd.AddCommand(&cobra.Command{
		Use: "components", Short: "List components (sysupdate.NAME.d directories)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return sysupdateComponents(cmd, env, f) },
	})
	return cmd
}

func (f *sysupdateFlags) rootDir() (string, error) {
	r, err := sysupdateRoot(f.root)
	return r.Path(), err
}

// sysupdateRoot parses --root once for the sysupdate and ext commands.
func sysupdateRoot(arg string) (rootfs.Root, error) {
	r, err := rootfs.ParseRoot(arg)
	if err != nil {
		return rootfs.Root{}, fmt.Errorf("--root=%s: not a directory", arg)
	}
	return r, nil
}

func (f *sysupdateFlags) check() error {
	if f.image != "" {
		return errors.New("--image= is not supported; loop-mount the image and use --root=")
	}
	if f.transferSource != "" {
		return errors.New("--transfer-source= is not supported")
	}
	if f.definitions != "" && f.component != "" {
		return errors.New("--definitions= and --component= cannot be combined")
	}
	if f.component != "" && !sysupdate.ValidComponent(f.component) {
		return fmt.Errorf("component name %q is not valid", f.component)
	}
	if f.reboot && (f.root != "" || f.component != "") {
		return errors.New("--reboot cannot be combined with --root= or --component=")
	}
	if f.instancesMax < 0 {
		return errors.New("--instances-max= must be positive")
	}
	if _, err := sdparse.Boolean(f.sync); f.sync != "" && err != nil {
		return fmt.Errorf("--sync=%s: not a boolean", f.sync)
	}
	if _, err := parseJSONMode(f.json); err != nil {
		return err
	}
	return nil
}

func (f *sysupdateFlags) jsonMode() string {
	m, _ := parseJSONMode(f.json)
	return m
}

// loadDefinitions reads the definitions the options select.
func (f sysupdateSpec) loadDefinitions(root string) (*sysupdate.Definitions, error) {
	return sysupdate.LoadSelected(root, f.component, f.definitions)
}

// newEngine builds the engine for the flags.
func (f *sysupdateFlags) newEngine(env *Env) (*sysupdate.Engine, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	root, err := sysupdateRoot(f.root)
	if err != nil {
		return nil, err
	}
	return newSysupdateEngine(env, sysupdateSpec{
		root: root, component: f.component, definitions: f.definitions, offline: f.offline,
		instancesMax: f.instancesMax, verify: f.verify, stall: f.stall, maxDownload: f.maxDownload,
		maxUnpackRatio: f.maxUnpackRatio, progress: f.jsonMode() == "",
	})
}

// sysupdateSpec are the values a sysupdate engine is built from: the
// sysupdate command's flags, or the defaults ext add/remove/list use.
type sysupdateSpec struct {
	root                   rootfs.Root
	component, definitions string
	offline                bool
	instancesMax           int
	verify                 string
	stall                  time.Duration
	maxDownload            string
	maxUnpackRatio         int64
	progress               bool // draw a progress bar on a terminal
}

// newSysupdateEngine builds the engine for s.
func newSysupdateEngine(env *Env, f sysupdateSpec) (*sysupdate.Engine, error) {
	root := f.root.Path()
	defs, err := f.loadDefinitions(root)
	if err != nil {
		return nil, err
	}
	e := &sysupdate.Engine{
		Root: root, Defs: defs, Log: env.Log, Offline: f.offline, InstancesMax: f.instancesMax,
		CheckFreshness: sysupdate.CheckFreshness(os.Getenv),
		Client:         &download.Client{Stall: f.stall, UserAgent: "strata-sysupdate/" + Version},
		MaxUnpackRatio: f.maxUnpackRatio,
	}
	maxDownload := f.maxDownload
	if maxDownload == "" {
		maxDownload = "8G"
	}
	if e.MaxSize, err = bytesize.Parse(maxDownload, bytesize.Strata); err != nil {
		return nil, fmt.Errorf("--max-download: %w", err)
	}
	if defs.Legacy {
		env.Log.Warn("As of v257, transfer definitions should have the '.transfer' extension.")
	}
	if e.Verify, err = sysupdate.VerifyOverride(f.verify, os.Getenv); err != nil {
		return nil, err
	}
	if f.progress {
		if w := progressWriter(env, false); w != nil {
			e.Progress = func(name string) func(done, total int64) { return newProgressBar(w, name) }
		}
	}
	return e, nil
}

// newProgressBar draws one line per download on a terminal.
func newProgressBar(w io.Writer, name string) func(done, total int64) {
	var mu sync.Mutex
	var last time.Time
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		finished := total > 0 && done >= total
		if now := time.Now(); now.Sub(last) < 200*time.Millisecond && !finished {
			return
		} else {
			last = now
		}
		if total > 0 {
			fmt.Fprintf(w, "\r\x1b[K%s %3d%% %d/%d MiB", name, done*100/total, done>>20, total>>20)
		} else {
			fmt.Fprintf(w, "\r\x1b[K%s %d MiB", name, done>>20)
		}
		if finished {
			fmt.Fprint(w, "\n")
		}
	}
}

// flagGlyph is systemd's update_set_flags_to_glyph().
func flagGlyph(u sysupdate.UpdateSet) string {
	switch {
	case u.Flags == 0 || u.Has(sysupdate.Obsolete):
		return "×"
	case u.Flags&(sysupdate.Partial|sysupdate.Pending) != 0:
		return "⤓"
	case u.Has(sysupdate.Installed | sysupdate.Newest):
		return "●"
	case u.Has(sysupdate.Installed | sysupdate.Protected):
		return "○"
	case u.Has(sysupdate.Available|sysupdate.Newest) && !u.Has(sysupdate.Installed):
		return "↻"
	}
	return " "
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// jsonObject keeps its keys in order, as systemd's JSON objects do.
type jsonObject []jsonField

type jsonField struct {
	key string
	val any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// changelogURLs expands @v in every transfer's ChangeLog=, without
// duplicates.
func changelogURLs(states []sysupdate.TransferState, v string) []string {
	out := []string{}
	for _, st := range states {
		for _, c := range st.T.ChangeLog {
			if u := strings.ReplaceAll(c, "@v", v); !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// contentColumns are systemd's "list VERSION" columns (the partition ones
// never apply: partition targets are refused); a column no instance has
// data for is hidden, in the table and in JSON.
var contentColumns = []string{"type", "path", "mtime", "mode", "size", "tries-done", "tries-left", "noauto", "ro", "growfs", "sha256"}

func contentRows(cs []sysupdate.Content) (cols []string, rows [][]any) {
	opt := func(p any) any {
		switch v := p.(type) {
		case *uint64:
			if v != nil {
				return *v
			}
		case *uint32:
			if v != nil {
				return *v
			}
		case *bool:
			if v != nil {
				return *v
			}
		case string:
			if v != "" {
				return v
			}
		}
		return nil
	}
	all := make([][]any, 0, len(cs))
	for _, c := range cs {
		all = append(all, []any{string(c.Type), c.Path, opt(c.Mtime), opt(c.Mode), opt(c.Size), opt(c.TriesDone), opt(c.TriesLeft), opt(c.NoAuto), opt(c.ReadOnly), opt(c.GrowFS), opt(c.SHA256)})
	}
	has := func(k ...int) bool {
		for _, r := range all {
			for _, i := range k {
				if r[i] != nil {
					return true
				}
			}
		}
		return false
	}
	// Columns that are shown or hidden together, as systemd groups them.
	groups := [][]int{{0}, {1}, {2, 3}, {4}, {5, 6}, {7}, {8}, {9}, {10}}
	var keep []int
	for _, g := range groups {
		if g[0] <= 1 || has(g...) {
			keep = append(keep, g...)
		}
	}
	for _, i := range keep {
		cols = append(cols, contentColumns[i])
	}
	for _, r := range all {
		row := make([]any, 0, len(keep))
		for _, i := range keep {
			row = append(row, r[i])
		}
		rows = append(rows, row)
	}
	return cols, rows
}

func cellText(col string, v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case uint64:
		if col == "mtime" {
			return time.UnixMicro(int64(x)).Format("Mon 2006-01-02 15:04:05 MST")
		}
		return fmt.Sprint(x)
	case uint32:
		return fmt.Sprintf("%04o", x)
	case bool:
		return yesNo(x)
	}
	return fmt.Sprint(v)
}

func sysupdateList(cmd *cobra.Command, env *Env, f *sysupdateFlags, want string) error {
	e, err := f.newEngine(env)
	if err != nil {
		return err
	}
	sets, states, err := e.Sets(cmdContext(cmd))
	if err != nil {
		return err
	}
	jm := f.jsonMode()
	if want != "" {
		return sysupdateShowVersion(env, f, sets, states, want)
	}
	if jm != "" {
		// systemd's shape: the newest installed version (under
		// "current+pending" while it is pending), every version newest
		// first, and the transfers' AppStream= URLs.
		key, current := "current", (*string)(nil)
		all, appstream := []string{}, []string{}
		for _, u := range sets {
			if u.Has(sysupdate.Installed | sysupdate.Newest) {
				v := u.Version
				current = &v
				if u.Has(sysupdate.Pending) {
					key = "current+pending"
				}
			}
			all = append(all, u.Version)
		}
		for _, st := range states {
			for _, a := range st.T.AppStream {
				if !slices.Contains(appstream, a) {
					appstream = append(appstream, a)
				}
			}
		}
		return writeJSON(env.Stdout, jm, jsonObject{{key, current}, {"all", all}, {"appstreamUrls", appstream}})
	}
	if len(sets) == 0 {
		env.Log.Info("No updates available.")
		return nil
	}
	t := newTable("", "version", "installed", "available", "assessment")
	for _, u := range sets {
		inst, avail := "", ""
		if u.Has(sysupdate.Installed) {
			inst = "✓"
		}
		if u.Has(sysupdate.Available) {
			avail = "✓"
		}
		t.row(flagGlyph(u), u.Version, inst, avail, u.Assessment())
	}
	return t.write(env.Stdout, !f.noLegend)
}

// sysupdateShowVersion is "list VERSION": systemd's detail object.
func sysupdateShowVersion(env *Env, f *sysupdateFlags, sets []sysupdate.UpdateSet, states []sysupdate.TransferState, want string) error {
	set, ok := sysupdate.Find(sets, want)
	if !ok {
		return fmt.Errorf("update '%s' not found", want)
	}
	cols, rows := contentRows(sysupdate.Contents(states, set))
	changelog := changelogURLs(states, want)
	if jm := f.jsonMode(); jm != "" {
		contents := []jsonObject{}
		for _, r := range rows {
			o := make(jsonObject, 0, len(cols))
			for i, c := range cols {
				o = append(o, jsonField{c, r[i]})
			}
			contents = append(contents, o)
		}
		h := set.Has
		return writeJSON(env.Stdout, jm, jsonObject{
			{"version", set.Version}, {"newest", h(sysupdate.Newest)}, {"available", h(sysupdate.Available)},
			{"installed", h(sysupdate.Installed)}, {"partial", h(sysupdate.Partial)}, {"pending", h(sysupdate.Pending)},
			{"obsolete", h(sysupdate.Obsolete)}, {"protected", h(sysupdate.Protected)}, {"incomplete", h(sysupdate.Incomplete)},
			{"changelogUrls", changelog}, {"contents", contents},
		})
	}
	note := func(cond bool, s string) string {
		if cond {
			return s
		}
		return ""
	}
	h := set.Has
	fmt.Fprintf(env.Stdout, "%s Version: %s\n    State: %s\nInstalled: %s%s%s%s%s\nAvailable: %s%s\nProtected: %s\n Obsolete: %s\n",
		flagGlyph(set), set.Version, set.Assessment(),
		yesNo(h(sysupdate.Installed)), note(h(sysupdate.Installed|sysupdate.Newest), " (newest)"), note(h(sysupdate.Incomplete), " (incomplete)"),
		note(h(sysupdate.Installed|sysupdate.Pending), " (pending)"), note(h(sysupdate.Installed|sysupdate.Partial), " (partial)"),
		yesNo(h(sysupdate.Available)), note(h(sysupdate.Available|sysupdate.Newest) && !h(sysupdate.Installed), " (newest)"),
		yesNo(h(sysupdate.Installed|sysupdate.Protected)), yesNo(h(sysupdate.Obsolete)))
	for _, u := range changelog {
		fmt.Fprintf(env.Stdout, "ChangeLog: %s\n", u)
	}
	fmt.Fprintln(env.Stdout)
	t := newTable(cols...)
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, v := range r {
			cells[i] = cellText(cols[i], v)
		}
		t.row(cells...)
	}
	return t.write(env.Stdout, !f.noLegend)
}

func sysupdateFeatures(cmd *cobra.Command, env *Env, f *sysupdateFlags, args []string) error {
	if err := f.check(); err != nil {
		return err
	}
	root, err := f.rootDir()
	if err != nil {
		return err
	}
	defs, err := sysupdateSpec{component: f.component, definitions: f.definitions}.loadDefinitions(root)
	var none *sysupdate.NoDefinitionsError
	if err != nil && !errors.As(err, &none) {
		return err
	}
	if defs == nil {
		defs = &sysupdate.Definitions{}
	}
	type featJSON struct {
		Name, Description, Documentation, AppStream string
		Enabled                                     bool
		Transfers                                   []string
	}
	var all []featJSON
	for _, ft := range defs.Features {
		all = append(all, featJSON{Name: ft.ID, Enabled: ft.Enabled, Description: ft.Description, Documentation: ft.Documentation, AppStream: ft.AppStream, Transfers: defs.FeatureTransfers(ft.ID)})
	}
	jm := f.jsonMode()
	if len(args) == 1 {
		for _, fj := range all {
			if fj.Name != args[0] {
				continue
			}
			if jm != "" {
				// systemd's vertical table as JSON: field names mangled
				// ("AppStream" → "appStream"), empty fields left out.
				o := jsonObject{{"name", fj.Name}, {"enabled", fj.Enabled}}
				for _, kv := range []jsonField{{"description", fj.Description}, {"documentation", fj.Documentation}, {"appStream", fj.AppStream}} {
					if kv.val != "" {
						o = append(o, kv)
					}
				}
				if len(fj.Transfers) > 0 {
					o = append(o, jsonField{"transfers", fj.Transfers})
				}
				return writeJSON(env.Stdout, jm, o)
			}
			fmt.Fprintf(env.Stdout, "         Name: %s\n      Enabled: %s\n  Description: %s\nDocumentation: %s\n    AppStream: %s\n    Transfers: %s\n",
				fj.Name, yesNo(fj.Enabled), fj.Description, fj.Documentation, fj.AppStream, strings.Join(fj.Transfers, " "))
			return nil
		}
		return fmt.Errorf("optional feature not found: %s", args[0])
	}
	if jm != "" {
		names := []string{}
		for _, fj := range all {
			names = append(names, fj.Name)
		}
		return writeJSON(env.Stdout, jm, map[string][]string{"features": names})
	}
	t := newTable("", "feature", "description", "documentation")
	for _, fj := range all {
		mark := ""
		if fj.Enabled {
			mark = "✓"
		}
		t.row(mark, fj.Name, fj.Description, fj.Documentation)
	}
	return t.write(env.Stdout, !f.noLegend)
}

func sysupdateCheckNew(cmd *cobra.Command, env *Env, f *sysupdateFlags) error {
	e, err := f.newEngine(env)
	if err != nil {
		return err
	}
	if e.Offline {
		return errors.New("check-new needs the sources; it cannot be combined with --offline")
	}
	sets, _, err := e.Sets(cmdContext(cmd))
	if err != nil {
		return err
	}
	cand, ok := sysupdate.Candidate(sets)
	if jm := f.jsonMode(); jm != "" {
		var v *string
		if ok {
			v = &cand.Version
		}
		return writeJSON(env.Stdout, jm, map[string]*string{"available": v})
	}
	if !ok {
		env.Log.Info("No updates available.")
		return &ExitError{Code: 1}
	}
	fmt.Fprintln(env.Stdout, cand.Version)
	return nil
}

func sysupdateUpdate(cmd *cobra.Command, env *Env, f *sysupdateFlags, want string) error {
	e, err := f.newEngine(env)
	if err != nil {
		return err
	}
	ctx := cmdContext(cmd)
	res, err := e.Update(ctx, want)
	if err != nil {
		return err
	}
	if res.Message != "" {
		env.Log.Info(res.Message)
	}
	if jm := f.jsonMode(); jm != "" {
		if err := writeJSON(env.Stdout, jm, res); err != nil {
			return err
		}
	}
	if res.Installed && f.refresh {
		if err := sysupdateNode(env, e.Root).RefreshFor(ctx, res.Links); err != nil {
			return err
		}
	}
	if res.Installed && f.reboot {
		return sysupdateNode(env, e.Root).RebootIfNewer(ctx, res.Version)
	}
	return nil
}

// sysupdateNode is the node an update acts on after installing: refresh
// its merges, or reboot into a newer OS version.
func sysupdateNode(env *Env, root string) *node.Node {
	r, _ := rootfs.ParseRoot(root) // the engine's root, already validated
	return &node.Node{Root: r, Log: env.Log,
		Refresh: func(ctx context.Context, c imageclass.Class) error {
			me, err := newMergeEngine(env, c, root)
			if err != nil {
				return err
			}
			_, err = me.Refresh(ctx)
			return err
		}}
}

func sysupdateVacuum(cmd *cobra.Command, env *Env, f *sysupdateFlags) error {
	e, err := f.newEngine(env)
	if err != nil {
		return err
	}
	res, err := e.Vacuum(cmdContext(cmd))
	if err != nil {
		return err
	}
	if jm := f.jsonMode(); jm != "" {
		return writeJSON(env.Stdout, jm, res)
	}
	switch {
	case res.Removed > 0 && res.DisabledTransfers > 0:
		env.Log.Info(fmt.Sprintf("Removed %d instances, and %d disabled transfers.", res.Removed, res.DisabledTransfers))
	case res.Removed > 0:
		env.Log.Info(fmt.Sprintf("Removed %d instances.", res.Removed))
	case res.DisabledTransfers > 0:
		env.Log.Info(fmt.Sprintf("Removed %d disabled transfers.", res.DisabledTransfers))
	default:
		env.Log.Info("Found nothing to remove.")
	}
	return nil
}

func sysupdatePending(cmd *cobra.Command, env *Env, f *sysupdateFlags, doReboot bool) error {
	if f.root != "" || f.component != "" {
		if doReboot {
			return errors.New("the reboot verb cannot be combined with --root= or --component=")
		}
	}
	e, err := f.newEngine(env)
	if err != nil {
		return err
	}
	e.Offline = true
	sets, _, err := e.Sets(cmdContext(cmd))
	if err != nil {
		return err
	}
	booted := sysupdate.OSRelease(e.Root)["IMAGE_VERSION"]
	if !sysupdate.RebootPending(sets, booted) {
		if doReboot {
			env.Log.Info("No reboot necessary.")
			return nil
		}
		env.Log.Info("No reboot pending.")
		return &ExitError{Code: 1}
	}
	if doReboot {
		return sysupdateNode(env, e.Root).RebootIfNewer(cmdContext(cmd), sysupdate.NewestInstalled(sets))
	}
	env.Log.Info(fmt.Sprintf("Newer version %s installed, reboot recommended.", sysupdate.NewestInstalled(sets)))
	return nil
}

func sysupdateComponents(cmd *cobra.Command, env *Env, f *sysupdateFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	root, err := f.rootDir()
	if err != nil {
		return err
	}
	hasDefault, names, err := sysupdate.Components(root)
	if err != nil {
		return err
	}
	if jm := f.jsonMode(); jm != "" {
		if names == nil {
			names = []string{}
		}
		return writeJSON(env.Stdout, jm, struct {
			Default    bool     `json:"default"`
			Components []string `json:"components"`
		}{hasDefault, names})
	}
	sort.Strings(names)
	if hasDefault {
		fmt.Fprintln(env.Stdout, "<default>")
	}
	for _, n := range names {
		fmt.Fprintln(env.Stdout, n)
	}
	if !hasDefault && len(names) == 0 {
		env.Log.Info("No components defined.")
	}
	return nil
}
