package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/repo"
)

// ImportEvent is one thing Import did: created an application, imported
// a package, or found the package already there.
type ImportEvent struct {
	CreatedApp *fleet.App
	Imported   *fleet.RepoFile
	Existing   *fleet.RepoFile
}

// Import registers the images of the `strata publish` repository in dir,
// served under url, as packages: fleet.PlanImport decides the order, the
// applications to create and the extensions each OS package carries; this
// checks every file against SHA256SUMS and carries the plan out. Packages
// that exist already are left alone.
func (c *Client) Import(ctx context.Context, dir, url, osName string, report func(ImportEvent)) error {
	if report == nil {
		report = func(ImportEvent) {}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("--repo: %w", err)
	}
	defer root.Close()
	sums, err := root.Open(repo.ManifestName)
	if err != nil {
		return fmt.Errorf("%s: %w (is it a `strata publish` repository?)", dir, err)
	}
	data, err := io.ReadAll(io.LimitReader(sums, repo.MaxManifestSize+1))
	sums.Close()
	if err != nil {
		return fmt.Errorf("%s/%s: %w", dir, repo.ManifestName, err)
	}
	m, err := repo.ParseManifest(data)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", dir, repo.ManifestName, err)
	}
	if len(fleet.RepoFiles(m)) == 0 {
		return fmt.Errorf("%s/SHA256SUMS lists no NAME-VERSION-ARCH.raw images", dir)
	}
	apps, err := c.Apps(ctx)
	if err != nil {
		return err
	}
	plan := fleet.PlanImport(m, osName, apps)
	ids := map[fleet.RepoFile]string{} // package id of each imported file
	for _, s := range plan.Steps {
		f := s.File
		if s.CreateApp != nil {
			if _, err := c.CreateApp(ctx, *s.CreateApp); err != nil {
				return err
			}
			report(ImportEvent{CreatedApp: s.CreateApp})
		}
		pl, err := fleet.ReadPayload(root.FS(), f.File)
		if err != nil {
			return err
		}
		if pl.SHA256 != f.SHA256 {
			return fmt.Errorf("%s/%s: SHA-256 %s does not match SHA256SUMS (%s); republish or fix the file", dir, f.File, pl.SHA256, f.SHA256)
		}
		p := fleet.Package{Version: f.Version, Arch: f.Arch, URL: url, Filename: f.File, Size: pl.Size, SHA1: pl.SHA1, SHA256: pl.SHA256}
		for _, x := range s.Extras {
			if id, ok := ids[x]; ok {
				p.Extras = append(p.Extras, id)
			}
		}
		sort.Strings(p.Extras)
		added, err := c.AddPackage(ctx, f.Name, p)
		switch {
		case errors.Is(err, ErrConflict):
			report(ImportEvent{Existing: &f})
			if added, err = c.existing(ctx, f); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("%s: %w", f.File, err)
		default:
			report(ImportEvent{Imported: &f})
		}
		ids[f] = added.ID
	}
	return nil
}

// existing finds the package already imported for f.
func (c *Client) existing(ctx context.Context, f fleet.RepoFile) (fleet.Package, error) {
	ps, err := c.Packages(ctx, f.Name)
	if err != nil {
		return fleet.Package{}, err
	}
	var p fleet.Package
	for _, q := range ps {
		if q.Version == f.Version && q.Arch == f.Arch {
			p = q
		}
	}
	return p, nil
}
