package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/node"
	"github.com/stratalinux/strata/internal/release"
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

// newNode is the node the ext commands act on: --root validated, updates
// through sysupdate with systemd's defaults, activation by a merge refresh.
func newNode(cmd *cobra.Command, env *Env, rootFlag string) (*node.Node, error) {
	root, err := sysupdateRoot(rootFlag)
	if err != nil {
		return nil, err
	}
	return &node.Node{
		Root: root,
		Log:  env.Log,
		Updater: func(component string, offline bool) (*sysupdate.Engine, error) {
			return newSysupdateEngine(env, sysupdateSpec{root: root, component: component, offline: offline, maxDownload: "8G", progress: true})
		},
		Refresh: func(ctx context.Context, c imageclass.Class) error {
			me, err := newMergeEngine(env, c, root.Path())
			if err != nil {
				return err
			}
			_, err = me.Refresh(ctx)
			return err
		},
	}, nil
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
	n, err := newNode(cmd, env, f.root)
	if err != nil {
		return err
	}
	v, err := n.Add(cmdContext(cmd), node.AddOptions{Name: name, Version: ver, RepoURL: f.repoURL, Line: f.line,
		Verify: verify, InstancesMax: f.keep, NoRefresh: f.noRefresh})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s %s installed\n", name, v)
	return nil
}

func extRemove(cmd *cobra.Command, env *Env, f *extPkgFlags, name string) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	n, err := newNode(cmd, env, f.root)
	if err != nil {
		return err
	}
	if err := n.Remove(cmdContext(cmd), name, f.noRefresh); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s removed\n", name)
	return nil
}

func extList(cmd *cobra.Command, env *Env, f *extPkgFlags) error {
	jm, err := parseJSONMode(f.json)
	if err != nil {
		return err
	}
	n, err := newNode(cmd, env, f.root)
	if err != nil {
		return err
	}
	rows, err := n.List(cmdContext(cmd), f.offline)
	if err != nil {
		return err
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
