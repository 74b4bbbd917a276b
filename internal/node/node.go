// Package node is what a node does with its extensions: add one from a
// repository, remove it, list what is installed and offered, refresh the
// merge after an update and reboot when a newer OS version is installed.
// It composes sysupdate (download and install) and merge (activation);
// the command line and, later, the node agent call it. Decisions are pure
// functions (RefreshClasses, ShouldReboot); the effects it needs from the
// outside (a sysupdate engine, a merge refresh, a reboot) come in as
// functions, so it is tested without root.
package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/release"
	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/systemctl"
	"github.com/stratalinux/strata/internal/sysupdate"
)

// Node is one system, seen from its root directory.
type Node struct {
	Root rootfs.Root
	Log  *slog.Logger
	// Updater returns the sysupdate engine for one component's
	// definitions below Root.
	Updater func(component string, offline bool) (*sysupdate.Engine, error)
	// Refresh replaces the merge of one class with the current images.
	Refresh func(ctx context.Context, c imageclass.Class) error
	// Reboot reboots the machine; nil means systemctl reboot.
	Reboot func(ctx context.Context) error
}

func (n *Node) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}

// AddOptions say which extension to install from where.
type AddOptions struct {
	Name         string
	Version      string // "" for the newest
	RepoURL      string
	Line         string // stay on one minor line, e.g. v1.30
	Verify       bool
	InstancesMax int
	NoRefresh    bool
}

// Add writes the extension's transfer definition, installs the newest (or
// the given) version and refreshes the merge. On failure it leaves the
// system as it was: a definition it created is removed again. It returns
// the installed version.
func (n *Node) Add(ctx context.Context, o AddOptions) (string, error) {
	if err := release.ValidName(o.Name); err != nil {
		return "", err
	}
	if o.RepoURL == "" {
		return "", errors.New("--repo URL is required (the repository's base URL)")
	}
	l := repo.NodeLayout(o.Name)
	spec := repo.TransferSpec{Name: o.Name, Line: o.Line, URL: strings.TrimRight(o.RepoURL, "/"), InstancesMax: o.InstancesMax, Verify: o.Verify}
	tp := n.Root.Join(l.TransferPath)
	_, statErr := os.Lstat(tp)
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(filepath.Dir(tp), 0o755); err != nil {
		return "", err
	}
	if err := repo.WriteAtomic(tp, repo.TransferFile(spec), 0o644); err != nil {
		return "", err
	}
	v, err := n.installAndRefresh(ctx, o, spec, l)
	if err != nil && created {
		// Leave the system as it was: no definition for a failed add.
		os.Remove(tp)
		os.Remove(filepath.Dir(tp))
	}
	return v, err
}

func (n *Node) installAndRefresh(ctx context.Context, o AddOptions, spec repo.TransferSpec, l repo.Layout) (string, error) {
	e, err := n.Updater(o.Name, false)
	if err != nil {
		return "", err
	}
	res, err := e.Update(ctx, o.Version)
	if err != nil {
		return "", err
	}
	if res.Version == "" {
		return "", fmt.Errorf("%s/SHA256SUMS offers no image of %s for this architecture (%s-VERSION-%s.raw)", spec.URL, o.Name, o.Name, sdparse.NativeArchitecture())
	}
	if res.Message != "" && !res.Installed {
		n.log().Info(res.Message)
	}
	if !o.NoRefresh {
		if err := n.RefreshFor(ctx, []string{l.Link}); err != nil {
			return "", err
		}
	}
	return res.Version, nil
}

// Remove unlinks the extension, refreshes the merge so it is dropped,
// then deletes its versions and its definition.
func (n *Node) Remove(ctx context.Context, name string, noRefresh bool) error {
	if err := release.ValidName(name); err != nil {
		return err
	}
	l := repo.NodeLayout(name)
	link := n.Root.Join(l.Link)
	tp := n.Root.Join(l.TransferPath)
	_, linkErr := os.Lstat(link)
	_, defErr := os.Lstat(tp)
	if errors.Is(linkErr, fs.ErrNotExist) && errors.Is(defErr, fs.ErrNotExist) {
		return fmt.Errorf("extension %s is not installed (no %s, no %s)", name, l.Link, l.TransferPath)
	}
	// Unlink first, then refresh so the merge drops it, then delete.
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !noRefresh {
		if err := n.RefreshFor(ctx, []string{l.Link}); err != nil {
			return err
		}
	}
	// Delete the versions the transfer owned, and the definition.
	targetDir := l.TargetDir
	if defs, err := sysupdate.Load(n.Root.Path(), sysupdate.DefinitionDirs(name), sysupdate.HostSpecifiers(n.Root.Path())); err == nil {
		for _, t := range defs.Transfers {
			targetDir = t.Target.Path
		}
	}
	if err := os.RemoveAll(n.Root.Join(targetDir)); err != nil {
		return err
	}
	if err := os.Remove(tp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	os.Remove(filepath.Dir(tp))
	return nil
}

// Extension is one installed component as list shows it.
type Extension struct {
	Name      string   `json:"name"`
	Current   string   `json:"current"`
	Installed []string `json:"installed"`
	Available []string `json:"available"`
	Candidate string   `json:"candidate"`
	Error     string   `json:"error,omitempty"`
}

// List returns every component with its installed, current and offered
// versions. An unreachable repository still shows what is installed, with
// the error in place of what is available.
func (n *Node) List(ctx context.Context, offline bool) ([]Extension, error) {
	_, comps, err := sysupdate.Components(n.Root.Path())
	if err != nil {
		return nil, err
	}
	rows := []Extension{}
	for _, c := range comps {
		row := Extension{Name: c, Installed: []string{}, Available: []string{}}
		e, err := n.Updater(c, offline)
		if err == nil {
			var sets []sysupdate.UpdateSet
			sets, _, err = e.Sets(ctx)
			if err != nil && !e.Offline {
				e.Offline = true
				sets, _, _ = e.Sets(ctx)
			}
			row.fill(sets)
		}
		if err != nil {
			row.Error = err.Error()
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (row *Extension) fill(sets []sysupdate.UpdateSet) {
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

// RefreshClasses decides which merges an update must refresh: every class
// whose search directories hold one of the links that moved; with no link
// (an update that names none) sysext.
func RefreshClasses(links []string) []imageclass.Class {
	want := map[imageclass.Class]bool{}
	for _, l := range links {
		for _, c := range imageclass.All() {
			for _, d := range c.SearchDirs(false) {
				if path.Dir(l) == d {
					want[c] = true
				}
			}
		}
	}
	if len(links) == 0 {
		want[imageclass.Sysext] = true
	}
	var out []imageclass.Class
	for _, c := range imageclass.All() {
		if want[c] {
			out = append(out, c)
		}
	}
	return out
}

// RefreshFor refreshes the merges RefreshClasses picks for links.
func (n *Node) RefreshFor(ctx context.Context, links []string) error {
	for _, c := range RefreshClasses(links) {
		if err := n.Refresh(ctx, c); err != nil {
			return fmt.Errorf("installed, but refreshing the %s merge failed (the previous merge stays active): %w", c, err)
		}
		n.log().Info(fmt.Sprintf("Refreshed %s: the new version is active.", c.FullName()))
	}
	return nil
}

// ShouldReboot is systemd-sysupdate's rule for --reboot: reboot unless the
// installed version is the one already booted.
func ShouldReboot(booted, installed string) bool {
	return booted == "" || installed != booted
}

// RebootIfNewer reboots when installed is not the booted IMAGE_VERSION.
func (n *Node) RebootIfNewer(ctx context.Context, installed string) error {
	if !ShouldReboot(sysupdate.OSRelease(n.Root.Path())["IMAGE_VERSION"], installed) {
		return nil
	}
	n.log().Info("Rebooting to activate the new version.")
	reboot := n.Reboot
	if reboot == nil {
		reboot = systemctl.Manager{}.Reboot
	}
	if err := reboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}
