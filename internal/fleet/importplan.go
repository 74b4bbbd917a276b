package fleet

import (
	"sort"

	"github.com/stratalinux/strata/internal/repo"
	"github.com/stratalinux/strata/internal/version"
)

// ImportPlan is how a `strata publish` repository becomes packages: one
// step per image, extensions first, so the OS packages can carry them.
type ImportPlan struct {
	Steps []ImportStep
}

// ImportStep registers one image as a package of the application
// File.Name.
type ImportStep struct {
	File RepoFile
	// CreateApp is set on the first step of an application that does not
	// exist yet: create it (with this name and kind) before the package.
	CreateApp *App
	// Extras are the extension images of this import an OS package
	// carries: the newest version of each extension for its architecture.
	Extras []RepoFile
}

// PlanImport orders the images of manifest for import. osName names the
// OS image (the others are extensions); existing are the applications
// the server has. A manifest that lists no images yields an empty plan.
func PlanImport(m *repo.Manifest, osName string, existing []App) ImportPlan {
	files := RepoFiles(m)
	// Extensions first, so OS packages can carry them.
	sort.SliceStable(files, func(i, j int) bool { return files[i].Name != osName && files[j].Name == osName })
	have := map[string]bool{}
	for _, a := range existing {
		have[a.Name] = true
	}
	// The newest extension image per name and architecture; the first
	// listed wins a tie.
	type key struct{ name, arch string }
	newest := map[key]RepoFile{}
	var order []key
	for _, f := range files {
		if f.Name == osName {
			continue
		}
		k := key{f.Name, f.Arch}
		old, ok := newest[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || version.Compare(f.Version, old.Version) > 0 {
			newest[k] = f
		}
	}
	var p ImportPlan
	for _, f := range files {
		s := ImportStep{File: f}
		if !have[f.Name] {
			kind := KindExtension
			if f.Name == osName {
				kind = KindOS
			}
			s.CreateApp = &App{Name: f.Name, Kind: kind}
			have[f.Name] = true
		}
		if f.Name == osName {
			for _, k := range order {
				if k.arch == f.Arch {
					s.Extras = append(s.Extras, newest[k])
				}
			}
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}
