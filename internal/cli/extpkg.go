package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/release"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/sysupdate"
)

// extPkgFlags are the porcelain's options.
type extPkgFlags struct {
	root      string
	repoURL   string
	line      string
	verify    string
	noRefresh bool
	offline   bool
	json      string
	keep      int
}

func newExtPkgCommand(env *Env) *cobra.Command {
	f := &extPkgFlags{}
	cmd := &cobra.Command{
		Use:   "ext",
		Short: "Add, remove and list extensions from a repository (porcelain over sysupdate and sysext)",
	}
	cmd.PersistentFlags().StringVar(&f.root, "root", "", "operate on an alternate root directory")
	add := &cobra.Command{
		Use:   "add NAME[@VERSION] --repo URL",
		Short: "Install an extension: transfer definition, download, verify, link, refresh",
		Long: `Write /etc/sysupdate.NAME.d/NAME.transfer for the repository, download
and verify the newest (or the given) version into /opt/extensions/NAME,
point /etc/extensions/NAME.raw at it and refresh the sysext merge.
Later updates: strata sysupdate -C NAME update --refresh (or the systemd
timer).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return extAdd(cmd, env, f, args[0]) },
	}
	add.Flags().StringVar(&f.repoURL, "repo", "", "repository base URL (http://, https:// or file://)")
	add.Flags().StringVar(&f.line, "line", "", "stay on one minor line, e.g. v1.30")
	add.Flags().StringVar(&f.verify, "verify", "yes", "require the repository's OpenPGP signature (Verify=)")
	add.Flags().IntVar(&f.keep, "instances-max", 3, "how many versions to keep (InstancesMax=)")
	add.Flags().BoolVar(&f.noRefresh, "no-refresh", false, "do not refresh the merge; activate later")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Uninstall an extension: unlink, refresh, delete its versions and definition",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return extRemove(cmd, env, f, args[0]) },
	}
	remove.Flags().BoolVar(&f.noRefresh, "no-refresh", false, "do not refresh the merge")
	list := &cobra.Command{
		Use:   "list",
		Short: "Show installed, current and available versions of every extension",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return extList(cmd, env, f) },
	}
	list.Flags().BoolVar(&f.offline, "offline", false, "do not contact repositories")
	list.Flags().StringVar(&f.json, "json", "off", "output as JSON: pretty, short or off")
	list.Flags().Lookup("json").NoOptDefVal = "short"
	cmd.AddCommand(add, remove, list)
	return cmd
}

func transferPath(name string) string {
	return "/etc/sysupdate." + name + ".d/" + name + ".transfer"
}

func extAdd(cmd *cobra.Command, env *Env, f *extPkgFlags, arg string) error {
	name, ver, _ := strings.Cut(arg, "@")
	if err := release.ValidName(name); err != nil {
		return err
	}
	if f.repoURL == "" {
		return errors.New("--repo URL is required (the repository's base URL)")
	}
	verify, err := sdparse.Boolean(f.verify)
	if err != nil {
		return fmt.Errorf("--verify=%s: not a boolean", f.verify)
	}
	sf := &sysupdateFlags{root: f.root, component: name, json: "off"}
	root, err := sf.rootDir()
	if err != nil {
		return err
	}
	spec := repo.TransferSpec{Name: name, Line: f.line, URL: strings.TrimRight(f.repoURL, "/"), InstancesMax: f.keep, Verify: verify}
	tp := rootfs.Join(root, transferPath(name))
	_, statErr := os.Lstat(tp)
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(filepath.Dir(tp), 0o755); err != nil {
		return err
	}
	if err := repo.WriteAtomic(tp, repo.TransferFile(spec), 0o644); err != nil {
		return err
	}
	e, err := sf.newEngine(env)
	if err == nil {
		var res *sysupdate.UpdateResult
		res, err = e.Update(cmdContext(cmd), ver)
		if err == nil && res.Version == "" {
			err = fmt.Errorf("%s/SHA256SUMS offers no image of %s for this architecture (%s-VERSION-%s.raw)", spec.URL, name, name, sdparse.NativeArchitecture())
		}
		if err == nil {
			if res.Message != "" && !res.Installed {
				env.Log.Info(res.Message)
			}
			if !f.noRefresh {
				err = refreshFor(cmdContext(cmd), env, root, []string{"/etc/extensions/" + name + ".raw"})
			}
			if err == nil {
				fmt.Fprintf(env.Stdout, "%s %s installed\n", name, res.Version)
				return nil
			}
			return err
		}
	}
	if created {
		// Leave the system as it was: no definition for a failed add.
		os.Remove(tp)
		os.Remove(filepath.Dir(tp))
	}
	return err
}

func extRemove(cmd *cobra.Command, env *Env, f *extPkgFlags, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	sf := &sysupdateFlags{root: f.root}
	root, err := sf.rootDir()
	if err != nil {
		return err
	}
	link := rootfs.Join(root, "/etc/extensions/"+name+".raw")
	tp := rootfs.Join(root, transferPath(name))
	_, linkErr := os.Lstat(link)
	_, defErr := os.Lstat(tp)
	if errors.Is(linkErr, fs.ErrNotExist) && errors.Is(defErr, fs.ErrNotExist) {
		return fmt.Errorf("extension %s is not installed (no /etc/extensions/%s.raw, no %s)", name, name, transferPath(name))
	}
	// Unlink first, then refresh so the merge drops it, then delete.
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !f.noRefresh {
		if err := refreshFor(cmdContext(cmd), env, root, []string{"/etc/extensions/" + name + ".raw"}); err != nil {
			return err
		}
	}
	// Delete the versions the transfer owned, and the definition.
	targetDir := "/opt/extensions/" + name
	if defs, err := sysupdate.Load(root, sysupdate.DefinitionDirs(name), sysupdate.HostSpecifiers(root)); err == nil {
		for _, t := range defs.Transfers {
			targetDir = t.Target.Path
		}
	}
	if err := os.RemoveAll(rootfs.Join(root, targetDir)); err != nil {
		return err
	}
	if err := os.Remove(tp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	os.Remove(filepath.Dir(tp))
	fmt.Fprintf(env.Stdout, "%s removed\n", name)
	return nil
}

type extListRow struct {
	Name      string   `json:"name"`
	Current   string   `json:"current"`
	Installed []string `json:"installed"`
	Available []string `json:"available"`
	Candidate string   `json:"candidate"`
	Error     string   `json:"error,omitempty"`
}

func extList(cmd *cobra.Command, env *Env, f *extPkgFlags) error {
	jm, err := parseJSONMode(f.json)
	if err != nil {
		return err
	}
	sf := &sysupdateFlags{root: f.root, json: "off", offline: f.offline}
	root, err := sf.rootDir()
	if err != nil {
		return err
	}
	_, comps, err := sysupdate.Components(root)
	if err != nil {
		return err
	}
	rows := []extListRow{}
	for _, c := range comps {
		csf := *sf
		csf.component = c
		row := extListRow{Name: c, Installed: []string{}, Available: []string{}}
		e, err := csf.newEngine(env)
		if err == nil {
			var sets []sysupdate.UpdateSet
			sets, _, err = e.Sets(cmdContext(cmd))
			if err != nil && !e.Offline {
				// The repository is unreachable: still show what is
				// installed, and the error in place of what is available.
				e.Offline = true
				sets, _, _ = e.Sets(cmdContext(cmd))
			}
			for _, u := range sets {
				if u.Has(sysupdate.Installed) && u.Flags&(sysupdate.Partial|sysupdate.Pending) == 0 {
					row.Installed = append(row.Installed, u.Version)
				}
				if u.Has(sysupdate.Available) {
					row.Available = append(row.Available, u.Version)
				}
				if u.Current {
					row.Current = u.Version
				}
			}
			if cand, ok := sysupdate.Candidate(sets); ok {
				row.Candidate = cand.Version
			}
		}
		if err != nil {
			row.Error = err.Error()
		}
		rows = append(rows, row)
	}
	if jm != "" {
		return writeJSON(env.Stdout, jm, rows)
	}
	t := newTable("name", "current", "installed", "available", "update")
	for _, r := range rows {
		avail := strings.Join(r.Available, " ")
		if r.Error != "" {
			avail = "error: " + r.Error
		} else if f.offline {
			avail = "(offline)"
		}
		t.row(r.Name, dash(r.Current), dash(strings.Join(r.Installed, " ")), dash(avail), dash(r.Candidate))
	}
	if len(rows) == 0 {
		env.Log.Info("No extensions installed with strata ext add (no /etc/sysupdate.*.d).")
		return nil
	}
	return t.write(env.Stdout, true)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
